"""The `broadcaster` command group and what its commands share."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.console import Console

from broadcaster.core.config import (
    Config,
    ConfigError,
)
from broadcaster.core.logs import setup_logging
from broadcaster.core.terminal import safe
from broadcaster.runtime.configuration import load_config

EXIT_CONFIG = 2

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)


def load_config_or_exit(config_path: Path | None) -> Config:
    from broadcaster.core.secrets import register_config_secrets

    try:
        config = load_config(config_path)
    except ConfigError as exc:
        err.print(f"[bold red]configuration error[/]\n{safe(exc, newlines=True)}", highlight=False)
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


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
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
    from broadcaster.outbox.schema import SchemaMismatch
    from broadcaster.outbox.store import Store

    config = load_config_or_exit(config_path)
    try:
        return config, Store(config.database_url, file_mode=config.output.mode)
    except SchemaMismatch as exc:
        err.print(f"[bold red]database[/]: {safe(exc)}", highlight=False)
        raise SystemExit(EXIT_CONFIG) from None
