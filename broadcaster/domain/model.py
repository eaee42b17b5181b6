"""The normalised results model every parser produces and every later stage reads.

Whatever the feed format, a snapshot becomes these frozen dataclasses. They are plain values:
no I/O, no references back to the raw feed, cheap to compare and to serialise for the database.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from functools import cached_property
from typing import Any


class ResultsStatus(StrEnum):
    """How final the whole report is, as the feed says it (domain/status.py reads it)."""

    PARTIAL = "partial"
    COMPLETE = "complete"
    OFFICIAL = "official"  # declared by the returning officers (EML 510c/d, a mapped field)
    CERTIFIED = "certified"
    CORRECTION = "correction"
    RECOUNT = "recount"


class Stage(StrEnum):
    """How final a contest's figures are: what posts and cards say about them."""

    PROVISIONAL = "provisional"
    OFFICIAL = "official"  # declared by the returning officer
    CERTIFIED = "certified"
    CORRECTED = "corrected"


class ContestState(StrEnum):
    """Whether a contest reports as usual tonight, and if not, why."""

    NORMAL = "normal"
    POSTPONED = "postponed"  # polling postponed (a candidate died...)
    SUSPENDED = "suspended"  # voting or counting suspended in part of it (weather...)
    UNCONTESTED = "uncontested"  # no contest: declared at nomination
    WITHHELD = "withheld"  # results withheld by the election body or a court
    RECOUNT = "recount"  # a recount was announced


class ContestKind(StrEnum):
    """Single- or multi-winner seat with candidates, party-list constituency, or ballot question."""

    CANDIDATE = "candidate"
    PARTY = "party"
    MEASURE = "measure"


@dataclass(frozen=True, slots=True)
class Party:
    id: str
    name: str
    abbreviation: str | None = None
    coalition_id: str | None = None
    color: str | None = None


@dataclass(frozen=True, slots=True)
class Coalition:
    id: str
    name: str
    abbreviation: str | None = None
    party_ids: tuple[str, ...] = ()
    color: str | None = None


@dataclass(frozen=True, slots=True)
class ListCandidate:
    """A candidate on a party's list (list PR): preference votes when counted, elected or not."""

    id: str
    name: str
    votes: int | None = None
    elected: bool = False


@dataclass(frozen=True, slots=True)
class Selection:
    """A candidate, a party on a list, or a ballot-question answer, with its count."""

    id: str
    name: str
    votes: int
    party_id: str | None = None
    winner: bool = False
    seats: int | None = None
    members: tuple[ListCandidate, ...] = ()  # a party list's candidates, in list order
    # The coalition this selection stood for in this contest, when the feed or the mapping
    # says so (a candidate under a coalition's logo here and not elsewhere); "" says "none
    # here"; None means the party's own coalition (Snapshot.coalition_for).
    coalition_id: str | None = None


@dataclass(frozen=True, slots=True)
class Progress:
    """Counting units reported out of the total; either may be unknown."""

    reported: int | None = None
    total: int | None = None

    def reached(self, percent: int) -> bool:
        """True once at least `percent` % of units have reported (exact integer arithmetic)."""
        if self.reported is None or not self.total:
            return False
        return self.reported * 100 >= percent * self.total

    @property
    def percent(self) -> float | None:
        if self.reported is None or not self.total:
            return None
        return 100.0 * self.reported / self.total

    @property
    def complete(self) -> bool:
        return self.total is not None and self.reported is not None and self.reported >= self.total


@dataclass(frozen=True, slots=True)
class Contest:
    id: str
    name: str
    kind: ContestKind
    selections: tuple[Selection, ...]
    progress: Progress = field(default_factory=Progress)
    seats: int | None = None
    electorate: int | None = None
    ballots_cast: int | None = None
    stage: Stage | None = None  # this contest's own stage, when the feed gives one
    state: ContestState = ContestState.NORMAL
    votes_known: bool = True  # False: the feed gives seats or winners but no vote counts

    @property
    def total_votes(self) -> int:
        return sum(s.votes for s in self.selections)

    def ranked(self) -> list[Selection]:
        """Selections by votes, highest first; ties keep feed order so output is stable."""
        return sorted(self.selections, key=lambda s: -s.votes)

    @property
    def leader(self) -> Selection | None:
        """The selection strictly ahead of all others; None when nobody has votes or it is tied."""
        best: Selection | None = None
        tied = False
        for s in self.selections:
            if best is None or s.votes > best.votes:
                best, tied = s, False
            elif s.votes == best.votes:
                tied = True
        if best is None or best.votes <= 0 or tied:
            return None
        return best

    def boundary(self) -> tuple[Selection, Selection] | None:
        """The last selection inside the seats to fill and the first outside them, by votes
        (for one seat: the first two). None for party lists (seats are allocated in
        proportion), when there are no more selections than seats, or without vote counts."""
        if self.kind is ContestKind.PARTY or not self.votes_known:
            return None
        n = max(1, self.seats or 1)
        ranked = self.ranked()
        if len(ranked) <= n:
            return None
        return ranked[n - 1], ranked[n]

    @property
    def tied(self) -> bool:
        """A tie where it decides who wins: for the lead (one seat), or for the last seat."""
        pair = self.boundary()
        return pair is not None and pair[0].votes > 0 and pair[0].votes == pair[1].votes

    @property
    def margin(self) -> int | None:
        """Votes between the last selection that would win and the first that would not."""
        pair = self.boundary()
        return None if pair is None else pair[0].votes - pair[1].votes

    @property
    def winners(self) -> tuple[Selection, ...]:
        return tuple(s for s in self.selections if s.winner)

    @property
    def seats_allocated(self) -> int:
        return sum(s.seats or 0 for s in self.selections)

    @property
    def called(self) -> bool:
        """The feed says who won: a winner flag, or seats allocated in a party-list contest."""
        if self.kind is ContestKind.PARTY:
            return self.seats_allocated > 0
        return any(s.winner for s in self.selections)

    def selection(self, selection_id: str) -> Selection | None:
        for s in self.selections:
            if s.id == selection_id:
                return s
        return None


@dataclass(frozen=True, slots=True)
class TextFlag:
    """Something normalisation removed from a feed value that only an attacker or a broken
    export puts there (a line break, a bidi override): the `feed_markup` gate holds for it."""

    field: str  # where, e.g. contests[2].selections[0].name
    problem: str  # "line break" | "bidi control"
    contest_id: str | None = None  # the contest the value belongs to
    party_id: str | None = None  # or the party or coalition


@dataclass(frozen=True)
class Snapshot:
    """One accepted state of the whole election, as of `generated_at`."""

    election: str
    status: ResultsStatus
    generated_at: datetime
    contests: tuple[Contest, ...]
    is_test: bool = False
    issuer: str | None = None
    parties: dict[str, Party] = field(default_factory=dict)
    coalitions: dict[str, Coalition] = field(default_factory=dict)
    # What parsing normalised away that deserves a person's look; not stored, not compared.
    text_flags: tuple[TextFlag, ...] = field(default=(), compare=False, repr=False)

    def contest(self, contest_id: str) -> Contest | None:
        return self.contest_index.get(contest_id)

    @cached_property
    def contest_index(self) -> dict[str, Contest]:
        return {c.id: c for c in self.contests}

    def coalition_of(self, party_id: str | None) -> Coalition | None:
        if party_id is None:
            return None
        if party_id in self.coalitions:  # a candidate standing for the coalition itself
            return self.coalitions[party_id]
        party = self.parties.get(party_id)
        if party is None or party.coalition_id is None:
            return None
        return self.coalitions.get(party.coalition_id)

    def coalition_for(self, selection: Selection) -> Coalition | None:
        """The coalition a selection's seat counts for in its contest: its own, where the feed
        or the mapping names one for this contest, else its party's."""
        if selection.coalition_id is not None:
            return self.coalitions.get(selection.coalition_id) if selection.coalition_id else None
        return self.coalition_of(selection.party_id)

    # -- serialisation for the database (compact, stable, JSON-safe) --

    def to_dict(self) -> dict[str, Any]:
        return {
            "election": self.election,
            "status": self.status.value,
            "generated_at": self.generated_at.isoformat(),
            "is_test": self.is_test,
            "issuer": self.issuer,
            "parties": [
                [p.id, p.name, p.abbreviation, p.coalition_id, p.color]
                for p in self.parties.values()
            ],
            "coalitions": [
                [c.id, c.name, c.abbreviation, list(c.party_ids), c.color]
                for c in self.coalitions.values()
            ],
            "contests": [contest_to_list(c) for c in self.contests],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Snapshot:
        return cls(
            election=d["election"],
            status=ResultsStatus(d["status"]),
            generated_at=datetime.fromisoformat(d["generated_at"]),
            is_test=d["is_test"],
            issuer=d["issuer"],
            parties={p[0]: Party(*p) for p in d["parties"]},
            coalitions={
                c[0]: Coalition(c[0], c[1], c[2], tuple(c[3]), c[4]) for c in d["coalitions"]
            },
            contests=tuple(contest_from_list(c) for c in d["contests"]),
        )


def contest_to_list(c: Contest) -> list[Any]:
    row: list[Any] = [
        c.id,
        c.name,
        c.kind.value,
        c.seats,
        c.progress.reported,
        c.progress.total,
        c.electorate,
        c.ballots_cast,
        [_selection_to_list(s) for s in c.selections],
    ]
    # Later fields only when they differ from their defaults: contexts stored by earlier
    # versions read the same, and the common case stays compact.
    extra: dict[str, Any] = {}
    if c.stage is not None:
        extra["stage"] = c.stage.value
    if c.state is not ContestState.NORMAL:
        extra["state"] = c.state.value
    if not c.votes_known:
        extra["votes_known"] = False
    if extra:
        row.append(extra)
    return row


def _selection_to_list(s: Selection) -> list[Any]:
    row: list[Any] = [s.id, s.name, s.votes, s.party_id, s.winner, s.seats]
    if s.members or s.coalition_id is not None:
        row.append([[m.id, m.name, m.votes, m.elected] for m in s.members])
    if s.coalition_id is not None:
        row.append(s.coalition_id)
    return row


def _selection_from_list(s: list[Any]) -> Selection:
    members = tuple(ListCandidate(*m) for m in s[6]) if len(s) > 6 else ()
    coalition = s[7] if len(s) > 7 else None
    return Selection(s[0], s[1], s[2], s[3], s[4], s[5], members, coalition)


def contest_from_list(c: list[Any]) -> Contest:
    extra: dict[str, Any] = c[9] if len(c) > 9 else {}
    stage = extra.get("stage")
    return Contest(
        id=c[0],
        name=c[1],
        kind=ContestKind(c[2]),
        seats=c[3],
        progress=Progress(c[4], c[5]),
        electorate=c[6],
        ballots_cast=c[7],
        selections=tuple(_selection_from_list(s) for s in c[8]),
        stage=Stage(stage) if stage else None,
        state=ContestState(extra.get("state", ContestState.NORMAL.value)),
        votes_known=bool(extra.get("votes_known", True)),
    )
