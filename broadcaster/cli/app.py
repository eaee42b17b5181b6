"""The `broadcaster` command group and what its commands share."""

from __future__ import annotations

from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

if TYPE_CHECKING:
    from rich.console import Console

    from broadcaster.core.config import Config

    out: Console  # every command's report
    err: Console  # errors, on standard error

EXIT_CONFIG = 2


def __getattr__(name: str) -> Console:
    """`out` and `err`, each made when a command first asks for it: rich is a third of the
    start of `broadcaster --help`, which click prints alone."""
    if name not in ("out", "err"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    made: Console | None = globals().get(name)
    if made is None:
        from rich.console import Console

        made = Console(stderr=name == "err", highlight=False)
        globals()[name] = made  # once: later look-ups find it without this function
    return made


def load_config_or_exit(config_path: Path | None) -> Config:
    # Imported here, as everything heavy in this module: `broadcaster --help` loads only click.
    from broadcaster.core.config import ConfigError
    from broadcaster.core.secrets import register_config_secrets
    from broadcaster.core.terminal import safe
    from broadcaster.runtime.configuration import load_config

    try:
        config = load_config(config_path)
    except ConfigError as exc:
        message = f"[bold red]configuration error[/]\n{safe(exc, newlines=True)}"
        __getattr__("err").print(message, highlight=False)
        raise SystemExit(EXIT_CONFIG) from None
    # Before anything is printed: a platform's error stored in the outbox may echo a token.
    register_config_secrets(config)
    return config


config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Configuration file (TOML). Default: the bundled rehearsal configuration.",
)


class LazyGroup(click.Group):
    """A command group whose commands' modules are imported when a command is used, not
    before: `lazy` maps each command's name to its module and its one-line help, which is all
    `--help` shows (tests/test_cli_lazy.py keeps that table true to the commands)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy: dict[str, tuple[str, str]] = {}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self.lazy:
            import_module(self.lazy[cmd_name][0])  # its module adds it to this group
        return self.commands.get(cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        names = self.list_commands(ctx)
        if not names:
            return
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = []
        for name in names:
            command = self.commands.get(name)
            if command is not None:
                if not command.hidden:
                    rows.append((name, command.get_short_help_str(limit)))
                continue
            stand_in = click.Command(name, help=self.lazy[name][1])  # shortened the same way
            rows.append((name, stand_in.get_short_help_str(limit)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def setup_logging(*args: Any, **kwargs: Any) -> None:
    from broadcaster.core.logs import setup_logging as setup

    setup(*args, **kwargs)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--log-level", default="INFO", show_default=True, help="DEBUG, INFO, WARNING or ERROR."
)
@click.option(
    "--log-format",
    type=click.Choice(["auto", "json", "text"]),
    default="auto",
    show_default=True,
    help="auto: JSON lines unless writing to a terminal.",
)
@click.option(
    "--as",
    "actor",
    default=None,
    metavar="NAME",
    help="Who is acting, for the audit trail (default: $BROADCASTER_OPERATOR or your user).",
)
@click.pass_context
def main(ctx: click.Context, log_level: str, log_format: str, actor: str | None) -> None:
    """Publish official election results to social media as they come in."""
    ctx.obj = {"log_level": log_level, "log_format": log_format, "actor": actor}


def acting() -> str:
    from broadcaster.outbox.audit import current_actor

    ctx = click.get_current_context()
    return current_actor((ctx.find_root().obj or {}).get("actor"))


def setup_logs(ctx: click.Context, *, quiet: bool = False, **context: Any) -> None:
    fmt = ctx.obj["log_format"]
    level = "WARNING" if quiet and ctx.obj["log_level"].upper() == "INFO" else ctx.obj["log_level"]
    setup_logging(level, json_lines=None if fmt == "auto" else fmt == "json", context=context)


# -- rehearsals ------------------------------------------------------------------------------


def open_store(config_path: Path | None) -> tuple[Config, Any]:
    """The configuration and its database's store; exit status 2, said plainly, when either
    cannot be used."""
    config = load_config_or_exit(config_path)
    return config, store_for(config)


def store_for(config: Config) -> Any:
    """The configuration's database's store; exit status 2, said plainly, when it cannot be
    used (a schema of another version, a folder that is not there)."""
    from broadcaster.outbox.schema import DatabaseUnusable
    from broadcaster.outbox.store import Store

    try:
        return Store(config.database_url, file_mode=config.output.mode)
    except DatabaseUnusable as exc:
        database_unusable(exc)


def database_unusable(exc: Exception) -> NoReturn:
    """Say why the database cannot be used (outbox/schema.py's DatabaseUnusable) and exit with
    status 2."""
    from broadcaster.core.terminal import safe

    __getattr__("err").print(f"[bold red]database[/]: {safe(exc)}", highlight=False)
    raise SystemExit(EXIT_CONFIG) from None
