"""`broadcaster --help` imports no command module (issue 13), and its table of commands stays
true to the commands themselves."""

from __future__ import annotations

import subprocess
import sys
from importlib import import_module
from pathlib import Path

import click
from click.testing import CliRunner

from broadcaster.cli import COMMANDS, main


def test_the_lazy_table_names_every_command_with_its_module_and_help() -> None:
    for module in {m for m, _ in COMMANDS.values()}:
        import_module(f"broadcaster.cli.{module}")
    ctx = click.Context(main)
    assert set(main.commands) == set(COMMANDS)
    for name, (module, text) in COMMANDS.items():
        command = main.commands[name]
        assert command.callback is not None
        assert command.callback.__module__ == f"broadcaster.cli.{module}", name
        for limit in (45, 200):
            short = click.Command(name, help=text).get_short_help_str(limit)
            assert command.get_short_help_str(limit) == short, name
    assert main.list_commands(ctx) == sorted(COMMANDS)


def test_help_lists_every_command_without_importing_them() -> None:
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from broadcaster.cli import main\n"
        "result = CliRunner().invoke(main, ['--help'], terminal_width=100)\n"
        "print(result.output)\n"
        "heavy = ('broadcaster.cli.night', 'broadcaster.cli.rehearsals', 'sqlalchemy',\n"
        "         'pydantic', 'broadcaster.runtime.configuration', 'twitter_text', 'PIL',\n"
        "         'rich')\n"
        "print('LOADED', [m for m in heavy if m in sys.modules])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert "LOADED []" in done.stdout
    for name in COMMANDS:
        assert f"\n  {name} " in done.stdout


# What `broadcaster status` must not import (issue 13): HTTP clients and the platforms' client
# libraries (the configured platforms' modules are imported, for their settings models, but
# not what only their adapters at work use), the token store's file lock, the feed's HTTP
# source, the snapshot's model, and the pipeline's and the templates' machinery.
NOT_FOR_STATUS = (
    "requests",
    "urllib3",
    "facebook",
    "tweepy",
    "googleapiclient",
    "google.auth",
    "httplib2",
    "filelock",
    "alembic",
    "sqlalchemy.orm",
    "jinja2",
    "babel",
    "PIL",
    "av",
    "twitter_text",
    "broadcaster.publishers.adapter",
    "broadcaster.ingest.sources",
    "broadcaster.domain.model",
    "broadcaster.planning.planner",
    "broadcaster.delivery.dispatcher",
    "broadcaster.content",
)


def test_status_imports_none_of_what_only_other_commands_use(tmp_path: Path) -> None:
    demo = Path(__file__).resolve().parent.parent / "broadcaster/rehearsal/demo/rehearsal.toml"
    config = tmp_path / "c.toml"
    snapshots = demo.parent / "snapshots"
    database = tmp_path / "state.db"
    config.write_text(
        demo.read_text().replace('source = "snapshots"', f'source = "{snapshots}"')
        + '\n[[accounts]]\nname = "telegram-demo"\nplatform = "telegram"\ndry_run = true\n'
        + f'\n[database]\nurl = "sqlite:///{database}"\n'
    )
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from broadcaster.cli import main\n"
        f"result = CliRunner().invoke(main, ['status', '--config', {str(config)!r}])\n"
        "print('EXIT', result.exit_code, result.output)\n"
        "from broadcaster.publishers import real_platforms\n"
        "print('PLATFORMS', all(f'broadcaster.publishers.{p}' in sys.modules\n"
        "                       for p in real_platforms()))\n"
        f"print('LOADED', [m for m in {NOT_FOR_STATUS!r} if m in sys.modules])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert "EXIT 0 " in done.stdout, done.stdout + done.stderr
    assert "Accounts" in done.stdout
    assert "PLATFORMS True" in done.stdout  # each platform's module was read, as it must be
    assert "LOADED []" in done.stdout, done.stdout


def test_a_command_is_loaded_when_used() -> None:
    result = CliRunner().invoke(main, ["templates", "--help"])
    assert result.exit_code == 0, result.output
    assert "Check the templates operators edit." in result.output
