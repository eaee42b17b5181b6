"""Any JSON or CSV through a mapping file: the two examples of docs/feed-format.md, and mistakes
in mappings and feeds, each named."""

from __future__ import annotations

import json
import re
from datetime import UTC
from pathlib import Path

import pytest

from broadcaster.core.config import ConfigError
from broadcaster.domain.model import ResultsStatus
from broadcaster.ingest.parsers import FeedError, parse, reader_for
from broadcaster.ingest.parsers.mapped import MappingError, load_mapping
from broadcaster.runtime.configuration import load_config

DOC = Path(__file__).resolve().parent.parent / "docs" / "feed-format.md"


def example(name: str) -> str:
    """The fenced block that follows `<!-- example: NAME -->` in docs/feed-format.md."""
    text = DOC.read_text(encoding="utf-8")
    match = re.search(rf"<!-- example: {name} -->\n```\w+\n(.*?)```", text, re.S)
    assert match, f"no example {name!r} in {DOC}"
    return match.group(1)


def mapping_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "mapping.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_documented_json_example(tmp_path: Path):
    mapping = load_mapping(mapping_file(tmp_path, example("json-mapping")))
    snap = parse(example("json-feed").encode(), "mapped", default_tz=UTC, mapping=mapping)
    assert snap.election == "Testland General Election 2030 (TEST)"
    assert snap.status is ResultsStatus.PARTIAL
    assert snap.is_test
    assert snap.generated_at.isoformat() == "2030-07-28T21:30:00+07:00"
    assert snap.parties["HBR"].abbreviation == "HBR"
    assert snap.parties["HGL"].color == "#2ca02c"
    p1, p2 = snap.contests
    assert (p1.id, p1.name, p1.seats) == ("P001", "Northbay (TEST)", 1)
    assert (p1.progress.reported, p1.progress.total) == (12, 20)
    assert (p1.electorate, p1.ballots_cast) == (18200, 9320)
    assert [(s.id, s.votes, s.party_id, s.winner) for s in p1.selections] == [
        ("P001-1", 5210, "HBR", False),
        ("P001-2", 3905, "HGL", False),
    ]
    assert not p1.called
    assert p2.called
    assert [s.name for s in p2.winners] == ["Dina Kovac"]


def test_documented_csv_example(tmp_path: Path):
    mapping = load_mapping(mapping_file(tmp_path, example("csv-mapping")))
    snap = parse(example("csv-feed").encode(), "mapped", default_tz=UTC, mapping=mapping)
    assert snap.election == "Pilihan Raya Ujian 2030 (TEST)"
    assert snap.is_test
    assert snap.generated_at.isoformat() == "2030-07-28T23:10:00+08:00"
    p1, p2 = snap.contests
    assert (p1.id, p1.name) == ("P.001", "Padang Ujian (TEST)")
    assert [s.name for s in p1.winners] == ["Aminah Yusof"]
    assert p1.selections[0].party_id == "PTA"
    assert (p2.progress.reported, p2.progress.total, p2.electorate) == (20, 38, 65010)
    assert p2.leader is not None
    assert p2.leader.name == "Siti Hamid"
    assert not p2.called


def test_a_configuration_with_a_mapping_reads_the_feed(tmp_path: Path):
    mapping_file(tmp_path, example("json-mapping"))
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        '[feed]\nsource = "feed.json"\nformat = "mapped"\nmapping = "mapping.toml"\n'
        '[[accounts]]\nname = "x"\nplatform = "x"\n'
    )
    read = reader_for(load_config(cfg))
    assert [c.id for c in read(example("json-feed").encode()).contests] == ["P001", "P002"]


def json_feed(mutate) -> bytes:
    doc = json.loads(example("json-feed"))
    mutate(doc)
    return json.dumps(doc).encode()


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (
            lambda d: d.pop("constituencies"),
            "mapping contests.each = 'constituencies': found null, expected a non-empty list",
        ),
        (
            lambda d: d["constituencies"][0]["candidates"][1].update(votes="1,204"),
            "mapping selections.votes = 'votes' (contest 'P001', selection #2): found "
            '"1,204", expected a non-negative whole number',
        ),
        (
            lambda d: d["constituencies"][0]["candidates"][1].update(votes=-5),
            "found -5, expected a non-negative whole number",
        ),
        (
            lambda d: d["constituencies"][1]["candidates"][0].update(party="XYZ"),
            "contest 'P002', selection 'P002-1': unknown party 'XYZ'",
        ),
        (
            lambda d: d["constituencies"][1]["candidates"][1].update(id="P002-1"),
            "contest 'P002': duplicate selection id 'P002-1'",
        ),
        (
            lambda d: d["constituencies"][1].update(code="P001"),
            "duplicate contest id 'P001'",
        ),
        (
            lambda d: d["meta"].update(stage="DONE"),
            "mapping election.status = 'meta.stage': found \"DONE\", expected one of PROVISIONAL",
        ),
        (
            lambda d: d["meta"].update(updated="tomorrow"),
            "mapping election.generated_at = 'meta.updated': expected an ISO 8601 date-time",
        ),
        (
            lambda d: d["constituencies"][0]["candidates"][0].update(status=7),
            "",  # not WON: simply not a winner (the expression is a comparison)
        ),
    ],
)
def test_a_feed_that_does_not_fit_names_the_expression_and_what_it_found(
    tmp_path: Path, mutate, expected: str
):
    mapping = load_mapping(mapping_file(tmp_path, example("json-mapping")))
    body = json_feed(mutate)
    if not expected:
        snap = parse(body, "mapped", default_tz=UTC, mapping=mapping)
        assert not snap.contests[0].selections[0].winner
        return
    with pytest.raises(FeedError) as info:
        parse(body, "mapped", default_tz=UTC, mapping=mapping)
    assert expected in info.value.problem


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (('votes = "votes"', 'votes = "votes["'), "selections.votes = 'votes[': not a JMESPath"),
        (('type = "json"', 'type = "xml"'), 'type: expected "json" or "csv", got "xml"'),
        (('id = "code"\nname = "name"\nseats', 'idd = "code"\nname = "name"\nseats'), "contests"),
        (('each = "candidates"', "each = 3"), "selections.each: Input should be a valid string"),
    ],
)
def test_a_broken_mapping_is_refused_when_loaded(tmp_path: Path, change, expected: str):
    text = example("json-mapping").replace(*change)
    with pytest.raises(MappingError) as info:
        load_mapping(mapping_file(tmp_path, text))
    assert str(tmp_path / "mapping.toml") in str(info.value)
    assert expected in str(info.value)


def test_a_broken_mapping_stops_the_configuration_not_the_night(tmp_path: Path):
    mapping_file(tmp_path, "type = 'json'\n[contests]\neach = 'x'\n")
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        '[feed]\nsource = "f"\nformat = "mapped"\nmapping = "mapping.toml"\n'
        '[[accounts]]\nname = "x"\nplatform = "x"\n'
    )
    with pytest.raises(ConfigError, match=r"\[feed\] mapping: .*contests.id: Field required"):
        reader_for(load_config(cfg))
    cfg.write_text(
        '[feed]\nsource = "f"\nformat = "mapped"\n[[accounts]]\nname="x"\nplatform="x"\n'
    )
    with pytest.raises(ConfigError, match='format "mapped" needs `mapping`'):
        load_config(cfg)


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda t: t.replace("UNDI", "VOTES", 1), "columns.votes = 'UNDI': no such column"),
        (lambda t: t.replace(";10234;", ";10,234;"), "line 2, column 'UNDI' (columns.votes)"),
        (
            lambda t: t.replace("Rahman Ali", "Aminah Yusof"),
            "line 3, column 'CALON' (columns.selection_name): duplicate 'Aminah Yusof'",
        ),
        (lambda t: t.replace(";45;70123", ";45", 1), "line 2: expected 10 fields, found 9"),
        (lambda t: t.replace("2030-07-28T23:10:00+08:00", "soon", 1), "column 'MASA'"),
        (lambda t: t.split("\n", 1)[0] + "\n", "no data rows after the header"),
    ],
)
def test_a_csv_that_does_not_fit_names_line_and_column(tmp_path: Path, edit, expected: str):
    mapping = load_mapping(mapping_file(tmp_path, example("csv-mapping")))
    with pytest.raises(FeedError) as info:
        parse(edit(example("csv-feed")).encode(), "mapped", default_tz=UTC, mapping=mapping)
    assert expected in info.value.problem


@pytest.mark.parametrize(
    "expr", ["a", "a.b", "a == 'x'", "a.b != 'y'", "a[0]", "a == `1`", "a || 'none'"]
)
def test_fast_getters_agree_with_jmespath(expr: str):
    import jmespath

    from broadcaster.ingest.parsers.mapped import _Getter

    getter = _Getter("selections.votes", expr)
    for doc in ({}, {"a": "x"}, {"a": {"b": "y"}}, {"a": [1]}, {"a": 1}, {"a": True}, [], None):
        assert getter(doc) == jmespath.search(expr, doc), (expr, doc)


def test_an_expression_that_fails_on_the_data_names_itself(tmp_path: Path):
    text = example("json-mapping").replace('votes = "votes"', 'votes = "length(votes)"')
    mapping = load_mapping(mapping_file(tmp_path, text))
    with pytest.raises(FeedError, match=r"mapping selections.votes = 'length\(votes\)': "):
        parse(example("json-feed").encode(), "mapped", default_tz=UTC, mapping=mapping)
