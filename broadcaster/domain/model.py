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
    """How final the whole report is."""

    PARTIAL = "partial"
    COMPLETE = "complete"
    CERTIFIED = "certified"
    CORRECTION = "correction"


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
        party = self.parties.get(party_id)
        if party is None or party.coalition_id is None:
            return None
        return self.coalitions.get(party.coalition_id)

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
    return [
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


def _selection_to_list(s: Selection) -> list[Any]:
    row: list[Any] = [s.id, s.name, s.votes, s.party_id, s.winner, s.seats]
    if s.members:
        row.append([[m.id, m.name, m.votes, m.elected] for m in s.members])
    return row


def _selection_from_list(s: list[Any]) -> Selection:
    members = tuple(ListCandidate(*m) for m in s[6]) if len(s) > 6 else ()
    return Selection(s[0], s[1], s[2], s[3], s[4], s[5], members)


def contest_from_list(c: list[Any]) -> Contest:
    return Contest(
        id=c[0],
        name=c[1],
        kind=ContestKind(c[2]),
        seats=c[3],
        progress=Progress(c[4], c[5]),
        electorate=c[6],
        ballots_cast=c[7],
        selections=tuple(_selection_from_list(s) for s in c[8]),
    )
