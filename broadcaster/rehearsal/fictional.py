"""Fictional election nights at any size, for benchmarks, crash tests and large rehearsals.

Everything is invented and marked as a test (IsTest, "TEST" in the election's and seats' names),
so nothing made here can pass for real results. The output is deterministic for a seed.

A night is a list of single-seat contests, each with a call time; the snapshots between the
start and the end show each seat counting up to its call (the eventual winner sometimes trails
early), then called. Bursts call a share of the seats within a few minutes, as happens when a
region reports at once.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

START = datetime(2030, 7, 28, 19, 0, tzinfo=timezone(timedelta(hours=7)))
PARTIES = [
    ("par-a", "Amber Party (TEST)", "AMB"),
    ("par-b", "Blue Alliance (TEST)", "BLU"),
    ("par-c", "Cedar Movement (TEST)", "CED"),
    ("par-d", "Delta League (TEST)", "DEL"),
    ("par-e", "Ember Front (TEST)", "EMB"),
]


@dataclass(frozen=True, slots=True)
class Burst:
    at_hours: float  # when it starts, hours after the night's start
    share: float  # share of all seats called in it
    minutes: float  # how long it lasts


@dataclass(frozen=True, slots=True)
class Seat:
    id: str
    name: str
    parties: tuple[str, ...]  # one candidate per party, in ballot order
    final: tuple[int, ...]  # final votes, same order
    opens: datetime  # first results
    called: datetime
    swing: bool  # the runner-up leads the early count


@dataclass(frozen=True)
class NightPlan:
    seats: int = 222
    hours: float = 6.0
    step_minutes: float = 5.0
    bursts: tuple[Burst, ...] = (Burst(1.5, 0.2, 10), Burst(3.5, 0.25, 10))
    start: datetime = START
    seed: int = 7
    title: str = "Fictional General Election (TEST)"
    extra: dict[str, Any] = field(default_factory=dict)


def seats(plan: NightPlan) -> list[Seat]:
    """The seats of the night with their call times, in id order."""
    rng = random.Random(plan.seed)
    total = plan.seats
    for burst in plan.bursts:
        if burst.at_hours + burst.minutes / 60 > plan.hours:
            raise ValueError(f"a burst at {burst.at_hours} h ends after the night ({plan.hours} h)")
    calls: list[float] = []  # hours after start
    for burst in plan.bursts:
        n = round(total * burst.share)
        calls += [burst.at_hours + rng.uniform(0, burst.minutes / 60) for _ in range(n)]
    calls = calls[:total]
    calls += [rng.uniform(0.5, plan.hours) for _ in range(total - len(calls))]
    rng.shuffle(calls)
    out = []
    for i, hours in enumerate(calls):
        n = rng.choice((2, 3, 4, 5))
        parties = tuple(p for p, _, _ in rng.sample(PARTIES, n))
        final = tuple(sorted((rng.randint(3000, 40000) for _ in range(n)), reverse=True))
        called = plan.start + timedelta(hours=hours)
        opens = plan.start + timedelta(hours=rng.uniform(0, max(0.1, hours - 0.25)))
        out.append(
            Seat(
                id=f"S{i + 1:03d}",
                name=f"TEST Seat {i + 1:03d}",
                parties=parties,
                final=final,
                opens=min(opens, called),
                called=called,
                swing=n > 1 and rng.random() < 0.3,
            )
        )
    return out


def share_counted(seat: Seat, at: datetime) -> float:
    """The share of the count in at `at`: nothing before the seat opens, all once called."""
    if at >= seat.called:
        return 1.0
    if at < seat.opens:
        return 0.0
    done = (at - seat.opens) / (seat.called - seat.opens)
    return min(0.95, 0.05 + 0.9 * done)


def _counted(seat: Seat, j: int, share: float) -> float:
    """How much of candidate j's final vote is in at `share` counted. In a swing seat the
    runner-up's strongholds report first, so it leads early; counts never go down."""
    if not seat.swing or j > 1 or share >= 1.0:
        return share
    return share**1.8 if j == 0 else share**0.4


def document(
    states: list[tuple[Seat, float, bool]], generated: datetime, title: str
) -> dict[str, Any]:
    """A NIST SP 1500-100 v2 report: each seat with the share counted and whether it is called."""
    candidates: list[dict[str, Any]] = []
    contests: list[dict[str, Any]] = []
    for seat, share, called in states:
        votes = [int(v * _counted(seat, j, share)) for j, v in enumerate(seat.final)]
        selections = []
        for j, party in enumerate(seat.parties):
            cand: dict[str, Any] = {
                "@type": "ElectionResults.Candidate",
                "@id": f"can-{seat.id}-{j}",
                "BallotName": _text(f"Cand. {seat.id}{chr(65 + j)}"),
                "PartyId": party,
            }
            if called:
                cand["PostElectionStatus"] = "winner" if j == 0 else "defeated"
            candidates.append(cand)
            selections.append(
                {
                    "@type": "ElectionResults.CandidateSelection",
                    "@id": f"cs-{seat.id}-{j}",
                    "CandidateIds": [cand["@id"]],
                    "VoteCounts": [
                        {
                            "@type": "ElectionResults.VoteCounts",
                            "GpUnitId": "ru-all",
                            "Type": "total",
                            "Count": votes[j],
                        }
                    ],
                }
            )
        contests.append(
            {
                "@type": "ElectionResults.CandidateContest",
                "@id": seat.id,
                "Name": seat.name,
                "ElectionDistrictId": "ru-all",
                "VotesAllowed": 1,
                "NumberElected": 1,
                "SubUnitsReported": round(share * 100),
                "TotalSubUnits": 100,
                "ContestSelection": selections,
            }
        )
    return {
        "@type": "ElectionResults.ElectionReport",
        "Format": "summary-contest",
        "GeneratedDate": generated.isoformat(),
        "Issuer": "Fictional Election Commission (TEST)",
        "IssuerAbbreviation": "TEST",
        "IsTest": True,
        "SequenceStart": 1,
        "SequenceEnd": 1,
        "Status": "unofficial-partial",
        "VendorApplicationId": "broadcaster.rehearsal.fictional",
        "GpUnit": [
            {
                "@type": "ElectionResults.ReportingUnit",
                "@id": "ru-all",
                "Type": "country",
                "Name": _text("Testland"),
            }
        ],
        "Party": [
            {
                "@type": "ElectionResults.Party",
                "@id": pid,
                "Name": _text(name),
                "Abbreviation": abbr,
            }
            for pid, name, abbr in PARTIES
        ],
        "Election": [
            {
                "@type": "ElectionResults.Election",
                "Name": _text(title),
                "ElectionScopeId": "ru-all",
                "StartDate": generated.date().isoformat(),
                "EndDate": generated.date().isoformat(),
                "Type": "general",
                "Candidate": candidates,
                "Contest": contests,
            }
        ],
    }


def snapshot_times(plan: NightPlan) -> list[datetime]:
    """From the start to the end of the night, one per step, plus one after the last call."""
    step = timedelta(minutes=plan.step_minutes)
    end = plan.start + timedelta(hours=plan.hours) + step
    times, at = [], plan.start
    while at <= end:
        times.append(at)
        at += step
    return times


def write_night(plan: NightPlan, folder: Path) -> list[Seat]:
    """Write the night's snapshots into `folder` (`0001-1900.json`, ...); returns its seats."""
    folder.mkdir(parents=True, exist_ok=True)
    all_seats = seats(plan)
    for n, at in enumerate(snapshot_times(plan), start=1):
        states = [(s, share_counted(s, at), at >= s.called) for s in all_seats]
        doc = document(states, at, plan.title)
        (folder / f"{n:04d}-{at:%H%M}.json").write_text(json.dumps(doc))
    return all_seats


def first_seen_called(plan: NightPlan, all_seats: list[Seat]) -> dict[str, datetime]:
    """When each seat first appears called in a snapshot (what the pipeline can know)."""
    times = snapshot_times(plan)
    out = {}
    for seat in all_seats:
        out[seat.id] = next(t for t in times if t >= seat.called)
    return out


def _text(value: str) -> dict[str, Any]:
    return {
        "@type": "ElectionResults.InternationalizedText",
        "Text": [{"Content": value, "Language": "en"}],
    }
