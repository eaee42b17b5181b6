"""A fictional NIST results report of any size, written with the longest real names found, for
linting templates against the worst a feed can hold (tests, and bench/bench_lint.py at 20,000
contests).

The names are real, from real elections and places (Malay, Khmer, Dutch, English and one Welsh
village), but the report is fictional: every figure is invented, the election and the issuer
say TEST, and `IsTest` is set. Contest names are made unique with a number, as a real export
numbers its seats. The report holds every shape a night can: single- and multi-seat contests,
party lists, ballot questions, coalitions (a party under a coalition's logo in some contests
only), postponed, suspended, withheld and uncontested seats, recounts, official stages, ties,
close margins, called and uncalled contests, and lists without vote counts.
"""

from __future__ import annotations

import json
import random
from typing import Any

# Constituencies and offices: the longest real names we could find, per language.
PLACES = [
    # Malay (Malaysian parliamentary and state seats, and their states)
    "P.124 Bandar Tun Razak, Wilayah Persekutuan Kuala Lumpur",
    "P.185 Batu Sapi, Sabah",
    "N.27 Sungai Acheh, Pulau Pinang",
    "P.220 Baram, Sarawak",
    "P.199 Serian (Kawasan Pilihan Raya Parlimen), Sarawak",
    # Khmer (Cambodian provinces as constituencies)
    "រាជធានីភ្នំពេញ",
    "ខេត្តបន្ទាយមានជ័យ",
    "ខេត្តឧត្ដរមានជ័យ",
    "ខេត្តព្រះសីហនុ",
    "ខេត្តកំពង់ឆ្នាំង",
    # Dutch (municipal councils)
    "Gemeenteraad Hardinxveld-Giessendam",
    "Gemeenteraad Súdwest-Fryslân",
    "Gemeenteraad 's-Hertogenbosch",
    "Gemeenteraad West Maas en Waal",
    # English (Massachusetts offices, as the Cambridge 2022 report names them) and Welsh
    "REPRESENTATIVE IN GENERAL COURT, TWENTY-FOURTH MIDDLESEX DISTRICT",
    "SENATOR IN GENERAL COURT, SUFFOLK & MIDDLESEX DISTRICT",
    "GOVERNOR AND LIEUTENANT GOVERNOR",
    "Llanfairpwllgwyngyllgogerychwyrndrobwllllantysiliogogogoch",
]
QUESTIONS = [
    "PPQ REP - 25TH MIDDLESEX DISTRICT - SINGLE PAYER HEALTH CARE",
    "ADDITIONAL TAX ON INCOME OVER 1 MILLION DOLLARS",
    "សំណើកែប្រែរដ្ឋធម្មនុញ្ញនៃព្រះរាជាណាចក្រកម្ពុជា",
]
# (id, name, abbreviation)
PARTIES = [
    ("upko", "Pertubuhan Pasok Momogun Kadazandusun Murut Bersatu", "UPKO"),
    ("pbb", "Parti Pesaka Bumiputera Bersatu", "PBB"),
    ("umno", "Pertubuhan Kebangsaan Melayu Bersatu", "UMNO"),
    ("pkr", "Parti Keadilan Rakyat", "PKR"),
    ("cpp", "គណបក្សប្រជាជនកម្ពុជា", "គបក"),
    ("fun", "គណបក្សហ្វ៊ុនស៊ិនប៉ិច", "ហ៊្វុនស៊ិនប៉ិច"),
    ("ldp", "គណបក្សសម្ព័ន្ធដើម្បីប្រជាធិបតេយ្យ", "គសប"),
    ("vvd", "Volkspartij voor Vrijheid en Democratie", "VVD"),
    ("sgp", "Staatkundig Gereformeerde Partij", "SGP"),
    ("glpvda", "GROENLINKS / Partij van de Arbeid (PvdA)", "GL/PvdA"),
    ("gr", "GREEN-RAINBOW", None),
    ("lib", "LIBERTARIAN", None),
]
COALITIONS = [
    ("ph", "Pakatan Harapan", "PH", ["pkr", "upko"]),
    ("bn", "Barisan Nasional", "BN", ["umno"]),
    ("gps", "Gabungan Parti Sarawak", "GPS", ["pbb"]),
]
CANDIDATES = [
    "Tan Sri Dato' Haji Mahiaddin bin Md Yasin",
    "Datuk Seri Panglima Haji Mohd Shafie bin Haji Apdal",
    "Tengku Razaleigh bin Tengku Mohd Hamzah",
    "Dato' Sri Haji Ismail Sabri bin Yaakob",
    "សម្ដេចអគ្គមហាសេនាបតីតេជោ ហ៊ុន សែន",
    "សម្ដេចមហាបវរធិបតី ហ៊ុន ម៉ាណែត",
    "សម្ដេចក្រុមព្រះ នរោត្តម រណឫទ្ធិ",
    "Van Rijckevorsel-van der Heijden, M.A.C.",
    "Marie-Louise van Oosterhout-Verschuren",
    "MAURA HEALEY AND KIMBERLEY DRISCOLL",
    "DONNIE DIONICIO PALMER, JR.",
    "GLORIA A. CABALLERO-ROCA",
]
STATES = ["postponed", "suspended", "withheld", "uncontested", "recount", "official"]


def _text(value: str) -> dict[str, Any]:
    return {
        "@type": "ElectionResults.InternationalizedText",
        "Text": [{"@type": "ElectionResults.LanguageString", "Content": value, "Language": "und"}],
    }


def _status(value: str) -> list[dict[str, Any]]:
    return [{"@type": "ElectionResults.ExternalIdentifier", "Type": "other",
             "OtherType": "contest-status", "Value": value}]  # fmt: skip


def long_names_report(contests: int = 300, seed: int = 14) -> dict[str, Any]:
    """The report, as a JSON-ready dict; the same for the same arguments."""
    rng = random.Random(seed)
    units: list[dict[str, Any]] = []
    candidates: list[dict[str, Any]] = []
    out: list[dict[str, Any]] = []
    for i in range(contests):
        uid = f"ru-{i}"
        units.append({"@type": "ElectionResults.ReportingUnit", "@id": uid, "Type": "other",
                      "Name": _text(PLACES[i % len(PLACES)])})  # fmt: skip
        shape = i % 10
        total_units = rng.choice((1, 12, 45, 380))
        reported = total_units if shape in (2, 3, 6) else rng.randint(0, total_units)
        name = f"{PLACES[i % len(PLACES)]} {i + 1}"
        contest: dict[str, Any] = {
            "@id": f"c-{i}",
            "Name": name,
            "ElectionDistrictId": uid,
            "SubUnitsReported": reported,
            "TotalSubUnits": total_units,
        }
        if shape == 9:  # a ballot question
            contest.update({"@type": "ElectionResults.BallotMeasureContest",
                            "Name": f"{QUESTIONS[i % len(QUESTIONS)]} {i + 1}"})  # fmt: skip
            yes = rng.randint(0, 90000)
            contest["ContestSelection"] = [
                _measure(f"c-{i}-{word}", word, n, uid)
                for word, n in (("YES", yes), ("NO", yes if i % 20 == 9 else yes // 3))
            ]
        elif shape == 8:  # a party list: every party, seats once counted
            contest["@type"] = "ElectionResults.PartyContest"
            seats = rng.choice((3, 5, 12))
            contest["ExternalIdentifier"] = [
                {
                    "@type": "ElectionResults.ExternalIdentifier",
                    "Type": "other",
                    "OtherType": "number-elected",
                    "Value": str(seats),
                }
            ]
            votes = [rng.randint(1000, 500000) for _ in PARTIES]
            won = _largest(votes, seats) if reported == total_units else None
            contest["ContestSelection"] = [
                {
                    "@type": "ElectionResults.PartySelection",
                    "@id": f"c-{i}-{pid}",
                    "PartyIds": [pid],
                    "VoteCounts": [_count(uid, votes[k])]
                    + ([_count(uid, won[k], "seats")] if won else []),
                }
                for k, (pid, _, _) in enumerate(PARTIES)
            ]
        else:
            contest["@type"] = "ElectionResults.CandidateContest"
            contest["VotesAllowed"] = 1
            seats = 3 if shape == 7 else 1
            contest["NumberElected"] = seats
            n = rng.randint(2, 8)
            names = rng.sample(CANDIDATES, n)
            parties = [PARTIES[rng.randrange(len(PARTIES))][0] for _ in names]
            votes = sorted((rng.randint(0, 120000) for _ in names), reverse=True)
            if shape == 4:  # a tie for the lead (or the last seat), counted to the end
                votes[seats] = votes[seats - 1]
                contest["SubUnitsReported"] = total_units
            if shape == 5:  # too close to call
                votes[seats] = max(0, votes[seats - 1] - 1)
                contest["SubUnitsReported"] = total_units
            state = STATES[(i // 10) % len(STATES)] if shape == 1 else None
            if state in ("postponed", "suspended", "withheld"):
                votes = [0] * n
                contest["SubUnitsReported"] = 0
            called = shape in (2, 3, 6) or state == "uncontested"
            if state == "uncontested":
                names, parties, votes = names[:seats], parties[:seats], [0] * seats
            if state is not None:
                contest["ExternalIdentifier"] = _status(state)
            selections = []
            for k, (cname, pid) in enumerate(zip(names, parties, strict=True)):
                cid = f"can-{i}-{k}"
                cand = {"@type": "ElectionResults.Candidate", "@id": cid,
                        "BallotName": _text(cname), "PartyId": pid}  # fmt: skip
                if called:
                    cand["PostElectionStatus"] = "winner" if k < seats else "defeated"
                candidates.append(cand)
                sel = {"@type": "ElectionResults.CandidateSelection", "@id": f"cs-{i}-{k}",
                       "CandidateIds": [cid], "VoteCounts": [_count(uid, votes[k])]}  # fmt: skip
                if pid in ("pkr", "upko") and i % 3 == 0:
                    sel["EndorsementPartyIds"] = ["ph"]  # under PH's logo here only
                selections.append(sel)
            contest["ContestSelection"] = selections
        out.append(contest)
    parties = [
        {
            "@type": "ElectionResults.Party",
            "@id": pid,
            "Name": _text(name),
            **({"Abbreviation": _text(abbr)} if abbr else {}),
        }
        for pid, name, abbr in PARTIES
    ] + [
        {
            "@type": "ElectionResults.Coalition",
            "@id": cid,
            "Name": _text(name),
            "Abbreviation": _text(abbr),
            "PartyIds": members,
        }
        for cid, name, abbr, members in COALITIONS
    ]
    return {
        "@type": "ElectionResults.ElectionReport",
        "Format": "summary-contest",
        "GeneratedDate": "2030-07-28T23:30:00+07:00",
        "Issuer": "Suruhanjaya Pilihan Raya Ujian / គណៈកម្មាធិការជាតិរៀបចំការបោះឆ្នោត (TEST, fictional)",
        "IsTest": True,
        "SequenceStart": 1,
        "SequenceEnd": 1,
        "Status": "unofficial-partial",
        "GpUnit": units,
        "Party": parties,
        "Election": [
            {
                "@type": "ElectionResults.Election",
                "Name": _text("Pilihan Raya Umum ke-16 / ការបោះឆ្នោតជាតិ (TEST, fictional figures)"),
                "ElectionScopeId": "ru-0",
                "StartDate": "2030-07-28",
                "EndDate": "2030-07-28",
                "Type": "general",
                "Candidate": candidates,
                "Contest": out,
            }
        ],
    }


def long_names_feed(contests: int = 300, seed: int = 14) -> bytes:
    return json.dumps(long_names_report(contests, seed), ensure_ascii=False).encode("utf-8")


def _count(unit: str, n: int, kind: str = "total") -> dict[str, Any]:
    return {"@type": "ElectionResults.VoteCounts", "GpUnitId": unit, "Type": kind, "Count": n}


def _measure(sid: str, word: str, n: int, unit: str) -> dict[str, Any]:
    return {"@type": "ElectionResults.BallotMeasureSelection", "@id": sid,
            "Selection": _text(word), "VoteCounts": [_count(unit, n)]}  # fmt: skip


def _largest(votes: list[int], seats: int) -> list[int]:
    """Seats by the D'Hondt method."""
    won = [0] * len(votes)
    for _ in range(seats):
        best = max(range(len(votes)), key=lambda k: votes[k] / (won[k] + 1))
        won[best] += 1
    return won
