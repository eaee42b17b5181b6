"""Compare the last accepted snapshot with a new one and name what changed, as Events.

`diff` is pure: it takes the state as of the last accepted snapshot and returns the events and the
next state; the caller commits the events and only then adopts the new state. Keys depend only on
the feed's content and its generated times, never on the wall clock, so replaying the same history
gives the same keys.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from broadcaster.domain.events import Event, EventKind
from broadcaster.domain.model import Contest, ContestKind, ResultsStatus, Snapshot
from broadcaster.domain.tally import Tally, compute_tally

FINAL_TALLY = "tally/final"  # the key of the tally posted once every seat is declared


@dataclass(frozen=True, slots=True)
class DiffRules:
    thresholds: tuple[int, ...] = (25, 50, 75, 100)
    tally_every: timedelta | None = timedelta(minutes=30)
    majority_seats: int | None = None


@dataclass(frozen=True, slots=True)
class DiffState:
    """What the differ remembers between snapshots; rebuilt from the database after a restart."""

    previous: Snapshot | None = None
    # contest id -> the outcome last announced (called/corrected), as compared for corrections
    announced: dict[str, tuple[str, ...]] = field(default_factory=dict)
    last_tally: tuple[tuple[str, int], ...] | None = None
    last_tally_slot: datetime | None = None
    tally_final: bool = False


def outcome(contest: Contest) -> tuple[str, ...]:
    """Who won: winner ids, or `party:seats` pairs for a party list. Order-independent."""
    if contest.kind is ContestKind.PARTY:
        return tuple(sorted(f"{s.id}:{s.seats or 0}" for s in contest.selections if s.seats))
    return tuple(sorted(s.id for s in contest.selections if s.winner))


def figures_digest(contest: Contest) -> str:
    """A short stable digest of a contest's figures, used in correction keys."""
    text = "|".join(
        f"{s.id}={s.votes}:{int(s.winner)}:{s.seats or 0}"
        for s in sorted(contest.selections, key=lambda s: s.id)
    )
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def tally_slot(at: datetime, every: timedelta) -> datetime:
    seconds = int(every.total_seconds())
    ts = int(at.timestamp())
    return datetime.fromtimestamp(ts - ts % seconds, UTC)


def diff(state: DiffState, new: Snapshot, rules: DiffRules) -> tuple[list[Event], DiffState]:
    """Events revealed by `new` compared with `state` (most urgent first), and the next state."""
    prev = state.previous
    prev_index = prev.contest_index if prev is not None else {}
    at = new.generated_at
    events: list[Event] = []
    announced = state.announced
    changed_announced: dict[str, tuple[str, ...]] = {}

    for contest in new.contests:
        before = prev_index.get(contest.id)
        events.extend(_progress_events(before, contest, rules, at))
        if contest.called:
            result = outcome(contest)
            last = announced.get(contest.id)
            if last is None:
                changed_announced[contest.id] = result
                events.append(
                    Event(
                        key=f"contest/{contest.id}/called",
                        kind=EventKind.CALLED,
                        at=at,
                        contest_id=contest.id,
                        data={"winners": list(result)},
                    )
                )
            elif _is_correction(before, contest, last, result, new.status):
                changed_announced[contest.id] = result
                events.append(_correction(before, contest, last, result, at))
        elif contest.id not in announced:
            leader = _leader_event(before, contest, at)
            if leader is not None:
                events.append(leader)

    new_state = replace(
        state,
        previous=new,
        announced={**announced, **changed_announced} if changed_announced else announced,
    )
    tally_events, new_state = _tally_events(prev, new, rules, new_state)
    events.extend(tally_events)
    events.sort(key=lambda e: e.priority)
    return events, new_state


def _progress_events(
    before: Contest | None, contest: Contest, rules: DiffRules, at: datetime
) -> list[Event]:
    crossed = [
        t
        for t in rules.thresholds
        if contest.progress.reached(t) and not (before is not None and before.progress.reached(t))
    ]
    if not crossed:
        return []
    # Several thresholds crossed at once make one post about the highest.
    top = max(crossed)
    return [
        Event(
            key=f"contest/{contest.id}/progress/{top}",
            kind=EventKind.PROGRESS,
            at=at,
            contest_id=contest.id,
            data={"threshold": top},
        )
    ]


def _leader_event(before: Contest | None, contest: Contest, at: datetime) -> Event | None:
    if before is None:
        return None
    old, new = before.leader, contest.leader
    if old is None or new is None or old.id == new.id:
        return None
    # The vote total makes the key unique even if the lead later swings back to the same selection.
    return Event(
        key=f"contest/{contest.id}/leader/{new.id}/{contest.total_votes}",
        kind=EventKind.LEADER,
        at=at,
        contest_id=contest.id,
        data={"leader": new.id, "previous": old.id},
    )


def _is_correction(
    before: Contest | None,
    contest: Contest,
    last: tuple[str, ...],
    result: tuple[str, ...],
    status: ResultsStatus,
) -> bool:
    if result != last:
        return True
    if before is None or not before.called:
        return False
    old = {s.id: s.votes for s in before.selections}
    new = {s.id: s.votes for s in contest.selections}
    if old == new:
        return False
    # Counting that simply goes on after a call is not a correction; a count that goes down,
    # a change after the count was complete, or a feed flagged as a correction is.
    if old.keys() != new.keys() or any(new[k] < old[k] for k in old):
        return True
    return before.progress.complete or status is ResultsStatus.CORRECTION


def _correction(
    before: Contest | None,
    contest: Contest,
    last: tuple[str, ...],
    result: tuple[str, ...],
    at: datetime,
) -> Event:
    previous_votes = {s.id: s.votes for s in before.selections} if before is not None else {}
    return Event(
        key=f"contest/{contest.id}/corrected/{figures_digest(contest)}",
        kind=EventKind.CORRECTED,
        at=at,
        contest_id=contest.id,
        data={
            "previous_winners": list(last),
            "winners": list(result),
            "winner_changed": result != last,
            "previous_votes": previous_votes,
        },
    )


def _tally_events(
    prev: Snapshot | None, new: Snapshot, rules: DiffRules, state: DiffState
) -> tuple[list[Event], DiffState]:
    tally = compute_tally(new, rules.majority_seats)
    events: list[Event] = []
    prev_tally: Tally | None = compute_tally(prev, rules.majority_seats) if prev else None
    prev_holders = {h.id for h in prev_tally.majority_holders()} if prev_tally else set()
    for holder in tally.majority_holders():
        if holder.id in prev_holders:
            continue
        events.append(
            Event(
                key=f"tally/majority/{holder.id}",
                kind=EventKind.MAJORITY,
                at=new.generated_at,
                data={
                    "holder": holder.id,
                    "name": holder.name,
                    "seats": holder.seats,
                    "is_coalition": holder.id in new.coalitions,
                },
            )
        )

    if tally.declared_seats == 0 or tally.signature == state.last_tally:
        return events, state
    complete = tally.total_seats > 0 and tally.contests_called == tally.contests_total
    if complete and not state.tally_final:
        key = FINAL_TALLY
    elif rules.tally_every is None:
        return events, state
    else:
        slot = tally_slot(new.generated_at, rules.tally_every)
        if state.last_tally_slot is not None and slot <= state.last_tally_slot:
            return events, state
        key = f"tally/{slot.strftime('%Y-%m-%dT%H:%MZ')}"
    events.append(
        Event(
            key=key,
            kind=EventKind.TALLY,
            at=new.generated_at,
            data={"final": key == FINAL_TALLY, "signature": [list(x) for x in tally.signature]},
        )
    )
    return events, replace(
        state,
        last_tally=tally.signature,
        last_tally_slot=tally_slot(new.generated_at, rules.tally_every)
        if rules.tally_every
        else None,
        tally_final=state.tally_final or complete,
    )
