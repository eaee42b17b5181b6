"""The national seat tally: seats won per party and per coalition across all seat contests.

A seat counts for the party its winner stood for, and for the coalition it stood for *in that
contest* (Snapshot.coalition_for): a party under a coalition's logo in one state and under its
own in another adds to the coalition only where it stood under the logo. Three views are kept:
by party, by coalition, and the *blocs* (each coalition, then each party's seats that count for
no coalition), which add up to the seats declared without counting a seat twice.

Contests that will not report tonight (postponed, suspended, withheld) keep their seats in the
chamber's size, so the majority is always of the full chamber, and are counted apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from broadcaster.domain.model import ContestKind, Snapshot
from broadcaster.domain.status import NOT_REPORTING

INDEPENDENT = "independent"


@dataclass(frozen=True, slots=True)
class SeatCount:
    id: str
    name: str
    seats: int
    is_coalition: bool = False


@dataclass(frozen=True, slots=True)
class Tally:
    total_seats: int  # the chamber's full size, contests that will not report included
    declared_seats: int
    majority: int  # seats needed for a majority of the full chamber
    parties: tuple[SeatCount, ...]  # most seats first
    coalitions: tuple[SeatCount, ...]
    contests_called: int
    contests_total: int
    blocs: tuple[SeatCount, ...] = ()  # coalitions, then parties' seats outside any coalition
    # state (postponed, suspended, withheld) -> (contests, seats) not reporting tonight
    not_reporting: tuple[tuple[str, int, int], ...] = ()

    @property
    def signature(self) -> tuple[tuple[str, int], ...]:
        """What a tally post says; two tallies with the same signature need not be posted twice."""
        return tuple((p.id, p.seats) for p in self.parties)

    @property
    def seats_not_reporting(self) -> int:
        return sum(seats for _, _, seats in self.not_reporting)

    @property
    def contests_not_reporting(self) -> int:
        return sum(n for _, n, _ in self.not_reporting)

    @property
    def complete(self) -> bool:
        """Every contest that reports tonight has been declared (some may not report)."""
        return (
            self.total_seats > 0
            and self.contests_called + self.contests_not_reporting >= self.contests_total
        )

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
            "blocs": [[b.id, b.name, b.seats, b.is_coalition] for b in self.blocs],
            "not_reporting": [list(x) for x in self.not_reporting],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Tally:
        parties = tuple(SeatCount(*p) for p in d["parties"])
        coalitions = tuple(SeatCount(c[0], c[1], c[2], True) for c in d["coalitions"])
        # Tallies stored by earlier versions have no blocs: their parties are the closest.
        blocs = tuple(SeatCount(*b) for b in d["blocs"]) if "blocs" in d else parties
        return cls(
            total_seats=d["total_seats"],
            declared_seats=d["declared_seats"],
            majority=d["majority"],
            parties=parties,
            coalitions=coalitions,
            contests_called=d["contests_called"],
            contests_total=d["contests_total"],
            blocs=blocs,
            not_reporting=tuple(tuple(x) for x in d.get("not_reporting", ())),
        )


def compute_tally(snapshot: Snapshot, majority_seats: int | None = None) -> Tally:
    """Seats per party, coalition and bloc from called contests; ballot questions hold no
    seats; contests that do not report tonight count in the chamber's size only."""
    seats: dict[str, int] = {}
    names: dict[str, str] = {}
    coalition_seats: dict[str, int] = {}
    outside: dict[str, int] = {}  # party -> seats that count for no coalition
    not_reporting: dict[str, list[int]] = {}
    total = declared = called = counted_contests = 0
    for contest in snapshot.contests:
        if contest.kind is ContestKind.MEASURE:
            continue
        counted_contests += 1
        # (party id, name, seats, coalition id or None) for each seat-winning selection
        won: list[tuple[str, str, int, str | None]] = []
        if contest.kind is ContestKind.PARTY:
            allocated = 0
            for s in contest.selections:
                n = s.seats or 0
                allocated += n
                if n > 0:
                    coalition = snapshot.coalition_for(s)
                    won.append((s.party_id or s.id, s.name, n, coalition.id if coalition else None))
            size = max(contest.seats or 0, allocated)
        else:
            for s in contest.winners:
                pid = s.party_id or INDEPENDENT
                coalition = snapshot.coalition_for(s)
                won.append((pid, "Independent", 1, coalition.id if coalition else None))
            size = contest.seats or 1
        total += size
        if contest.state in NOT_REPORTING and not contest.called:
            entry = not_reporting.setdefault(contest.state.value, [0, 0])
            entry[0] += 1
            entry[1] += size
            continue
        if contest.called:
            called += 1
        for pid, name, n, coalition_id in won:
            if pid in snapshot.parties:
                name = snapshot.parties[pid].name
            elif pid in snapshot.coalitions:
                name = snapshot.coalitions[pid].name
            seats[pid] = seats.get(pid, 0) + n
            names[pid] = name
            declared += n
            if coalition_id is not None:
                coalition_seats[coalition_id] = coalition_seats.get(coalition_id, 0) + n
            else:
                outside[pid] = outside.get(pid, 0) + n

    def ranked(
        counts: dict[str, int], label: dict[str, str], coalition: bool
    ) -> tuple[SeatCount, ...]:
        return tuple(
            SeatCount(k, label[k], v, coalition)
            for k, v in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
            if v > 0
        )

    coalition_names = {c.id: c.name for c in snapshot.coalitions.values()}
    coalition_names.update({k: k for k in coalition_seats if k not in coalition_names})
    coalitions = ranked(coalition_seats, coalition_names, True)
    blocs = tuple(
        sorted(
            (*coalitions, *ranked(outside, names, False)),
            key=lambda b: (-b.seats, not b.is_coalition, b.id),
        )
    )
    return Tally(
        total_seats=total,
        declared_seats=declared,
        majority=majority_seats if majority_seats else (total // 2 + 1 if total else 0),
        parties=ranked(seats, names, False),
        coalitions=coalitions,
        contests_called=called,
        contests_total=counted_contests,
        blocs=blocs,
        not_reporting=tuple((k, v[0], v[1]) for k, v in sorted(not_reporting.items())),
    )
