"""The national seat tally: seats won per party and per coalition across all seat contests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from broadcaster.domain.model import ContestKind, Snapshot

INDEPENDENT = "independent"


@dataclass(frozen=True, slots=True)
class SeatCount:
    id: str
    name: str
    seats: int


@dataclass(frozen=True, slots=True)
class Tally:
    total_seats: int
    declared_seats: int
    majority: int  # seats needed for a majority
    parties: tuple[SeatCount, ...]  # most seats first
    coalitions: tuple[SeatCount, ...]
    contests_called: int
    contests_total: int

    @property
    def signature(self) -> tuple[tuple[str, int], ...]:
        """What a tally post says; two tallies with the same signature need not be posted twice."""
        return tuple((p.id, p.seats) for p in self.parties)

    def majority_holders(self) -> list[SeatCount]:
        if self.majority <= 0:
            return []
        return [c for c in (*self.coalitions, *self.parties) if c.seats >= self.majority]

    def to_dict(self) -> dict[str, Any]:
        return {
            "total_seats": self.total_seats,
            "declared_seats": self.declared_seats,
            "majority": self.majority,
            "parties": [[p.id, p.name, p.seats] for p in self.parties],
            "coalitions": [[c.id, c.name, c.seats] for c in self.coalitions],
            "contests_called": self.contests_called,
            "contests_total": self.contests_total,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Tally:
        return cls(
            total_seats=d["total_seats"],
            declared_seats=d["declared_seats"],
            majority=d["majority"],
            parties=tuple(SeatCount(*p) for p in d["parties"]),
            coalitions=tuple(SeatCount(*c) for c in d["coalitions"]),
            contests_called=d["contests_called"],
            contests_total=d["contests_total"],
        )


def compute_tally(snapshot: Snapshot, majority_seats: int | None = None) -> Tally:
    """Seats per party/coalition from called contests; ballot questions hold no seats."""
    seats: dict[str, int] = {}
    names: dict[str, str] = {}
    total = declared = called = counted_contests = 0
    for contest in snapshot.contests:
        if contest.kind is ContestKind.MEASURE:
            continue
        counted_contests += 1
        if contest.kind is ContestKind.PARTY:
            won = {s.party_id or s.id: (s.name, s.seats or 0) for s in contest.selections}
            allocated = sum(n for _, n in won.values())
            total += max(contest.seats or 0, allocated)
        else:
            won = {}
            for s in contest.winners:
                pid = s.party_id or INDEPENDENT
                name = snapshot.parties[pid].name if pid in snapshot.parties else "Independent"
                prev = won.get(pid, (name, 0))[1]
                won[pid] = (name, prev + 1)
            total += contest.seats or 1
        if contest.called:
            called += 1
        for pid, (name, n) in won.items():
            if n <= 0:
                continue
            if pid in snapshot.parties:
                name = snapshot.parties[pid].name
            seats[pid] = seats.get(pid, 0) + n
            names[pid] = name
            declared += n

    coalition_seats: dict[str, int] = {}
    for pid, n in seats.items():
        coalition = snapshot.coalition_of(pid)
        if coalition is not None:
            coalition_seats[coalition.id] = coalition_seats.get(coalition.id, 0) + n

    def ranked(counts: dict[str, int], label: dict[str, str]) -> tuple[SeatCount, ...]:
        return tuple(
            SeatCount(k, label[k], v)
            for k, v in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        )

    coalition_names = {c.id: c.name for c in snapshot.coalitions.values()}
    return Tally(
        total_seats=total,
        declared_seats=declared,
        majority=majority_seats if majority_seats else (total // 2 + 1 if total else 0),
        parties=ranked(seats, names),
        coalitions=ranked(coalition_seats, coalition_names),
        contests_called=called,
        contests_total=counted_contests,
    )
