"""Checks of what the configuration points at, made before the night and while it runs.

`preflight(config)` is what `broadcaster run` checks before starting (each problem refuses the
start, exit 2, naming the key) and what `broadcaster golive` lists: the local feed file or
snapshot folder, the feed's header secrets, the card logo, the template folders. What can go
wrong later too (a file or folder vanishing, the logo becoming unreadable) is checked again by
`runtime_problems(config)` for `broadcaster status` and `/healthz`.
"""

from __future__ import annotations

from pathlib import Path

from broadcaster.core.config import Config, Problem
from broadcaster.core.secrets import SecretError, Secrets
from broadcaster.ingest.locations import SNAPSHOT_SUFFIXES, is_url


def preflight(config: Config, *, secrets: Secrets | None = None) -> list[Problem]:
    """Every problem that must stop `run` from starting; empty when all is in place."""
    return [*runtime_problems(config), *_feed_secrets(config, secrets)]


def runtime_problems(config: Config) -> list[Problem]:
    """The problems that can also appear while the daemon runs (files that vanish)."""
    problems: list[Problem] = []
    source = _feed_source(config)
    if source is not None:
        problems.append(source)
    cards = config.cards
    if cards.enabled and cards.logo:
        problem = _readable_file(config.path(cards.logo))
        if problem:
            problems.append(Problem("[cards] logo", problem))
    folders = [("[templates] dir", config.templates.dir)] + [
        (f"accounts ({a.name}).templates", a.templates) for a in config.accounts
    ]
    for key, value in folders:
        if value is None:
            continue
        path = config.path(value)
        assert path is not None
        if not path.is_dir():
            what = "is not a folder" if path.exists() else "does not exist"
            problems.append(Problem(key, f"{path} {what}"))
    return problems


def _feed_source(config: Config) -> Problem | None:
    value = config.feed.source
    if is_url(value):
        return None
    path = config.path(value)
    assert path is not None
    key = "[feed] source"
    if not path.exists():
        return Problem(key, f"{path} does not exist (a file, a folder of snapshots, or a URL)")
    if path.is_dir():
        try:
            found = any(
                p.is_file() and p.suffix.lower() in SNAPSHOT_SUFFIXES for p in path.iterdir()
            )
        except OSError as exc:
            return Problem(key, f"cannot read the folder {path}: {exc.strerror}")
        if not found:
            kinds = ", ".join(SNAPSHOT_SUFFIXES)
            return Problem(key, f"the folder {path} holds no snapshot files ({kinds})")
        return None
    problem = _readable_file(path)
    return Problem(key, problem) if problem else None


def _readable_file(path: Path | None) -> str | None:
    assert path is not None
    if not path.exists():
        return f"{path} does not exist"
    if not path.is_file():
        return f"{path} is not a file"
    try:
        with path.open("rb") as fh:
            fh.read(1)
    except OSError as exc:
        return f"cannot read {path}: {exc.strerror}"
    return None


def _feed_secrets(config: Config, secrets: Secrets | None) -> list[Problem]:
    if not config.feed.headers:
        return []
    secrets = secrets or Secrets(config.path(config.secrets.file))
    problems = []
    for header, name in config.feed.headers.items():
        key = f"[feed] headers.{header}"
        try:
            secrets.get(name, what=key)
        except SecretError as exc:
            problems.append(Problem(key, str(exc).removeprefix(f"{key}: ")))
    return problems
