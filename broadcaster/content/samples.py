"""Example events built from one snapshot, so operators can preview and lint templates."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from functools import cache
from typing import Any

from broadcaster.content.context import (
    Display,
    event_context,
    shared_vars,
    snapshot_context,
    summary_context,
    template_vars,
)
from broadcaster.core.config import Config
from broadcaster.core.paths import DEMO_SNAPSHOTS
from broadcaster.domain.events import CONTEST_KINDS, Event, EventKind
from broadcaster.domain.model import Contest, ContestKind, ContestState, Progress, Snapshot
from broadcaster.domain.status import NOT_REPORTING
from broadcaster.domain.tally import compute_tally
from broadcaster.ingest.differ import DiffRules, outcome
from broadcaster.ingest.parsers import parse

# Kinds about a declared contest, and kinds about a contest's count going on.
CALLED_KINDS = (EventKind.CALLED, EventKind.CORRECTED, EventKind.OFFICIAL)
COUNT_KINDS = (EventKind.TIE, EventKind.CLOSE)


class SampleError(ValueError):
    """The snapshot cannot illustrate the requested event."""


def pick_contest(snapshot: Snapshot, contest_id: str | None, kind: EventKind) -> Contest:
    if contest_id is not None:
        contest = snapshot.contest(contest_id)
        if contest is None:
            known = ", ".join(c.id for c in snapshot.contests[:10])
            raise SampleError(f"no contest {contest_id!r} in this snapshot (first ids: {known})")
        if kind in CALLED_KINDS and not contest.called:
            raise SampleError(f"{contest_id} has not been called in this snapshot, so no {kind}")
        if kind in COUNT_KINDS and contest.boundary() is None:
            raise SampleError(f"{contest_id} has no count to illustrate a {kind}")
        return contest
    wanted_called = kind in CALLED_KINDS
    if kind is EventKind.POSTPONED:
        for contest in snapshot.contests:
            if contest.state in NOT_REPORTING:
                return contest
    reporting = [c for c in snapshot.contests if c.state not in NOT_REPORTING]
    if kind in COUNT_KINDS:
        # A contest still counting, else any with a count (the example clears its winner).
        counts = [c for c in reporting if c.boundary() is not None and c.total_votes > 0]
        for contest in sorted(counts, key=lambda c: c.called):
            return contest
        raise SampleError(f"no contest in this snapshot has a count to illustrate a {kind}")
    for contest in reporting:
        if contest.kind is ContestKind.MEASURE or contest.called != wanted_called:
            continue
        if kind is EventKind.LEADER and contest.leader is None:
            continue
        return contest
    if wanted_called:
        raise SampleError(
            f"no contest in this snapshot has been called, so there is no {kind} example"
        )
    return reporting[0] if reporting else snapshot.contests[0]


def sample_event(
    snapshot: Snapshot,
    kind: EventKind,
    contest_id: str | None = None,
    rules: DiffRules | None = None,
) -> Event:
    """An event of `kind` as the differ would produce it for this snapshot."""
    if kind is EventKind.ANNOUNCEMENT:
        raise SampleError("an announcement is written by an operator: it has no template")
    rules = rules or DiffRules()
    if kind in CONTEST_KINDS:
        contest = pick_contest(snapshot, contest_id, kind)
        return _contest_sample(contest, kind, snapshot.generated_at, rules)
    return _election_sample(snapshot, kind, rules)


def _contest_sample(contest: Contest, kind: EventKind, at: datetime, rules: DiffRules) -> Event:
    ranked = contest.ranked()
    key = f"contest/{contest.id}"
    if kind is EventKind.PROGRESS:
        reached = [t for t in rules.thresholds if contest.progress.reached(t)]
        threshold = max(reached) if reached else min(rules.thresholds)
        return Event(f"{key}/progress/{threshold}", kind, at, contest.id, {"threshold": threshold})
    if kind is EventKind.LEADER:
        if contest.leader is None or len(ranked) < 2:
            raise SampleError(f"{contest.id} has no clear leader to illustrate a lead change")
        data: dict[str, Any] = {"leader": ranked[0].id, "previous": ranked[1].id}
        return Event(f"{key}/leader/{ranked[0].id}/0", kind, at, contest.id, data)
    if kind is EventKind.CALLED:
        return Event(f"{key}/called", kind, at, contest.id, {"winners": list(outcome(contest))})
    if kind is EventKind.POSTPONED:
        state = contest.state if contest.state in NOT_REPORTING else ContestState.POSTPONED
        return Event(f"{key}/{state.value}", kind, at, contest.id, {"state": state.value})
    if kind is EventKind.RECOUNT:
        return Event(f"{key}/recount/sample", kind, at, contest.id, {})
    if kind in COUNT_KINDS:
        pair = contest.boundary()
        if pair is None:
            raise SampleError(f"{contest.id} has no count to illustrate a {kind}")
        if kind is EventKind.TIE:
            data = {"tied": [pair[0].id, pair[1].id]}
        else:
            data = {"ahead": pair[0].id, "behind": pair[1].id, "margin": _close(contest)}
        return Event(f"{key}/{kind.value}/sample", kind, at, contest.id, data)
    return _revised_sample(contest, kind, at)


def _revised_sample(contest: Contest, kind: EventKind, at: datetime) -> Event:
    """An official declaration whose figures differ a little (0.5 %) from the provisional
    ones, or a correction where the runner-up had 1 % more votes before."""
    ranked = contest.ranked()
    previous = {s.id: s.votes for s in contest.selections}
    share = 200 if kind is EventKind.OFFICIAL else 100
    if len(ranked) > 1:
        previous[ranked[1].id] = ranked[1].votes + max(1, ranked[1].votes // share)
    data: dict[str, Any]
    if kind is EventKind.OFFICIAL:
        data = {
            "winners": list(outcome(contest)),
            "figures_changed": True,
            "previous_votes": previous,
        }
        return Event(f"contest/{contest.id}/official", kind, at, contest.id, data)
    data = {
        "previous_winners": list(outcome(contest)),
        "winners": list(outcome(contest)),
        "winner_changed": False,
        "previous_votes": previous,
    }
    return Event(f"contest/{contest.id}/corrected/sample", kind, at, contest.id, data)


def _election_sample(snapshot: Snapshot, kind: EventKind, rules: DiffRules) -> Event:
    at = snapshot.generated_at
    if kind is EventKind.CERTIFIED:
        return Event("election/certified", kind, at)
    if kind is EventKind.SUMMARY:
        items = summary_items(snapshot, rules)
        merged_kind = items[0].kind.value
        data = {"kind": merged_kind, "merged": [e.key for e in items]}
        return Event(f"summary/{merged_kind}/sample", kind, at, None, data)
    tally = compute_tally(snapshot, rules.majority_seats)
    if kind is EventKind.TALLY:
        return Event("tally/sample", kind, at, None, {"final": tally.complete, "signature": []})
    holders = tally.majority_holders() or list(tally.coalitions[:1] or tally.parties[:1])
    if not holders:
        raise SampleError(
            "no seats have been declared in this snapshot, so there is no majority example"
        )
    h = holders[0]
    return Event(
        f"tally/majority/{h.id}",
        kind,
        at,
        None,
        {
            "holder": h.id,
            "name": h.name,
            "seats": h.seats,
            "is_coalition": h.id in snapshot.coalitions,
        },
    )


def summary_items(snapshot: Snapshot, rules: DiffRules) -> list[Event]:
    """A few events a summary merges: calls when there are some, else progress updates."""
    called = [c for c in snapshot.contests if c.called][:4]
    kind = EventKind.CALLED if called else EventKind.PROGRESS
    contests = called or [c for c in snapshot.contests if c.kind is not ContestKind.MEASURE][:4]
    if not contests:
        raise SampleError("this snapshot has no contest to put in a summary")
    return [sample_event(snapshot, kind, c.id, rules) for c in contests]


def sample_context(
    event: Event, snapshot: Snapshot, rules: DiffRules | None = None
) -> dict[str, object]:
    """What would be stored with `event` (for a summary: its merged events and theirs)."""
    if event.kind is EventKind.SUMMARY:
        items = summary_items(snapshot, rules or DiffRules())
        return summary_context([(e, event_context(e, snapshot)) for e in items])
    contest = snapshot.contest(event.contest_id) if event.contest_id else None
    if contest is not None and event.kind in (
        EventKind.POSTPONED,
        EventKind.RECOUNT,
        EventKind.TIE,
        EventKind.CLOSE,
    ):
        # The contest as it would stand for such an event: the example stays realistic.
        staged = _staged(contest, event)
        return event_context(event, replace(snapshot, contests=(staged,), text_flags=()))
    return event_context(event, snapshot)


def _close(contest: Contest) -> int:
    """A margin too close to call for this contest's count (a few votes in a thousand)."""
    return max(1, contest.total_votes // 500)


def _staged(contest: Contest, event: Event) -> Contest:
    if event.kind is EventKind.POSTPONED:
        return replace(
            contest,
            state=ContestState(event.data.get("state", "postponed")),
            selections=tuple(replace(s, votes=0, winner=False) for s in contest.selections),
            progress=Progress(None, contest.progress.total),
        )
    if event.kind is EventKind.RECOUNT:
        return replace(contest, state=ContestState.RECOUNT)
    pair = contest.boundary()
    if pair is None:
        return contest
    top = pair[0].votes
    behind = top if event.kind is EventKind.TIE else max(0, top - _close(contest))
    selections = tuple(
        replace(s, votes=behind, winner=False) if s.id == pair[1].id else replace(s, winner=False)
        for s in contest.selections
    )
    return replace(contest, selections=selections)


def sample_vars(
    snapshot: Snapshot,
    kind: EventKind,
    *,
    contest_id: str | None = None,
    timezone: str = "UTC",
    account: dict[str, str] | None = None,
    rules: DiffRules | None = None,
    election_name: str | None = None,
    issuer: str | None = None,
    display: Mapping[str, Display] | None = None,
) -> tuple[Event, dict[str, object]]:
    event = sample_event(snapshot, kind, contest_id, rules)
    tally = compute_tally(snapshot, (rules or DiffRules()).majority_seats)
    shared = snapshot_context(snapshot, tally, election_name=election_name, issuer=issuer)
    views = shared_vars(shared, timezone, display or {})
    variables = template_vars(
        event, sample_context(event, snapshot, rules), views, timezone=timezone, account=account
    )
    return event, variables


@cache
def _demo_snapshots() -> tuple[Snapshot, Snapshot]:
    """A snapshot from the middle of the bundled night and its last one."""

    files = sorted(DEMO_SNAPSHOTS.glob("*.json"))
    return parse(files[len(files) // 2].read_bytes()), parse(files[-1].read_bytes())


def display_from(config: Config) -> dict[str, Display]:
    return {pid: Display(d.name, d.short, d.color) for pid, d in config.parties.items()}


def lint_variables(kind: str, config: Config) -> list[dict[str, object]]:
    """A few realistic contexts for `kind` (candidate and party-list contests, partial and final
    tallies), from the bundled fictional night: what a template is checked against before use."""
    key = (kind, config.election.timezone, tuple(sorted(config.parties)))
    cached = _LINT_CACHE.get(key)
    if cached is not None:
        return cached
    mid, final = _demo_snapshots()
    event_kind = EventKind(kind)
    out: list[dict[str, object]] = []
    display = display_from(config)
    for snapshot in (mid, final):
        contests: list[str | None] = [None]
        if event_kind in CONTEST_KINDS:
            contests = [
                c.id
                for c in (
                    _first(snapshot, ContestKind.CANDIDATE),
                    _first(snapshot, ContestKind.PARTY),
                )
                if c is not None
            ]
            contests.append(None)  # and whichever contest suits the kind best
        for contest_id in contests:
            try:
                _, variables = sample_vars(
                    snapshot,
                    event_kind,
                    contest_id=contest_id,
                    timezone=config.election.timezone,
                    display=display,
                )
            except SampleError:
                continue
            out.append(variables)
    _LINT_CACHE[key] = out
    return out


_LINT_CACHE: dict[tuple[object, ...], list[dict[str, object]]] = {}


def _first(snapshot: Snapshot, kind: ContestKind) -> Contest | None:
    for contest in snapshot.contests:
        if contest.kind is kind and (contest.leader is not None or contest.called):
            return contest
    return None
