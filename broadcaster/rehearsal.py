"""Rehearsals: replay a recorded night through the real pipeline into dry-run publishers.

Time is the feed's time: the clock follows the snapshots' generated times however fast the
replay runs, so a `--fast` replay produces exactly the posts of a real-time one. State lives in
the output folder, so replaying into the same folder again posts nothing new.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from broadcaster.cardmaker import CardMaker
from broadcaster.clock import FeedClock
from broadcaster.config import Config, DatabaseConfig, OutputConfig
from broadcaster.dispatcher import Dispatcher
from broadcaster.pipeline import CycleResult, Pipeline
from broadcaster.publishers import PublisherEnv
from broadcaster.sources import SourceDown, make_fetched, snapshot_files
from broadcaster.store import PostState, Store

log = logging.getLogger(__name__)


@dataclass
class RehearsalReport:
    out_dir: Path
    snapshots: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: list[tuple[str, str]] = field(default_factory=list)
    events: int = 0
    new_posts: int = 0
    sent: int = 0
    # (platform, event kind) -> posts sent, over the whole output folder
    table: dict[tuple[str, str], int] = field(default_factory=dict)
    waiting: list[tuple[int, str, str, str]] = field(
        default_factory=list
    )  # id, account, state, why


def rehearsal_config(config: Config, out_dir: Path) -> Config:
    """The configuration with state and output redirected into `out_dir`."""
    return config.with_overrides(
        database=DatabaseConfig(url=f"sqlite:///{(out_dir / 'state.db').resolve()}"),
        output=OutputConfig(posts=str((out_dir / "posts.jsonl").resolve())),
        cards=config.cards.model_copy(update={"dir": str((out_dir / "cards").resolve())}),
    )


def replay_files(replay: Path) -> list[Path]:
    if replay.is_dir():
        files = snapshot_files(replay)
        if not files:
            raise FileNotFoundError(
                f"{replay}: no snapshot files (.json, .csv, .xml) in this folder"
            )
        return files
    if not replay.is_file():
        raise FileNotFoundError(f"{replay}: no such file or folder")
    return [replay]


def rehearse(
    config: Config,
    replay: Path,
    out_dir: Path,
    *,
    speed: float | None = None,
    on_step: Callable[[Path, CycleResult], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> RehearsalReport:
    """Replay `replay` (a folder or one file). `speed=None` means back to back (`--fast`)."""
    files = replay_files(replay)
    out_dir.mkdir(parents=True, exist_ok=True)
    config = rehearsal_config(config, out_dir)
    store = Store(config.database_url)
    clock = FeedClock()
    env = PublisherEnv(
        clock=clock, posts_path=Path(config.output.posts), timezone=config.election.timezone
    )
    pipeline = Pipeline(config, store, clock=clock, dry_run=True)
    if pipeline.state.previous is not None:
        clock.advance_to(pipeline.state.previous.generated_at)
    cards = CardMaker(config, store, out_dir / "cards") if config.cards.enabled else None
    dispatcher = Dispatcher(config, store, clock=clock, env=env, dry_run=True, cards=cards)
    report = RehearsalReport(out_dir=out_dir)
    try:
        report.sent += dispatcher.recover().sent
        report.sent += dispatcher.drain().sent
        last_feed_time = None
        last_wall = time.monotonic()
        for path in files:
            report.snapshots += 1
            try:
                fetched = make_fetched(path.read_bytes(), path.name)
            except OSError as exc:
                raise SourceDown(f"{path}: {exc.strerror}") from None
            read = pipeline.read(fetched, str(replay))
            if isinstance(read, CycleResult):
                result = read
            else:
                snapshot, parse_time = read
                if speed is not None and last_feed_time is not None:
                    gap = (snapshot.generated_at - last_feed_time).total_seconds() / speed
                    remaining = gap - (time.monotonic() - last_wall)
                    if remaining > 0:
                        sleep(remaining)
                last_feed_time, last_wall = snapshot.generated_at, time.monotonic()
                clock.advance_to(snapshot.generated_at)
                result = pipeline.apply(fetched, str(replay), snapshot, parse_time=parse_time)
            if result.outcome == "accepted":
                report.accepted += 1
                report.events += result.events
                report.new_posts += result.posts
            elif result.outcome == "rejected":
                report.rejected.append((path.name, result.error or "rejected"))
            elif result.outcome == "duplicate":
                report.duplicates += 1
            report.sent += dispatcher.drain().sent
            if on_step is not None:
                on_step(path, result)
        _summarise(store, report, {a.name for a in config.accounts})
    finally:
        dispatcher.close()
        store.close()
    return report


def _summarise(store: Store, report: RehearsalReport, accounts: set[str]) -> None:
    for (platform, kind, state), n in store.count_posts().items():
        if state == PostState.SENT:
            report.table[(platform, kind)] = report.table.get((platform, kind), 0) + n
    for state in (PostState.PENDING, PostState.HELD, PostState.SENDING, PostState.FAILED):
        for row in store.posts_in_state(state):
            if row.account not in accounts:
                why = "its account is not in this configuration"
            elif row.hold_reason or row.last_error:
                why = row.hold_reason or row.last_error
            elif row.not_before is not None:
                why = f"due at {row.not_before.isoformat()}"
            else:
                why = "not yet sent"
            report.waiting.append((row.id, row.account, state, why))
