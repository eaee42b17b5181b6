"""Generate the bundled demo: a fictional election night as NIST SP 1500-100 v2 JSON snapshots.

Everything here is invented and every snapshot says so (IsTest, and "TEST" in the names), so
nothing from the demo can be mistaken for real results. The output is deterministic:

    python scripts/make_demo.py            # rewrites broadcaster/rehearsal/demo/snapshots/
"""

from __future__ import annotations

import json
import random
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "broadcaster" / "rehearsal" / "demo" / "snapshots"
TZ = timezone(timedelta(hours=7))
START = datetime(2030, 7, 28, 19, 0, tzinfo=TZ)
STEP = timedelta(minutes=30)
SNAPSHOTS = 15  # 0 % counted ... all called, declared official, a correction, then certified
UNITS = 20  # polling stations per seat

PARTIES = [
    ("par-hbr", "Harbour Party", "HBR", "#1f77b4"),
    ("par-hig", "Highland League", "HGL", "#2ca02c"),
    ("par-riv", "River Movement", "RVM", "#d62728"),
    ("par-grn", "Green Valley Party", "GVP", "#17becf"),
]
COALITIONS = [("coa-unity", "Unity Front", "UF", ["par-hig", "par-riv", "par-grn"])]

# Single-seat constituencies: (id, name, [(candidate, party)], early/late swing)
SEATS = [
    (
        "D01",
        "Northbay",
        [("Alya Rahman", "par-hbr"), ("Boran Seng", "par-hig"), ("Chea Dara", "par-riv")],
    ),
    (
        "D02",
        "Eastmarsh",
        [("Dina Kovac", "par-hbr"), ("Emil Sokha", "par-riv"), ("Farah Noor", "par-grn")],
    ),
    (
        "D03",
        "Saltcliff",
        [("Gita Pranoto", "par-hig"), ("Hasan Vuth", "par-hbr"), ("Ines Maly", "par-riv")],
    ),
    (
        "D04",
        "Cedar Hills",
        [
            ("Jon Eriksen", "par-riv"),
            ("Kanha Phal", "par-hbr"),
            ("Lina Osei", "par-hig"),
            ("Marco Tan", "par-grn"),
        ],
    ),
    ("D05", "Old Quarry", [("Nadia Idris", "par-hbr"), ("Oskar Lim", "par-hig")]),
    (
        "D06",
        "Westfield",
        [("Pich Sorya", "par-grn"), ("Quinn Adair", "par-hbr"), ("Rosa Nkemelu", "par-riv")],
    ),
    (
        "D07",
        "Lantern Bay",
        [("Sami Haddad", "par-hig"), ("Tola Chan", "par-hbr"), ("Uma Reddy", "par-riv")],
    ),
    (
        "D08",
        "Pinewood",
        [("Vera Moll", "par-riv"), ("Wira Hakim", "par-hig"), ("Xenia Bors", "par-hbr")],
    ),
    (
        "D09",
        "Copper Ford",
        [("Yusuf Amin", "par-hbr"), ("Zara Quist", "par-grn"), ("Arun Kem", "par-hig")],
    ),
    (
        "D10",
        "Mistral Point",
        [
            ("Bopha Lay", "par-hig"),
            ("Caleb Ng", "par-riv"),
            ("Dewi Sari", "par-hbr"),
            ("Eli Varga", "par-grn"),
        ],
    ),
    ("D11", "Southreach", [("Fen Huang", "par-hbr"), ("Gus Ortega", "par-hig")]),
    (
        "D12",
        "Kite Valley",
        [("Hana Seth", "par-riv"), ("Iyad Karim", "par-hbr"), ("Jaya Moni", "par-hig")],
    ),
]
# Party-list provinces: (id, name, seats)
LISTS = [("P1", "Upland Province", 5), ("P2", "Delta Province", 4), ("P3", "Coast Province", 3)]
# Seats whose early count favours the eventual runner-up (a leader change during the night).
SWINGS = {"D03", "D08"}
CORRECTED = "D06"  # figures corrected after the count was complete (same winner)
# A seat whose polling is postponed (a candidate died): in the chamber, never declared tonight.
POSTPONED = ("D13", "Fernhill", [("Kiri Vann", "par-hbr"), ("Lucia Moreau", "par-hig")])
# When the returning officers declare the seats official (the report is then complete), and
# the seat whose official count differs from the provisional one it was called on.
OFFICIAL_AT = SNAPSHOTS - 3
RECHECKED = "D09"  # 12 more votes for the runner-up in the official count


def text(value: str) -> dict:
    return {
        "@type": "ElectionResults.InternationalizedText",
        "Text": [{"@type": "ElectionResults.LanguageString", "Content": value, "Language": "en"}],
    }


def dhondt(votes: dict[str, int], seats: int) -> dict[str, int]:
    won = {k: 0 for k in votes}
    for _ in range(seats):
        best = max(votes, key=lambda k: (votes[k] / (won[k] + 1), k))
        won[best] += 1
    return won


def unit_votes(rng: random.Random, n_sel: int, swing: bool) -> list[list[int]]:
    """Votes per polling station per selection; a swing seat's early stations favour #1."""
    base = [rng.randint(300, 520) for _ in range(n_sel)]
    base.sort(reverse=True)
    rows = []
    for u in range(UNITS):
        row = [max(20, int(b * rng.uniform(0.75, 1.25))) for b in base]
        if swing and n_sel > 1:
            if u < UNITS // 2:
                row[1] = int(row[0] * 1.3)
            else:
                row[0] = int(row[1] * 1.6)
        rows.append(row)
    return rows


def reported_at(rng: random.Random) -> list[int]:
    """Stations reported after each snapshot: from 0 to all by about 11 of 15 snapshots."""
    finish = rng.randint(8, 11)
    out = []
    for k in range(SNAPSHOTS):
        frac = min(1.0, k / finish) if k else 0.0
        out.append(round(UNITS * frac))
    return out


def status_of(value: str) -> list[dict]:
    """A contest's own status (broadcaster reads it from this ExternalIdentifier)."""
    return [
        {
            "@type": "ElectionResults.ExternalIdentifier",
            "Type": "other",
            "OtherType": "contest-status",
            "Value": value,
        }
    ]


def postponed_seat() -> tuple[dict, list[dict], dict]:
    """The postponed seat's GpUnit, candidates and contest: no votes, no progress."""
    sid, name, cands = POSTPONED
    unit = {
        "@type": "ElectionResults.ReportingUnit",
        "@id": f"ru-{sid}",
        "Type": "state-house",
        "Name": text(f"{sid} {name}"),
        "SubUnitsReported": 0,
        "TotalSubUnits": UNITS,
    }
    candidates = [
        {
            "@type": "ElectionResults.Candidate",
            "@id": f"can-{sid}-{i + 1}",
            "BallotName": text(cname),
            "PartyId": party,
        }
        for i, (cname, party) in enumerate(cands)
    ]
    contest = {
        "@type": "ElectionResults.CandidateContest",
        "@id": f"cc-{sid}",
        "Name": f"{sid} {name}",
        "ElectionDistrictId": f"ru-{sid}",
        "VotesAllowed": 1,
        "NumberElected": 1,
        "SubUnitsReported": 0,
        "TotalSubUnits": UNITS,
        "ExternalIdentifier": status_of("postponed"),
        "ContestSelection": [
            {
                "@type": "ElectionResults.CandidateSelection",
                "@id": f"cs-{sid}-{i + 1}",
                "CandidateIds": [c["@id"]],
                "VoteCounts": [],
            }
            for i, c in enumerate(candidates)
        ],
    }
    return unit, candidates, contest


def build(features: bool = True) -> list[dict]:
    """The night's snapshots. `features=False` leaves out what issue 14 added (the postponed
    seat, the official stage and its recount of one seat): the night as it was before, which
    the tests replay to show that the events of the earlier kinds keep their keys."""
    rng = random.Random(20300728)
    seat_plan = []
    for sid, name, cands in SEATS:
        votes = unit_votes(rng, len(cands), sid in SWINGS)
        seat_plan.append((sid, name, cands, votes, reported_at(rng)))
    list_plan = []
    for pid, name, seats in LISTS:
        votes = unit_votes(rng, len(PARTIES), False)
        list_plan.append((pid, name, seats, votes, reported_at(rng)))

    snapshots = []
    for k in range(SNAPSHOTS):
        final_night = k >= SNAPSHOTS - 3
        status = "unofficial-partial"
        if k == SNAPSHOTS - 3:
            status = "unofficial-complete"
        elif k == SNAPSHOTS - 2:
            status = "correction"
        elif k == SNAPSHOTS - 1:
            status = "certified"
        gp_units = [
            {
                "@type": "ElectionResults.ReportingUnit",
                "@id": "ru-nation",
                "Type": "country",
                "Name": text("Republic of Demoland (fictional)"),
                "ComposingGpUnitIds": [f"ru-{s[0]}" for s in SEATS]
                + ([f"ru-{POSTPONED[0]}"] if features else [])
                + [f"ru-{p[0]}" for p in LISTS],
            },
        ]
        candidates = []
        contests = []
        for sid, name, cands, votes, rep in seat_plan:
            r = rep[k]
            totals = [sum(row[i] for row in votes[:r]) for i in range(len(cands))]
            if sid == CORRECTED and k >= SNAPSHOTS - 2:
                totals[1] = max(0, totals[1] - 37)  # a transcription error fixed
            if sid == RECHECKED and k >= OFFICIAL_AT and features:
                totals[1] += 12  # the official count finds 12 more votes for the runner-up
            complete = r == UNITS
            # A seat is called one snapshot after its last station reports.
            called = (complete and (rep[k - 1] == UNITS if k else False)) or (
                complete and final_night
            )
            best = max(range(len(cands)), key=lambda i: totals[i]) if called else None
            electorate = int(sum(map(sum, votes)) * 1.42) + 137 * int(sid[1:])
            ballots = sum(totals) + (r * 9)
            gp_units.append(
                {
                    "@type": "ElectionResults.ReportingUnit",
                    "@id": f"ru-{sid}",
                    "Type": "state-house",
                    "Name": text(f"{sid} {name}"),
                    "VotersRegistered": electorate,
                    "VotersParticipated": ballots,
                    "SubUnitsReported": r,
                    "TotalSubUnits": UNITS,
                }
            )
            selections = []
            for i, (cname, party) in enumerate(cands):
                cid = f"can-{sid}-{i + 1}"
                cand = {
                    "@type": "ElectionResults.Candidate",
                    "@id": cid,
                    "BallotName": text(cname),
                    "PartyId": party,
                }
                if called:
                    cand["PostElectionStatus"] = "winner" if i == best else "defeated"
                candidates.append(cand)
                selections.append(
                    {
                        "@type": "ElectionResults.CandidateSelection",
                        "@id": f"cs-{sid}-{i + 1}",
                        "CandidateIds": [cid],
                        "VoteCounts": [
                            {
                                "@type": "ElectionResults.VoteCounts",
                                "GpUnitId": f"ru-{sid}",
                                "Type": "total",
                                "Count": totals[i],
                            }
                        ],
                    }
                )
            contest = {
                "@type": "ElectionResults.CandidateContest",
                "@id": f"cc-{sid}",
                "Name": f"{sid} {name}",
                "ElectionDistrictId": f"ru-{sid}",
                "VotesAllowed": 1,
                "NumberElected": 1,
                "SubUnitsReported": r,
                "TotalSubUnits": UNITS,
                "ContestSelection": selections,
            }
            if called and k >= OFFICIAL_AT and features:
                contest["ExternalIdentifier"] = status_of("official")
            contests.append(contest)
        if features:
            unit, postponed_candidates, postponed = postponed_seat()
            gp_units.append(unit)
            candidates += postponed_candidates
            contests.append(postponed)
        for pid, name, seats, votes, rep in list_plan:
            r = rep[k]
            totals = {p[0]: sum(row[i] for row in votes[:r]) for i, p in enumerate(PARTIES)}
            complete = r == UNITS
            called = (complete and (rep[k - 1] == UNITS if k else False)) or (
                complete and final_night
            )
            won = dhondt(totals, seats) if called else {}
            electorate = int(sum(map(sum, votes)) * 1.38) + 511 * int(pid[1:])
            gp_units.append(
                {
                    "@type": "ElectionResults.ReportingUnit",
                    "@id": f"ru-{pid}",
                    "Type": "state",
                    "Name": text(name),
                    "VotersRegistered": electorate,
                    "VotersParticipated": sum(totals.values()) + r * 11,
                    "SubUnitsReported": r,
                    "TotalSubUnits": UNITS,
                }
            )
            selections = []
            for party_id, _, _, _ in PARTIES:
                counts = [
                    {
                        "@type": "ElectionResults.VoteCounts",
                        "GpUnitId": f"ru-{pid}",
                        "Type": "total",
                        "Count": totals[party_id],
                    }
                ]
                if called:
                    counts.append(
                        {
                            "@type": "ElectionResults.VoteCounts",
                            "GpUnitId": f"ru-{pid}",
                            "Type": "seats",
                            "Count": won[party_id],
                        }
                    )
                selections.append(
                    {
                        "@type": "ElectionResults.PartySelection",
                        "@id": f"ps-{pid}-{party_id}",
                        "PartyIds": [party_id],
                        "VoteCounts": counts,
                    }
                )
            contests.append(
                {
                    "@type": "ElectionResults.PartyContest",
                    "@id": f"pc-{pid}",
                    "Name": f"{name} (party list, {seats} seats)",
                    "ElectionDistrictId": f"ru-{pid}",
                    "SubUnitsReported": r,
                    "TotalSubUnits": UNITS,
                    "ExternalIdentifier": [
                        {
                            "@type": "ElectionResults.ExternalIdentifier",
                            "Type": "other",
                            "OtherType": "number-elected",
                            "Value": str(seats),
                        }
                    ]
                    + (status_of("official") if called and k >= OFFICIAL_AT and features else []),
                    "ContestSelection": selections,
                }
            )
        parties = [
            {
                "@type": "ElectionResults.Party",
                "@id": p,
                "Name": text(n),
                "Abbreviation": a,
                "Color": c.lstrip("#"),
            }
            for p, n, a, c in PARTIES
        ] + [
            {
                "@type": "ElectionResults.Coalition",
                "@id": c,
                "Name": text(n),
                "Abbreviation": a,
                "PartyIds": ids,
            }
            for c, n, a, ids in COALITIONS
        ]
        snapshots.append(
            {
                "@type": "ElectionResults.ElectionReport",
                "Format": "summary-contest",
                "GeneratedDate": (START + k * STEP).isoformat(),
                "Issuer": "Demoland Election Commission (fictional, TEST DATA)",
                "IssuerAbbreviation": "DEC-TEST",
                "IsTest": True,
                "TestType": "pre-test",
                "SequenceStart": 1,
                "SequenceEnd": 1,
                "Status": status,
                "VendorApplicationId": "broadcaster demo generator",
                "GpUnit": gp_units,
                "Party": parties,
                "Election": [
                    {
                        "@type": "ElectionResults.Election",
                        "Name": text("Demoland General Election 2030 (TEST - fictional)"),
                        "ElectionScopeId": "ru-nation",
                        "StartDate": "2030-07-28",
                        "EndDate": "2030-07-28",
                        "Type": "general",
                        "Candidate": candidates,
                        "Contest": contests,
                    }
                ],
            }
        )
    return snapshots


def main() -> None:
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    for k, snap in enumerate(build()):
        stamp = snap["GeneratedDate"][11:16].replace(":", "")
        path = OUT / f"{k:02d}-{stamp}.json"
        path.write_text(json.dumps(snap, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {SNAPSHOTS} snapshots to {OUT}")


if __name__ == "__main__":
    main()
