"""`broadcaster golive`: the checklist between the last rehearsal and the real night.

Each check answers one question an operator must be sure of before real accounts are used:
is the configuration meant for the night, can every account post, does the feed read, do the
templates render, is the database a fresh (or the night's) one, can cards be written. A check
never changes anything; the list is printed whole, so everything wrong is seen at once.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from broadcaster.alerts.destinations import AlertNotSent, build
from broadcaster.content.lint import lint_templates
from broadcaster.core.clock import WallClock
from broadcaster.core.config import Config
from broadcaster.core.secrets import SecretError, Secrets
from broadcaster.delivery.cards import being_drawn
from broadcaster.delivery.dispatcher import publisher_env
from broadcaster.ingest.feedcheck import check_feed
from broadcaster.outbox.store import DatabaseMode, Store, snapshots
from broadcaster.publishers import PublishError, publisher_class
from broadcaster.runtime.preflight import preflight


@dataclass(frozen=True, slots=True)
class Check:
    """One line of the checklist."""

    name: str
    ok: bool
    detail: str


CheckFn = Callable[[Config], Iterator[Check]]


def configuration(config: Config) -> Iterator[Check]:
    rehearsal = [a.name for a in config.accounts if a.dry_run or a.platform == "dryrun"]
    real = [a.name for a in config.accounts if a.name not in rehearsal]
    if not real:
        yield Check("accounts", False, "every account is a dry run: set dry_run = false")
    elif rehearsal:
        yield Check(
            "accounts",
            False,
            f"{', '.join(rehearsal)} still dry run (dry_run = true): set dry_run = false or "
            "remove them, so that nothing meant for the night is only written to a file",
        )
    else:
        yield Check("accounts", True, f"{len(real)} real: {', '.join(real)}")
    testing = [a.name for a in config.accounts if a.allow_test_posts and a.name in real]
    if testing:
        yield Check(
            "test posts",
            False,
            f"{', '.join(testing)} allow test posts (allow_test_posts = true): remove it",
        )
    if config.feed.is_test:
        yield Check("feed", False, "[feed] is_test = true: every post would be test data")
    yield from _preflight(config)


def _preflight(config: Config) -> Iterator[Check]:
    """The start-up checks `run` makes: paths, folders, logo, the feed's header secrets."""
    problems = preflight(config, secrets=Secrets(config.path(config.secrets.file)))
    for problem in problems:
        yield Check(f"config {problem.key}", False, problem.message)
    if not problems:
        yield Check("config", True, "every path, folder and feed secret it names is there")


def accounts(config: Config) -> Iterator[Check]:
    """`doctor` for every real account: credentials, permissions, target."""
    store = Store(config.database_url, file_mode=config.output.mode)
    env = publisher_env(config, store, WallClock(), Path(config.output.posts))
    try:
        for account in config.accounts:
            if account.dry_run or account.platform == "dryrun":
                continue
            label = f"account {account.name} ({account.platform})"
            try:
                yield Check(label, True, publisher_class(account.platform).doctor(account, env))
            except NotImplementedError as exc:
                yield Check(label, False, str(exc))
            except (PublishError, SecretError) as exc:
                yield Check(label, False, f"{type(exc).__name__}: {exc}")
    finally:
        store.close()


def feed(config: Config) -> Iterator[Check]:
    source = config.feed.source
    target = source if source.startswith(("http://", "https://")) else str(config.path(source))
    if Path(target).is_dir():
        yield Check(
            "feed",
            False,
            f"{source} is a folder of recorded snapshots (a replay), not the night's feed",
        )
        return
    result = check_feed(target, config)
    if result.snapshot is None:
        yield Check("feed", False, f"cannot be read: {result.problem}")
        return
    snap = result.snapshot
    if snap.is_test:
        yield Check(
            "feed",
            False,
            "the feed says it is test data (IsTest): nothing from it would reach a real account",
        )
        return
    yield Check(
        "feed",
        True,
        f"{len(snap.contests)} contests, status {snap.status.value}, generated "
        f"{snap.generated_at.isoformat()}",
    )


def templates(config: Config) -> Iterator[Check]:
    report = lint_templates(config)
    if report.problems:
        shown = "; ".join(report.problems[:3])
        more = f" (and {len(report.problems) - 3} more)" if len(report.problems) > 3 else ""
        yield Check("templates", False, f"{len(report.problems)} problems: {shown}{more}")
    else:
        yield Check("templates", True, f"{report.templates} templates, {report.renders} renders")


def database(config: Config) -> Iterator[Check]:
    store = Store(config.database_url, file_mode=config.output.mode)
    try:
        mode = store.mode()
        with store.engine.connect() as conn:
            seen = conn.execute(snapshots.select().limit(1)).first() is not None
    finally:
        store.close()
    if mode == DatabaseMode.REHEARSAL:
        yield Check(
            "database",
            False,
            "belongs to a rehearsal: its events count as already posted; set [database] url "
            "to a new, empty database for the night",
        )
    elif mode == DatabaseMode.LIVE:
        yield Check("database", True, "the night's (live) database: resuming it")
    elif seen:
        yield Check(
            "database",
            False,
            "holds snapshots but no posts: use a new, empty database for the night",
        )
    else:
        yield Check("database", True, "empty")


def cards(config: Config) -> Iterator[Check]:
    if not config.cards.enabled:
        yield Check("cards", True, "off")
        return
    folder = config.path(config.cards.dir) or Path("cards")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".golive-"):
            pass
    except OSError as exc:
        yield Check("cards", False, f"{folder}: cannot write there ({exc.strerror})")
        return
    # Cards are named by what they show, so a rehearsal's are never reused for a real post;
    # still, say so when there are some, since they mean this folder was used to rehearse.
    old = sum(1 for p in folder.iterdir() if p.suffix in (".png", ".jpg") and not being_drawn(p))
    note = f"; {old} cards from earlier runs (never reused for a different picture)" if old else ""
    yield Check("cards", os.access(folder, os.W_OK), f"{folder} writable{note}")


def alerts(config: Config) -> Iterator[Check]:
    """Every alert destination can be reached (nothing is sent: `broadcaster alerts test`
    sends a test alert)."""

    posts = config.path(config.output.posts) or Path("posts.jsonl")
    destinations = build(config, WallClock(), posts.parent)
    if not destinations:
        yield Check("alerts", True, "none: nobody is told when the night needs them ([[alerts]])")
    for dest in destinations:
        try:
            yield Check(f"alerts {dest.name}", True, dest.check())
        except AlertNotSent as exc:
            yield Check(f"alerts {dest.name}", False, str(exc))
        finally:
            dest.close()


CHECKS: tuple[CheckFn, ...] = (configuration, database, cards, templates, feed, accounts, alerts)


def run_checks(config: Config, checks: tuple[CheckFn, ...] = CHECKS) -> list[Check]:
    """Every check, in order; a check that crashes is a failed line, never a crash."""
    results: list[Check] = []
    for fn in checks:
        try:
            results.extend(fn(config))
        except Exception as exc:  # a checklist must always print whole
            results.append(Check(fn.__name__, False, f"{type(exc).__name__}: {exc}"))
    return results
