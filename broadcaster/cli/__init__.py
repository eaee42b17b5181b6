"""The `broadcaster` command: one module per command group, all on one click group."""

from broadcaster.cli import (  # noqa: F401 - each module adds its commands to `main`
    accounts,
    alerts,
    console,
    db,
    emulator,
    feed,
    live,
    night,
    outbox,
    rehearsals,
    templates,
)
from broadcaster.cli.app import main

__all__ = ["main"]

if __name__ == "__main__":  # pragma: no cover
    main()
