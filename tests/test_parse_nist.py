from __future__ import annotations

import json
from datetime import timedelta, timezone

import pytest

from broadcaster.domain.model import ContestKind, ResultsStatus
from broadcaster.ingest.parsers import FeedError, detect, parse
from tests.conftest import shared_feed
from tests.nist_builder import (
    candidate,
    candidate_contest,
    coalition,
    counts,
    dumps,
    party,
    party_contest,
    report,
    unit,
)


def two_way(a: int, b: int, *, winner: str | None = None, reported=(5, 10)) -> bytes:
    doc = report(
        [
            candidate_contest(
                "c1",
                [("s-a", "can-a", [counts("ru-1", a)]), ("s-b", "can-b", [counts("ru-1", b)])],
                reported=reported,
            )
        ],
        candidates=[
            candidate("can-a", "Ana", "par-a", winner=winner == "a"),
            candidate("can-b", "Ben", "par-b", winner=winner == "b"),
        ],
    )
    return dumps(doc)


# -- the real and official samples ---------------------------------------------------------------


def test_cambridge_real_report_sums_precincts_within_each_district():
    snap = parse(shared_feed("err-2022-11-08-Massachusetts-Cambridge.json").read_bytes())
    assert snap.status is ResultsStatus.CERTIFIED
    assert snap.election == "General Election"
    assert len(snap.contests) == 26
    governor = snap.contest("cc-governor-and-lieutenant-governor-statewide")
    assert governor is not None
    votes = {s.name: s.votes for s in governor.selections}
    # Counts exist only per precinct (42 of them): the totals are their sums.
    assert votes == {
        "HEALEY AND DRISCOLL": 33312,
        "DIEHL AND ALLEN": 2768,
        "REED AND EVERETT": 423,
        "Write-in": 57,
    }
    assert governor.progress.reported == governor.progress.total == 42
    assert governor.ballots_cast == 36897
    assert governor.leader is not None
    assert governor.leader.name == "HEALEY AND DRISCOLL"
    # The export lists write-ins for every precinct of the city under each district's contest;
    # only the district's two precincts count.
    suffolk = snap.contest("cc-representative-in-general-court-eighteenth-suffolk")
    assert suffolk is not None
    assert {s.name: s.votes for s in suffolk.selections} == {"MICHAEL J. MORAN": 161, "Write-in": 1}
    assert suffolk.progress.total == 2
    assert suffolk.ballots_cast == 191
    assert suffolk.total_votes <= suffolk.ballots_cast
    # Ballot questions are read as contests without seats.
    q1 = snap.contest("bmc-question-1")
    assert q1 is not None
    assert q1.kind is ContestKind.MEASURE
    assert q1.seats is None
    assert {s.name: s.votes for s in q1.selections} == {"YES": 27606, "NO": 8355}
    for contest in snap.contests:
        if contest.ballots_cast is not None and contest.kind is ContestKind.CANDIDATE:
            assert contest.total_votes <= contest.ballots_cast, contest.id


def test_nist_synthetic_sample_uses_district_total_not_double():
    snap = parse(shared_feed("err-gen-03_synthetic.json").read_bytes())
    assert snap.status is ResultsStatus.COMPLETE
    assert snap.issuer == "National Institute of Standards and Technology"
    president = snap.contest("cc-president")
    assert president is not None
    # The county total and both precincts are given; the county's own total is used.
    assert {s.id: s.votes for s in president.selections} == {
        "cs-president-ak": 10,
        "cs-president-bg": 9,
        "cs-president-wi": 1,
    }
    assert {s.party_id for s in president.selections} == {"par-rep", "par-dem", None}
    assert snap.generated_at.utcoffset() == timedelta(hours=-4)
    assert len(snap.contests) == 8


# -- what the standard says, on our own fixtures -------------------------------------------------


def test_winner_from_post_election_status():
    snap = parse(two_way(100, 80, winner="a"))
    contest = snap.contests[0]
    assert contest.called
    assert [s.name for s in contest.winners] == ["Ana"]
    assert snap.is_test


def test_party_contest_seats_and_coalitions():
    doc = report(
        [
            party_contest(
                "pl1",
                [
                    ("ps-a", "par-a", [counts("ru-1", 600), counts("ru-1", 3, "seats")]),
                    ("ps-b", "par-b", [counts("ru-1", 400), counts("ru-1", 2, "seats")]),
                ],
                seats=5,
                reported=(10, 10),
            )
        ],
        parties=[
            party("par-a", "Party A"),
            party("par-b", "Party B"),
            coalition("coa-x", "Coalition X", ["par-a"]),
        ],
    )
    snap = parse(dumps(doc))
    contest = snap.contests[0]
    assert contest.kind is ContestKind.PARTY
    assert contest.seats == 5
    assert {s.party_id: s.seats for s in contest.selections} == {"par-a": 3, "par-b": 2}
    assert contest.called
    assert snap.parties["par-a"].coalition_id == "coa-x"
    assert snap.coalitions["coa-x"].party_ids == ("par-a",)
    assert snap.coalition_of("par-b") is None


def test_precinct_counts_summed_without_counting_intermediate_units_twice():
    units = [
        unit("ru-d", ["ru-ward"]),
        unit("ru-ward", ["p1", "p2", "p3"]),
        unit("p1"),
        unit("p2"),
        unit("p3"),
    ]
    contest = candidate_contest(
        "c1",
        [
            # The ward's own subtotal is given as well as its precincts: count precincts once.
            ("s-a", "can-a", [counts("p1", 10), counts("p2", 20), counts("ru-ward", 30)]),
            (
                "s-b",
                "can-b",
                [counts("p1", 5), counts("p2", 5, "election-day"), counts("p2", 2, "early")],
            ),
        ],
        district="ru-d",
    )
    doc = report(
        [contest], units=units, candidates=[candidate("can-a", "Ana"), candidate("can-b", "Ben")]
    )
    snap = parse(dumps(doc))
    c = snap.contests[0]
    assert {s.id: s.votes for s in c.selections} == {"s-a": 30, "s-b": 12}
    # Two of the district's three precincts have counts.
    assert (c.progress.reported, c.progress.total) == (2, 3)


def test_naive_generated_date_is_taken_in_the_election_timezone():
    doc = report([], generated="2030-01-01T20:00:00")
    doc["Election"][0]["Contest"] = json.loads(two_way(1, 2))["Election"][0]["Contest"]
    doc["Election"][0]["Candidate"] = json.loads(two_way(1, 2))["Election"][0]["Candidate"]
    tz = timezone(timedelta(hours=8))
    snap = parse(dumps(doc), default_tz=tz)
    assert snap.generated_at.utcoffset() == timedelta(hours=8)


# -- bad input: one clear error naming the place ------------------------------------------------


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (
            lambda d: d["Election"][0]["Contest"][0]["ContestSelection"][0]["VoteCounts"][0].update(
                Count="12a"
            ),
            'ContestSelection[0].VoteCounts[0].Count: expected a non-negative integer, got "12a"',
        ),
        (
            lambda d: d["Election"][0]["Contest"][0]["ContestSelection"][0]["VoteCounts"][0].update(
                Count=-3
            ),
            "ContestSelection[0].VoteCounts[0].Count: expected a non-negative integer, got -3",
        ),
        (
            lambda d: d["Election"][0]["Contest"][0]["ContestSelection"][1].update(
                CandidateIds=["can-zz"]
            ),
            "Contest[0].ContestSelection[1].CandidateIds[0]: unknown candidate 'can-zz'",
        ),
        (
            lambda d: d["Election"][0]["Contest"][0]["ContestSelection"][0]["VoteCounts"][0].update(
                GpUnitId="ru-9"
            ),
            "Contest[0].ContestSelection[0].VoteCounts[0].GpUnitId: unknown GpUnit 'ru-9'",
        ),
        (
            lambda d: d["Election"][0]["Candidate"][0].update(PartyId="par-zz"),
            "Election[0].Candidate[0].PartyId: unknown party 'par-zz'",
        ),
        (lambda d: d.pop("GeneratedDate"), "GeneratedDate: expected a non-empty string, got null"),
        (
            lambda d: d.update(GeneratedDate="yesterday"),
            "GeneratedDate: expected an ISO 8601 date-time",
        ),
        (lambda d: d.update(Status="final"), "Status: expected one of"),
        (
            lambda d: d["Election"][0].update(Contest={}),
            "Election[0].Contest: expected a list, got {}",
        ),
        (
            lambda d: d["Election"][0]["Contest"].append(d["Election"][0]["Contest"][0]),
            "Election[0].Contest[1].@id: duplicate contest id 'c1'",
        ),
        (lambda d: d.update(Election=[]), "Election: expected at least one election"),
    ],
)
def test_bad_content_names_the_field(mutate, expected):
    doc = json.loads(two_way(10, 20))
    mutate(doc)
    with pytest.raises(FeedError) as info:
        parse(dumps(doc))
    assert expected in info.value.problem


def test_malformed_json_names_line_and_column():
    body = b'{\n  "@type": "ElectionResults.ElectionReport",\n  "Status" "certified"\n}'
    with pytest.raises(FeedError, match=r"line 3 column 12: malformed JSON"):
        parse(body, "nist")


@pytest.mark.parametrize("body", [b"", b"   \n", b"\xef\xbb\xbf"])
def test_empty_body_is_rejected(body):
    with pytest.raises(FeedError, match="empty body"):
        parse(body)


def test_invalid_utf8_is_rejected_with_offset():
    with pytest.raises(FeedError, match=r"byte 13: not valid UTF-8"):
        parse(b'{"@type": "El\xff\xfeectionResults.ElectionReport"}', "nist")


def test_format_detection():
    assert detect(two_way(1, 2)) == "nist"
    assert detect(b"contest_id,contest_name,selection_id,selection_name,votes\n") == "csv"
    with pytest.raises(FeedError, match="HTML page"):
        detect(b"<!DOCTYPE html><html><body>502 Bad Gateway</body></html>")
    with pytest.raises(FeedError, match="not a NIST"):
        detect(b'{"results": []}')
    with pytest.raises(FeedError, match="cannot detect"):
        detect(b"hello world")


def test_deeply_nested_json_is_a_feed_error():
    body = (
        b'{"@type": "ElectionResults.ElectionReport", "x": '
        + b"[" * 100_000
        + b"]" * 100_000
        + b"}"
    )
    with pytest.raises(FeedError):
        parse(body)
