"""Rehearsals: replay a recorded night through the real pipeline into dry-run publishers.

Time is the feed's time: the clock follows the snapshots' generated times however fast the
replay runs, so a `--fast` replay produces exactly the posts of a real-time one. State lives in
the output folder, so replaying into the same folder again posts nothing new.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from broadcaster.core.clock import FeedClock
from broadcaster.core.config import AccountConfig, Config, DatabaseConfig, OutputConfig
from broadcaster.core.secrets import Secrets, TokenStore, register_config_secrets
from broadcaster.delivery.cards import CardMaker
from broadcaster.delivery.dispatcher import Dispatcher, publisher_env
from broadcaster.delivery.videos import VideoMaker, wants_videos
from broadcaster.domain.posts import PostState
from broadcaster.ingest.sources import fetched_file, snapshot_files
from broadcaster.outbox.state import State
from broadcaster.outbox.store import DatabaseMode, ModeMismatch, Store, require_mode
from broadcaster.publishers import PublisherEnv, publisher_class
from broadcaster.publishers.registry import VIDEO_KEYS
from broadcaster.rehearsal.emulator import Emulator, EmulatorServer
from broadcaster.runtime.cycle import CycleResult, Pipeline
from broadcaster.runtime.daemon import ShortsFactory

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
    emulator: dict[str, Any] | None = None  # what the emulator received, with --emulator


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
    emulator: bool = False,
    tail: float = 0.0,
    shorts: ShortsFactory | None = None,
) -> RehearsalReport:
    """Replay `replay` (a folder or one file). `speed=None` means back to back (`--fast`).

    With `emulator`, posts go through the real adapters and client libraries, over HTTP, to
    the local platform emulator (on the feed's clock) instead of the dry-run publisher.
    Between snapshots the clock steps to each moment a post falls due (a retry, a paced slot, a
    platform's wait), as the daemon's dispatcher would meet it; `tail` seconds of feed time are
    played after the last snapshot for what is still waiting."""
    files = replay_files(replay)
    out_dir.mkdir(parents=True, exist_ok=True)
    config = rehearsal_config(config, out_dir)
    register_config_secrets(config)  # a dry run's posts.jsonl never holds one either
    # Practice: a machine crash during a rehearsal costs a replay, not a post.
    store = Store(config.database_url, file_mode=config.output.mode, durable=False)
    try:
        require_mode(store, DatabaseMode.REHEARSAL)
    except ModeMismatch:
        store.close()
        raise
    clock = FeedClock()
    last = store.last_accepted()
    if last is not None:
        clock.advance_to(last[0].generated_at)
    server = None
    env = publisher_env(config, store, clock, Path(config.output.posts))
    if emulator:
        server = EmulatorServer(emulator=Emulator(clock=lambda: clock.now().timestamp())).start()
        config, env = point_at_emulator(config, env, server.url, out_dir)
    pipeline = Pipeline(config, store, clock=clock, dry_run=not emulator)
    cards = CardMaker(config, store, out_dir / "cards") if config.cards.enabled else None
    videos = None
    if shorts is not None and wants_videos(config):
        videos = VideoMaker(config, store, out_dir / "cards", shorts(config, store), clock)
    dispatcher = Dispatcher(
        config, store, clock=clock, env=env, dry_run=not emulator, cards=cards, videos=videos
    )
    report = RehearsalReport(out_dir=out_dir)
    try:
        report.sent += dispatcher.recover().sent
        report.sent += dispatcher.drain().sent
        ticker = Ticker(clock, dispatcher, speed, sleep)
        for path in files:
            report.snapshots += 1
            # A large report is read from a temporary copy, piece by piece (payload.py).
            fetched = fetched_file(path, sys.maxsize)
            read = pipeline.read(fetched, str(replay))
            # Parsed: the bytes (42 MB for a 20,000-seat report) are not kept through the
            # dispatching that follows.
            fetched = replace(fetched, body=b"")
            if isinstance(read, CycleResult):
                result = read
            else:
                snapshot, parse_time = read
                report.sent += ticker.run_until(snapshot.generated_at)
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
        if tail > 0 and report.accepted:
            # After the last snapshot the night goes on: what waits for budget still goes out.
            report.sent += ticker.run_until(clock.now() + timedelta(seconds=tail))
        _summarise(store, report, {a.name for a in config.accounts})
        if server is not None:
            report.emulator = server.emulator.snapshot()
    finally:
        dispatcher.close()
        store.close()
        if server is not None:
            server.stop()
    return report


class Ticker:
    """Moves the feed clock forward to a target, stopping wherever the dispatcher has something
    due, so paced and retried posts go out at the feed time they would on the night."""

    STEP = timedelta(seconds=60)  # how often to look when posts wait with no known time

    def __init__(
        self,
        clock: FeedClock,
        dispatcher: Dispatcher,
        speed: float | None,
        sleep: Callable[[float], None],
    ) -> None:
        self.clock = clock
        self.dispatcher = dispatcher
        self.speed = speed
        self.sleep = sleep
        self.wall = time.monotonic()
        self.feed: datetime | None = None  # feed time at `wall`; None until the first snapshot

    def _advance(self, moment: datetime) -> None:
        if self.speed is not None and self.feed is not None:
            gap = (moment - self.feed).total_seconds() / self.speed
            remaining = gap - (time.monotonic() - self.wall)
            if remaining > 0:
                self.sleep(remaining)
        self.feed, self.wall = moment, time.monotonic()
        self.clock.advance_to(moment)

    def run_until(self, target: datetime) -> int:
        """Dispatch at every due moment before `target`; returns posts sent."""
        sent = 0
        while self.clock.now() < target and not self.dispatcher.stop.is_set():
            due = self.dispatcher.next_due()
            if due is None:
                if not self.dispatcher.store.posts_in_state(PostState.PENDING, limit=1):
                    break
                due = self.clock.now() + self.STEP
            if due >= target:
                break
            self._advance(due)
            sent += self.dispatcher.drain().sent
        self._advance(max(target, self.clock.now()))
        return sent


def point_at_emulator(
    config: Config, env: PublisherEnv, base: str, out_dir: Path
) -> tuple[Config, PublisherEnv]:
    """Every account, on its real adapter, aimed at the emulator with stand-in credentials."""
    accounts = []
    secrets: dict[str, str] = {}
    tokens = TokenStore(out_dir / "emulator-tokens.json")
    for account in config.accounts:
        emu = publisher_class(account.platform).emulator_account(base, out_dir)
        if emu is None:
            accounts.append(account)  # a dryrun account stays a dry run
            continue
        secrets.update(emu.secrets)
        if emu.tokens and not tokens.get(account.name):
            tokens.put(account.name, emu.tokens)
        data = account.model_dump(exclude_none=True)
        data = {k: v for k, v in data.items() if k in AccountConfig.model_fields}
        # The account's video posts stay as configured (the emulator takes them too).
        video = {k: v for k, v in account.settings.items() if k in VIDEO_KEYS}
        # The emulator is no real account: test data may go to it.
        overrides = {**emu.settings, **video, "dry_run": False, "allow_test_posts": True}
        accounts.append(AccountConfig.model_validate({**data, **overrides}))
    config = config.with_overrides(accounts=accounts)
    env = replace(env, secrets=Secrets(environ=secrets), tokens=tokens)
    return config, env


def _summarise(store: Store, report: RehearsalReport, accounts: set[str]) -> None:
    for (platform, kind, state), n in store.count_posts().items():
        if state == PostState.SENT:
            report.table[(platform, kind)] = report.table.get((platform, kind), 0) + n
    night = State(store)
    # The same few reasons for tens of thousands of posts: each account's is read once.
    slots: dict[str, str] = {}

    def slot(account: str) -> str:
        if account not in slots:
            waiting = night.waiting(account)
            if waiting is None:
                slots[account] = "not yet sent"
            else:
                until = f" (next slot {waiting.until.isoformat()})" if waiting.until else ""
                slots[account] = waiting.reason + until
        return slots[account]

    for state in (PostState.PENDING, PostState.HELD, PostState.SENDING, PostState.FAILED):
        for row in store.why_waiting(state):
            if row.account not in accounts:
                why = "its account is not in this configuration"
            elif row.hold_reason or row.last_error:
                why = row.hold_reason or row.last_error
            elif row.not_before is not None:
                why = f"due at {row.not_before.isoformat()}"
            else:
                why = slot(row.account)
            report.waiting.append((row.id, row.account, state, why))
