"""The `broadcaster` command: one module per command group, all on one click group.

Each module is imported when one of its commands runs (`broadcaster --help` imports none), so
a command pays only for the libraries it uses. A new command goes in COMMANDS with its module
and the first line of its help.
"""

from broadcaster.cli.app import main

# command -> (module under broadcaster.cli, the first paragraph of its help)
COMMANDS: dict[str, tuple[str, str]] = {
    "alerts": (
        "alerts",
        "Alerts to the operators ([[alerts]] and [alerting]; docs/operations.md).",
    ),
    "audit": ("outbox", "Who did what to the outbox and the accounts, and when (newest first)."),
    "auth": ("accounts", "Authorise an account and keep its tokens in the token store."),
    "console": (
        "console",
        "Serve the operator console ([console] in the configuration); or manage its users.",
    ),
    "db": ("db", "The database's schema (docs/operations.md, 'Upgrading the database')."),
    "demo": (
        "rehearsals",
        "Rehearse the bundled fictional election night (dry run, no accounts, no network).",
    ),
    "doctor": (
        "accounts",
        "Check every account's credentials, permissions and target; one line each.",
    ),
    "emulator": (
        "emulator",
        "Run the local emulator of the platforms (see broadcaster/rehearsal/emulator/).",
    ),
    "feed": ("feed", "Check a results feed before the night."),
    "golive": (
        "night",
        "Check everything before the real night: configuration, accounts, feed, templates, "
        "database and cards; one line each, exit status 1 if anything fails.",
    ),
    "live": (
        "live",
        "Stream the live results channel to every [[live.destinations]] until SIGTERM, or "
        "render a recorded night into a video file (--rehearse).",
    ),
    "outbox": ("outbox", "Inspect and act on the outbox (works while the daemon runs)."),
    "pause": ("outbox", "Stop posting to an account, or to every account of a platform."),
    "preview": (
        "templates",
        "Print exactly what an account would post for one snapshot (and draw its card).",
    ),
    "rehearse": (
        "rehearsals",
        "Replay a recorded night (a folder of snapshots, or one file) and show every post.",
    ),
    "resume": ("outbox", "Resume posting to an account, or to every account of a platform."),
    "run": ("night", "Run the daemon: poll the feed and publish until SIGTERM or SIGINT."),
    "status": (
        "night",
        "Show the feed, the outbox and any problems, as the running daemon or the database says.",
    ),
    "templates": ("templates", "Check the templates operators edit."),
}

main.lazy.update(
    {name: (f"broadcaster.cli.{module}", text) for name, (module, text) in COMMANDS.items()}
)

__all__ = ["COMMANDS", "main"]

if __name__ == "__main__":  # pragma: no cover
    main()
