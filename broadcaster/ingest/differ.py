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
from typing import Literal

from broadcaster.core.config import Config, EventsConfig
from broadcaster.domain.events import Event, EventKind
from broadcaster.domain.model import (
    Contest,
    ContestKind,
    ContestState,
    ResultsStatus,
    Snapshot,
    Stage,
)
from broadcaster.domain.status import NOT_REPORTING, contest_stage, report_stage
from broadcaster.domain.tally import Tally, compute_tally

FINAL_TALLY = "tally/final"  # the key of the tally posted once every seat is declared

# A contest becomes official when its figures go from provisional to declared by an authority.
DECLARED = (Stage.OFFICIAL, Stage.CERTIFIED)

Figures = tuple[tuple[str, int, bool, int], ...]


@dataclass(frozen=True, slots=True)
class DiffRules:
    thresholds: tuple[int, ...] = (25, 50, 75, 100)
    tally_every: timedelta | None = timedelta(minutes=30)
    majority_seats: int | None = None
    # "Too close to call": the margin for the lead (or the last seat) below this many
    # percentage points of the votes, once `close_reported` % of counting units are in.
    close_margin: float = 0.5
    close_reported: int = 95
    # A contest called on provisional figures becoming official is posted when its official
    # figures differ from those it was called on ("changed"), or always ("always").
    official_posts: Literal["changed", "always"] = "changed"

    @classmethod
    def from_config(cls, events: EventsConfig) -> DiffRules:
        return cls(
            thresholds=tuple(events.thresholds),
            tally_every=events.tally_interval,
            majority_seats=events.majority_seats or None,
            close_margin=events.close_margin,
            close_reported=events.close_reported,
            official_posts=events.official,
        )


def rules_from(config: Config) -> DiffRules:
    """The differ's rules as the configuration's [events] section sets them."""
    return DiffRules.from_config(config.events)


@dataclass(frozen=True, slots=True)
class DiffState:
    """What the differ remembers between snapshots; rebuilt from the database after a restart."""

    previous: Snapshot | None = None
    # contest id -> the outcome last announced (called/corrected), as compared for corrections
    announced: dict[str, tuple[str, ...]] = field(default_factory=dict)
    last_tally: tuple[tuple[str, int], ...] | None = None
    last_tally_slot: datetime | None = None
    tally_final: bool = False
    # contest id -> the figures last announced (called, corrected, official), to tell whether
    # official figures differ from the provisional ones. Not restored after a restart: the
    # last accepted snapshot's figures stand in for them then.
    announced_figures: dict[str, Figures] = field(default_factory=dict)


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


def figures(contest: Contest) -> Figures:
    """A contest's figures as posted: (selection, votes, winner, seats), by selection id."""
    return tuple(sorted((s.id, s.votes, s.winner, s.seats or 0) for s in contest.selections))


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

    changed_figures: dict[str, Figures] = {}
    known_figures = state.announced_figures

    # The report's stage once; a contest's own stage only where it has one (a large feed).
    new_base = report_stage(new.status)
    prev_base = report_stage(prev.status) if prev is not None else None
    declared_now = prev_base is Stage.PROVISIONAL and new_base in DECLARED

    for contest in new.contests:
        before = prev_index.get(contest.id)
        events.extend(_progress_events(before, contest, rules, at))
        if before is None or before.state is not contest.state:
            events.extend(_state_events(before, contest, at))
        if before is None or prev is None:
            official = False
        elif contest.stage is None and before.stage is None:
            official = declared_now
        else:
            official = (
                contest_stage(before, prev.status) is Stage.PROVISIONAL
                and contest_stage(contest, new.status) in DECLARED
            )
        if contest.called:
            result = outcome(contest)
            last = announced.get(contest.id)
            if last is None:
                changed_announced[contest.id] = result
                changed_figures[contest.id] = figures(contest)
                events.append(
                    Event(
                        key=f"contest/{contest.id}/called",
                        kind=EventKind.CALLED,
                        at=at,
                        contest_id=contest.id,
                        data={"winners": list(result)},
                    )
                )
                continue
            said = known_figures.get(contest.id)
            if said is None and official and before is not None and before.called:
                said = figures(before)  # after a restart: the last accepted snapshot's
            if official and result == last:
                # Declared official with the winner it was called with: posted again only
                # when the official figures differ from the provisional ones (or if asked).
                now = figures(contest)
                if now != said or rules.official_posts == "always":
                    changed_figures[contest.id] = now
                    events.append(_official(contest, said, now != said, at))
            elif official or _is_correction(before, contest, last, result, new.status):
                # An official declaration that changes the winner is a correction.
                changed_announced[contest.id] = result
                changed_figures[contest.id] = figures(contest)
                events.append(_correction(before, contest, last, result, at, said, official))
        elif contest.id not in announced:
            if official and rules.official_posts == "always":
                events.append(_official(contest, None, False, at))
            leader = _leader_event(before, contest, at)
            if leader is not None:
                events.append(leader)
            events.extend(_close_events(before, prev, contest, new, rules, at))

    # Only the report's own status certifies the election (election_stage never raises to it).
    if new_base is Stage.CERTIFIED and prev_base is not Stage.CERTIFIED:
        events.append(Event(key="election/certified", kind=EventKind.CERTIFIED, at=at))

    new_state = replace(
        state,
        previous=new,
        announced={**announced, **changed_announced} if changed_announced else announced,
        announced_figures=(
            {**known_figures, **changed_figures} if changed_figures else known_figures
        ),
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


def _state_events(before: Contest | None, contest: Contest, at: datetime) -> list[Event]:
    """A contest that will not report tonight (postponed, suspended, withheld), or whose
    recount is announced: once per change of state."""
    state = contest.state
    if before is not None and before.state is state:
        return []
    if state in NOT_REPORTING:
        return [
            Event(
                key=f"contest/{contest.id}/{state.value}",
                kind=EventKind.POSTPONED,
                at=at,
                contest_id=contest.id,
                data={"state": state.value},
            )
        ]
    if state is ContestState.RECOUNT:
        # The figures make the key unique if a second recount is announced later.
        return [
            Event(
                key=f"contest/{contest.id}/recount/{figures_digest(contest)}",
                kind=EventKind.RECOUNT,
                at=at,
                contest_id=contest.id,
                data={"previous_state": before.state.value if before else None},
            )
        ]
    return []


def _late(contest: Contest, status: ResultsStatus, rules: DiffRules) -> bool:
    """Is the count far enough along for a tie or a narrow margin to be news?"""
    progress = contest.progress
    if progress.total:
        return progress.reached(rules.close_reported)
    return status is not ResultsStatus.PARTIAL


def _close_call(contest: Contest, status: ResultsStatus, rules: DiffRules) -> str | None:
    """ "tie", "close" or None for a contest not yet called."""
    if contest.state is not ContestState.NORMAL or not _late(contest, status, rules):
        return None
    pair = contest.boundary()  # one sort of the selections, for the tie and the margin
    if pair is None or pair[0].votes <= 0:
        return None
    if pair[0].votes == pair[1].votes:
        return "tie"
    total = contest.total_votes
    if rules.close_margin <= 0 or total <= 0:
        return None
    margin = pair[0].votes - pair[1].votes
    return "close" if 100.0 * margin < rules.close_margin * total else None


def _close_events(
    before: Contest | None,
    prev: Snapshot | None,
    contest: Contest,
    new: Snapshot,
    rules: DiffRules,
    at: datetime,
) -> list[Event]:
    """A tie that decides a contest, or a margin too close to call, as it appears."""
    now = _close_call(contest, new.status, rules)
    if now is None:
        return []
    if before is not None and prev is not None and _close_call(before, prev.status, rules) == now:
        return []
    pair = contest.boundary()
    assert pair is not None
    margin = pair[0].votes - pair[1].votes
    if now == "tie":
        tied = [s.id for s in contest.selections if s.votes == pair[0].votes]
        # The vote total makes the key unique if the count moves on and ties again.
        return [
            Event(
                key=f"contest/{contest.id}/tie/{contest.total_votes}",
                kind=EventKind.TIE,
                at=at,
                contest_id=contest.id,
                data={"tied": tied},
            )
        ]
    return [
        Event(
            key=f"contest/{contest.id}/close",
            kind=EventKind.CLOSE,
            at=at,
            contest_id=contest.id,
            data={"ahead": pair[0].id, "behind": pair[1].id, "margin": margin},
        )
    ]


def _official(contest: Contest, said: Figures | None, changed: bool, at: datetime) -> Event:
    previous_votes = {sid: votes for sid, votes, _, _ in said} if said else {}
    return Event(
        key=f"contest/{contest.id}/official",
        kind=EventKind.OFFICIAL,
        at=at,
        contest_id=contest.id,
        data={
            "winners": list(outcome(contest)),
            "figures_changed": changed,
            "previous_votes": previous_votes,
        },
    )


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
    said: Figures | None = None,
    official: bool = False,
) -> Event:
    if official and said:
        # Declared official with another winner: compared with what was announced.
        previous_votes = {sid: votes for sid, votes, _, _ in said}
    else:
        previous_votes = {s.id: s.votes for s in before.selections} if before is not None else {}
    data = {
        "previous_winners": list(last),
        "winners": list(result),
        "winner_changed": result != last,
        "previous_votes": previous_votes,
    }
    if official:
        data["official"] = True
    return Event(
        key=f"contest/{contest.id}/corrected/{figures_digest(contest)}",
        kind=EventKind.CORRECTED,
        at=at,
        contest_id=contest.id,
        data=data,
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
    # Final once every contest that reports tonight is declared; some may not report.
    complete = tally.complete
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
