"""What the channel shows: the latest accepted snapshot, its national tally and the latest calls.

Two feeds produce the same `ChannelData`: `StoreFeed` reads the database the daemon writes (the
night), `ReplayFeed` parses a recorded night on its own clock (rehearsals, no database needed).
Both are cheap to ask "anything new?" many times a second.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

from broadcaster.core.config import Config
from broadcaster.domain import status
from broadcaster.domain.model import Contest, ContestKind, Snapshot
from broadcaster.domain.tally import Tally, compute_tally
from broadcaster.ingest.parsers import FeedError, reader_for
from broadcaster.outbox.reports import latest_marks, received_at, recent_calls
from broadcaster.outbox.store import Store

log = logging.getLogger(__name__)

MAX_CALLS = 12  # calls kept for the ticker, newest first


@dataclass(frozen=True, slots=True)
class Call:
    """A contest declared, and when (feed time)."""

    contest_id: str
    at: datetime


@dataclass(frozen=True)
class ChannelData:
    """One state of the results as the channel shows it. `version` changes with any of it."""

    version: int
    snapshot: Snapshot | None
    tally: Tally | None
    calls: tuple[Call, ...] = ()
    accepted_at: datetime | None = None  # when the snapshot was accepted (None in rehearsals)
    problems: tuple[str, ...] = field(default=())


EMPTY = ChannelData(version=0, snapshot=None, tally=None)


def results_status(snapshot: Snapshot | None) -> str:
    """The results' status shown on screen: `waiting`, `provisional`, `official`, `certified`
    or `corrected`, from the one place that decides it for posts and cards too."""
    return status.results_status(snapshot)


def in_progress(snapshot: Snapshot) -> list[Contest]:
    """Seat contests with results coming in but not yet declared, most advanced first."""
    counting = [
        c
        for c in snapshot.contests
        if c.kind is not ContestKind.MEASURE and not c.called and c.total_votes > 0
    ]
    return sorted(counting, key=lambda c: (-(c.progress.percent or 0.0), c.id))


def reporting(snapshot: Snapshot) -> tuple[int, int, float | None]:
    """(contests declared, seat contests, share of counting units reported in %)."""
    seat_contests = [c for c in snapshot.contests if c.kind is not ContestKind.MEASURE]
    declared = sum(1 for c in seat_contests if c.called)
    reported = sum(c.progress.reported or 0 for c in seat_contests if c.progress.total)
    total = sum(c.progress.total or 0 for c in seat_contests)
    return declared, len(seat_contests), (100.0 * reported / total if total else None)


class StoreFeed:
    """The latest accepted snapshot in the database, read again only when a newer one lands."""

    def __init__(self, config: Config, store: Store) -> None:
        self.config = config
        self.store = store
        self._seen: tuple[int, int] | None = None
        self._data = EMPTY

    def poll(self) -> ChannelData:
        """The current data; the same object while nothing changed."""
        marks = latest_marks(self.store)
        if marks == self._seen:
            return self._data
        last = self.store.last_accepted()
        if last is None:
            self._seen = marks
            return self._data
        snapshot = last[0]
        accepted = received_at(self.store, marks[0])
        recent = recent_calls(self.store, MAX_CALLS * 2)
        calls = unique_calls(Call(r.contest_id, r.at) for r in recent)
        tally = compute_tally(snapshot, self.config.events.majority_seats or None)
        self._seen = marks
        self._data = ChannelData(
            version=self._data.version + 1,
            snapshot=snapshot,
            tally=tally,
            calls=calls,
            accepted_at=accepted,
        )
        return self._data


def unique_calls(calls: Iterable[Call]) -> tuple[Call, ...]:
    seen: set[str] = set()
    out: list[Call] = []
    for call in calls:
        if call.contest_id not in seen:
            seen.add(call.contest_id)
            out.append(call)
        if len(out) >= MAX_CALLS:
            break
    return tuple(out)


@dataclass(frozen=True, slots=True)
class ReplayStep:
    at: datetime  # the snapshot's own time
    data: ChannelData


def replay_steps(config: Config, files: Sequence[Path]) -> list[ReplayStep]:
    """A recorded night as the channel would have shown it: one step per readable snapshot, in
    feed-time order, with the calls found by comparing each snapshot with the one before (the
    differ's rule: a contest called now and not before). Unreadable snapshots are skipped and
    logged, as the daemon rejects them."""

    read = reader_for(config)
    steps: list[ReplayStep] = []
    called_before: set[str] = set()
    calls: list[Call] = []
    for path in files:
        try:
            snapshot = read(path.read_bytes())
        except FeedError as exc:
            log.warning("replay: %s rejected: %s", path.name, exc.problem)
            continue
        except OSError as exc:
            log.warning("replay: %s unreadable: %s", path.name, exc.strerror)
            continue
        if config.feed.is_test and not snapshot.is_test:
            snapshot = replace(snapshot, is_test=True)
        if steps and snapshot.generated_at < steps[-1].at:
            log.warning("replay: %s goes back in time; skipped", path.name)
            continue
        now_called = {c.id for c in snapshot.contests if c.called}
        for contest in snapshot.contests:
            if contest.called and contest.id not in called_before:
                calls.insert(0, Call(contest.id, snapshot.generated_at))
        called_before = now_called
        data = ChannelData(
            version=len(steps) + 1,
            snapshot=snapshot,
            tally=compute_tally(snapshot, config.events.majority_seats or None),
            calls=unique_calls(calls),
        )
        steps.append(ReplayStep(snapshot.generated_at, data))
    return steps
