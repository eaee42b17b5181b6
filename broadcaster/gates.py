"""Plausibility gates: a wrong number published by an election commission is worse than a late one.

Before a snapshot's events are planned, it is checked against itself and against the last
accepted snapshot. Each check that fails is a Finding naming the contest (or the whole
snapshot) and what is implausible. The configuration (`[gates]`) says per check whether it
holds the affected events' posts for an operator (the default), only warns, or is off. An
operator approves held posts (a genuine correction) or cancels them.

`check` is pure: two snapshots in, findings out.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from broadcaster.model import Contest, ResultsStatus, Snapshot

CHECKS: dict[str, str] = {
    "votes_over_ballots": "a contest's votes exceed its electorate or its ballots cast",
    "turnout_over_100": "ballots cast exceed the electorate",
    "votes_decreased": "a vote count goes down",
    "call_withdrawn": "a called contest is no longer called",
    "winner_changed": "a called contest changes winner",
    "contest_missing": "a contest disappears",
    "selection_missing": "a candidate or party disappears from a contest",
    "seats_over": "more seats allocated than the contest has",
    "progress_backwards": "reporting progress goes backwards",
    "status_regressed": "the report's status goes back (certified to partial or complete)",
}

HOLD_PREFIX = "implausible"
FINDINGS_KEY = "gate_findings"  # state key: recent findings, for `broadcaster status`
_RANK = {
    ResultsStatus.PARTIAL: 0,
    ResultsStatus.COMPLETE: 1,
    ResultsStatus.CERTIFIED: 2,
    ResultsStatus.CORRECTION: 2,
}


@dataclass(frozen=True, slots=True)
class Finding:
    check: str
    contest_id: str | None  # None: the whole snapshot
    message: str


def check(previous: Snapshot | None, new: Snapshot) -> list[Finding]:
    """Every implausibility in `new`, on its own and compared with `previous`."""
    found: list[Finding] = []
    for contest in new.contests:
        found += _within(contest)
    if previous is None:
        return found
    if _RANK[new.status] < _RANK[previous.status] and previous.status is ResultsStatus.CERTIFIED:
        found.append(
            Finding(
                "status_regressed",
                None,
                f"the report went from {previous.status.value} back to {new.status.value}",
            )
        )
    for before in previous.contests:
        after = new.contest(before.id)
        if after is None:
            found.append(
                Finding("contest_missing", before.id, f"{before.name} is no longer in the feed")
            )
            continue
        found += _between(before, after)
    return found


def _within(c: Contest) -> Iterable[Finding]:
    total = c.total_votes
    if c.ballots_cast is not None and total > c.ballots_cast:
        yield Finding(
            "votes_over_ballots",
            c.id,
            f"{c.name}: {total} votes counted but {c.ballots_cast} ballots cast",
        )
    elif c.electorate is not None and total > c.electorate:
        yield Finding(
            "votes_over_ballots",
            c.id,
            f"{c.name}: {total} votes counted but {c.electorate} registered voters",
        )
    if c.electorate is not None and c.ballots_cast is not None and c.ballots_cast > c.electorate:
        yield Finding(
            "turnout_over_100",
            c.id,
            f"{c.name}: {c.ballots_cast} ballots cast for {c.electorate} registered voters "
            f"({100 * c.ballots_cast / max(1, c.electorate):.1f} % turnout)",
        )
    if c.seats is not None and c.seats_allocated > c.seats:
        yield Finding(
            "seats_over",
            c.id,
            f"{c.name}: {c.seats_allocated} seats allocated, but the contest has {c.seats}",
        )


def _between(before: Contest, after: Contest) -> Iterable[Finding]:
    for s in before.selections:
        now = after.selection(s.id)
        if now is None:
            yield Finding(
                "selection_missing", after.id, f"{after.name}: {s.name} is no longer listed"
            )
        elif now.votes < s.votes:
            yield Finding(
                "votes_decreased",
                after.id,
                f"{after.name}: {s.name} went down from {s.votes} to {now.votes} votes",
            )
    if before.called and not after.called:
        yield Finding("call_withdrawn", after.id, f"{after.name} was declared, and now is not")
    elif before.called and after.called:
        was = _outcome(before)
        now_ = _outcome(after)
        if was != now_:
            yield Finding(
                "winner_changed",
                after.id,
                f"{after.name}: the declared result changed from {_describe(before)} "
                f"to {_describe(after)}",
            )
    b, a = before.progress.reported, after.progress.reported
    if b is not None and a is not None and a < b:
        yield Finding(
            "progress_backwards",
            after.id,
            f"{after.name}: units reported went back from {b} to {a}",
        )


def _outcome(c: Contest) -> tuple[tuple[str, int], ...]:
    """Who won and how many seats each: the declared result, comparable across snapshots."""
    return tuple(sorted((s.id, s.seats or 1) for s in c.selections if s.winner or s.seats))


def _describe(c: Contest) -> str:
    winners = [s for s in c.selections if s.winner or s.seats]
    if not winners:
        return "no one"
    return ", ".join(f"{s.name} {s.seats}" if s.seats else s.name for s in winners)


def hold_reason(findings: list[Finding]) -> str:
    """The reason a held post shows: what is implausible, and what the operator can do."""
    first = "; ".join(f.message for f in findings[:3])
    more = f" (+{len(findings) - 3} more)" if len(findings) > 3 else ""
    return (
        f"{HOLD_PREFIX}: {first}{more}. A genuine correction? approve it (broadcaster outbox "
        "approve ID); if not, cancel it (broadcaster outbox cancel ID)"
    )
