from __future__ import annotations

import re

import pytest

from broadcaster.domain.model import ContestKind, ResultsStatus
from broadcaster.ingest.parsers import FeedError, parse
from tests.conftest import ROOT

HEADER = "election,status,generated_at,contest_id,contest_name,selection_id,selection_name,votes"


def doc_example() -> bytes:
    text = (ROOT / "docs" / "feed-format.md").read_text(encoding="utf-8")
    match = re.search(r"<!-- example: simple-csv -->\n```csv\n(.*?)```", text, re.S)
    assert match, "docs/feed-format.md lost its CSV example"
    return match.group(1).encode()


def test_documented_example_parses_as_documented():
    snap = parse(doc_example())
    assert snap.election == "Demoland General Election 2030 (TEST)"
    assert snap.status is ResultsStatus.PARTIAL
    assert snap.is_test
    assert snap.issuer == "Demoland Election Commission (fictional)"
    assert [c.id for c in snap.contests] == ["D01", "D02", "P1"]
    d01, d02, p1 = snap.contests
    assert (d01.progress.reported, d01.progress.total) == (12, 20)
    assert d01.leader is not None
    assert d01.leader.name == "Alya Rahman"
    assert not d01.called
    assert d02.called
    assert [w.name for w in d02.winners] == ["Dina Kovac"]
    assert p1.kind is ContestKind.PARTY
    assert p1.seats == 5
    assert {s.party_id: s.seats for s in p1.selections} == {"HBR": 3, "HGL": 2}
    assert snap.parties["HGL"].coalition_id == "UF"
    assert snap.coalitions["UF"].name == "Unity Front"
    assert d02.electorate == 20100
    assert d02.ballots_cast == 15210


def csv_body(*rows: str, header: str = HEADER) -> bytes:
    return ("\n".join([header, *rows]) + "\n").encode()


FIRST = "E,partial,2030-07-28T21:30:00+07:00"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (csv_body(f"{FIRST},c1,C1,s1,Ana,1,204"), "line 2: expected 8 fields, found 9"),
        (
            csv_body(f'{FIRST},c1,C1,s1,Ana,"1,204"'),
            "line 2, column 'votes': expected a non-negative integer, got \"1,204\"",
        ),
        (
            csv_body(f"{FIRST},c1,C1,s1,Ana,-5"),
            "line 2, column 'votes': expected a non-negative integer",
        ),
        # Only ASCII digits are counts: "²" passes str.isdigit but int() refuses it, and
        # another script's digits are named rather than silently read.
        (
            csv_body(f"{FIRST},c1,C1,s1,Ana,5²"),
            "line 2, column 'votes': expected a non-negative integer",
        ),
        (
            csv_body(f"{FIRST},c1,C1,s1,Ana,١٢"),
            "line 2, column 'votes': expected a non-negative integer",
        ),
        (
            csv_body(f"{FIRST},c1,C1,s1,Ana,5", ",,,c1,C1,s1,Bo,6"),
            "line 3, column 'selection_id': duplicate 's1'",
        ),
        (csv_body(f"{FIRST},c1,C1,s1,Ana,5", "F,,,c1,C1,s2,Bo,6"), "line 3, column 'election'"),
        (
            csv_body(f"{FIRST},c1,C1,s1,Ana,5", ",,,c1,Other name,s2,Bo,6"),
            "line 3, column 'contest_name'",
        ),
        (
            csv_body("E,final,2030-07-28T21:30:00+07:00,c1,C1,s1,Ana,5"),
            "column 'status': expected one of",
        ),
        (csv_body(",,,c1,C1,s1,Ana,5"), "column 'election': required on the first data row"),
        (
            csv_body(f"{FIRST},c1,C1,s1,Ana,5", header=HEADER + ",colour"),
            "line 1: unknown column 'colour'",
        ),
        (
            csv_body("c1,C1,s1,Ana", header="contest_id,contest_name,selection_id,selection_name"),
            "missing required column 'votes'",
        ),
        (csv_body(header=HEADER), "no data rows"),
    ],
)
def test_bad_rows_name_line_and_column(body, expected):
    with pytest.raises(FeedError) as info:
        parse(body, "csv")
    assert expected in info.value.problem


def test_repeated_election_columns_must_agree_but_may_repeat():
    snap = parse(csv_body(f"{FIRST},c1,C1,s1,Ana,5", f"{FIRST},c1,C1,s2,Bo,7"))
    assert [s.votes for s in snap.contests[0].selections] == [5, 7]
    assert snap.generated_at.isoformat() == "2030-07-28T21:30:00+07:00"
