"""The simple CSV format is a mapping bundled with broadcaster, read by the same reader as any
mapped CSV; the mapping keys it needed (a strict header, rows that must agree, required fields,
named parties and coalitions, strict winner values) work in an operator's own mapping too."""

from __future__ import annotations

from datetime import UTC
from pathlib import Path

import pytest

from broadcaster.domain.model import ContestKind, ContestState, Stage
from broadcaster.ingest.parsers import FeedError, parse
from broadcaster.ingest.parsers.mapped import (
    SIMPLE_CSV,
    CsvMapping,
    MappingError,
    load_mapping,
    parse_mapped_csv,
)
from tests.test_parse_csv import doc_example

HEADER = "election,status,generated_at,contest_id,contest_name,selection_id,selection_name,votes"
FIRST = "E,partial,2030-07-28T21:30:00+07:00"


def own_mapping(tmp_path: Path, text: str) -> CsvMapping:
    path = tmp_path / "mapping.toml"
    path.write_text(text, encoding="utf-8")
    mapping = load_mapping(path)
    assert isinstance(mapping, CsvMapping)
    return mapping


def test_format_csv_is_the_bundled_mapping_read_as_any_mapping(tmp_path: Path):
    """An operator who copies mappings/simple-csv.toml gets exactly the simple format."""
    copy = own_mapping(tmp_path, SIMPLE_CSV.read_text(encoding="utf-8"))
    body = doc_example()
    assert parse(body, "csv") == parse(body, "mapped", mapping=copy)
    assert parse(body) == parse(body, "csv")  # auto-detected
    # The same problem, named the same, except that an operator's mapping also names its key.
    bad = body.replace(b",5210,", b",5 210,")
    with pytest.raises(FeedError) as simple:
        parse(bad, "csv")
    with pytest.raises(FeedError) as mapped:
        parse(bad, "mapped", mapping=copy)
    assert simple.value.problem == (
        "line 2, column 'votes': expected a non-negative integer, got \"5 210\""
    )
    assert mapped.value.problem == (
        "line 2, column 'votes' (columns.votes): expected a non-negative integer, got \"5 210\""
    )


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        (f"{FIRST},c1,C1,s1,Ana,5,maybe", "line 2, column 'winner': expected true, yes, 1"),
        (f"{FIRST},c1,C1,,Ana,5,", "line 2, column 'selection_id': required, but empty"),
        (f"{FIRST},c1,,s1,Ana,5,", "line 2, column 'contest_name': required, but empty"),
        (f"{FIRST},c1,C1,s1,Ana,,", "line 2, column 'votes': required, but empty"),
    ],
)
def test_simple_csv_required_fields_and_winner_words(row: str, expected: str):
    with pytest.raises(FeedError) as info:
        parse(f"{HEADER},winner\n{row}\n".encode(), "csv")
    assert expected in info.value.problem


def test_simple_csv_header_ignores_case_and_order_and_optional_columns():
    header = (
        "VOTES,Selection_Name,selection_id,contest_name,contest_id,generated_at,status,election"
    )
    snap = parse(f"{header}\n5,Ana,s1,C1,c1,2030-07-28T21:30:00+07:00,partial,E\n".encode(), "csv")
    (contest,) = snap.contests
    assert (contest.id, contest.name, contest.selections[0].votes) == ("c1", "C1", 5)
    assert contest.seats == 1  # a candidate contest without seats fills one
    assert not snap.is_test
    assert snap.issuer is None


OWN = """
type = "csv"
delimiter = ";"
header = "strict"
rows_agree = true
required = ["contest_name", "generated_at"]
winner_values = ["MENANG"]
not_winner_values = ["", "KALAH"]

[columns]
election = "PRU"
issuer = "OLEH"
contest_id = "KOD"
contest_name = "KAWASAN"
contest_kind = "JENIS"
selection_name = "CALON"
party = "PARTI"
party_name = "NAMA_PARTI"
coalition = "GABUNGAN"
coalition_name = "NAMA_GABUNGAN"
votes = "UNDI"
winner = "STATUS"
seats_won = "KERUSI"
generated_at = "MASA"
"""

OWN_FEED = """\
PRU;OLEH;KOD;KAWASAN;JENIS;CALON;PARTI;NAMA_PARTI;GABUNGAN;NAMA_GABUNGAN;UNDI;STATUS;KERUSI;MASA
PRU (TEST);SPR;P.001;Padang;candidate;Aminah;PTA;Parti A;BU;Barisan U;10;MENANG;;2030-07-28T23:10
;;P.001;Padang;candidate;Rahman;PTB;Parti B;;;8;KALAH;;
;;L.1;Senarai;party;Parti A;PTA;Parti A;BU;Barisan U;30;;2;
;;L.1;Senarai;party;Parti B;PTB;Parti B;;;20;;;
"""


def test_an_own_mapping_uses_the_new_keys(tmp_path: Path):
    mapping = own_mapping(tmp_path, OWN)
    snap = parse_mapped_csv(OWN_FEED.encode(), default_tz=UTC, mapping=mapping)
    assert snap.election == "PRU (TEST)"
    assert snap.issuer == "SPR"
    assert snap.parties["PTA"].name == "Parti A"
    assert snap.parties["PTA"].coalition_id == "BU"
    assert snap.coalitions["BU"].name == "Barisan U"
    assert snap.coalitions["BU"].party_ids == ("PTA",)
    seat, lists = snap.contests
    assert [s.winner for s in seat.selections] == [True, False]
    assert lists.kind is ContestKind.PARTY
    assert [s.seats for s in lists.selections] == [2, 0], "a list without seats has none yet"


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (("MASA", "masa"), None),  # a strict header ignores case
        (
            ("UNDI;STATUS", "UNDI;UNDI2"),
            "line 1: unknown column 'undi2'; expected columns among: PRU, OLEH, KOD",
        ),
        (("PRU;OLEH;KOD", "PRU;PRU;KOD"), "line 1: column 'pru' appears twice"),
        (("KOD;KAWASAN;", "KOD;"), "line 1: missing required column 'KAWASAN'"),
        (
            (";Padang;candidate;Rahman", ";Padang Baru;candidate;Rahman"),
            "line 3, column 'KAWASAN' (columns.contest_name): \"Padang Baru\" differs from "
            "\"Padang\" on line 2 for contest 'P.001'",
        ),
        (
            (";;L.1", ";Lain;L.1"),
            'line 4, column \'OLEH\' (columns.issuer): "Lain" differs from "SPR" given earlier',
        ),
        (
            ("8;KALAH", "8;SERI"),
            "line 3, column 'STATUS' (columns.winner): expected menang (elected) or empty, "
            'kalah (not elected), got "SERI"',
        ),
        (
            ("Parti B;;;20", "Parti Bee;;;20"),
            "line 5, column 'NAMA_PARTI' (columns.party_name): party 'PTB' was given as "
            "'Parti B' earlier",
        ),
        (("23:10\n", "23:10;\n"), "line 2: expected 14 fields, found 15"),
    ],
)
def test_an_own_mapping_names_what_does_not_fit(tmp_path: Path, edit, expected):
    mapping = own_mapping(tmp_path, OWN)
    body = OWN_FEED.replace(*edit, 1).encode()
    if expected is None:
        assert parse_mapped_csv(body, default_tz=UTC, mapping=mapping).contests
        return
    with pytest.raises(FeedError) as info:
        parse_mapped_csv(body, default_tz=UTC, mapping=mapping)
    assert expected in info.value.problem


def test_without_the_new_keys_a_mapping_reads_as_before(tmp_path: Path):
    """An open header ignores other columns, a contest's first row is its word, and a winner
    value that is not elected is simply not elected."""
    text = OWN.replace('header = "strict"\nrows_agree = true\n', "")
    text = text.replace("required = [", "required = [] # ").replace("not_winner_values", "# ")
    mapping = own_mapping(tmp_path, text)
    header, *rows = OWN_FEED.splitlines()
    rows[1] = rows[1].replace(";Padang;", ";Padang Baru;").replace("KALAH", "SERI")
    body = "\n".join([header + ";EXTRA", *(row + ";x" for row in rows)]) + "\n"
    snap = parse_mapped_csv(body.encode(), default_tz=UTC, mapping=mapping)
    assert snap.contests[0].name == "Padang"
    assert [s.winner for s in snap.contests[0].selections] == [True, False]


def test_is_test_must_say_true_or_false(tmp_path: Path):
    """A test flag that is neither is refused: read as false, test data would go out live."""
    mapping = own_mapping(tmp_path, OWN.replace('issuer = "OLEH"', 'is_test = "OLEH"'))
    with pytest.raises(FeedError) as info:
        parse_mapped_csv(OWN_FEED.encode(), default_tz=UTC, mapping=mapping)
    assert (
        info.value.problem == "column 'OLEH' (columns.is_test): expected true or false, got \"SPR\""
    )


def test_required_must_name_a_mapped_column(tmp_path: Path):
    with pytest.raises(MappingError, match=r"required: 'ballots_cast' is not a field given"):
        own_mapping(tmp_path, OWN.replace('"generated_at"]', '"ballots_cast"]'))


NIGHT = OWN.replace('seats_won = "KERUSI"', 'seats_won = "KERUSI"\ncontest_status = "KEADAAN"') + (
    '\n[contest_status_values]\nDITANGGUHKAN = "postponed"\nRASMI = "official"\n'
)

NIGHT_FEED = """\
PRU;OLEH;KOD;KAWASAN;KEADAAN;CALON;PARTI;NAMA_PARTI;GABUNGAN;NAMA_GABUNGAN;UNDI;STATUS;KERUSI;MASA
PRU (TEST);SPR;P.001;Padang;RASMI;Aminah;PTA;Parti A;BU;Barisan U;10;MENANG;;2030-07-28T23:10
;;P.001;Padang;RASMI;Rahman;PTB;Parti B;BU;Barisan U;8;KALAH;;
;;P.001;Padang;RASMI;Bebas;;;BU;Barisan U;1;KALAH;;
;;P.002;Bukit;DITANGGUHKAN;Siti;PTA;Parti A;;;0;;;
;;P.003;Lembah;;Lim;PTC;Parti C;BV;Barisan V;5;MENANG;;
;;P.003;Lembah;;Ali;PTB;Parti B;;;4;KALAH;;
"""


def test_an_own_mapping_reads_contest_status_and_coalitions_contest_by_contest(tmp_path: Path):
    """A contest's status word (through contest_status_values) gives its stage or state; a
    party stands for a coalition in one contest and under its own logo in another."""
    snap = parse_mapped_csv(
        NIGHT_FEED.encode(), default_tz=UTC, mapping=own_mapping(tmp_path, NIGHT)
    )
    padang, bukit, lembah = snap.contests
    assert (padang.stage, padang.state) == (Stage.OFFICIAL, ContestState.NORMAL)
    assert (bukit.stage, bukit.state) == (None, ContestState.POSTPONED)
    assert (lembah.stage, lembah.state) == (None, ContestState.NORMAL)
    # Each row says what its selection stood for there; "" is "none here", not "unknown".
    assert [s.coalition_id for s in padang.selections] == ["BU", "BU", "BU"]
    assert [s.coalition_id for s in bukit.selections] == [""]
    assert [s.coalition_id for s in lembah.selections] == ["BV", ""]
    assert snap.coalition_for(bukit.selections[0]) is None
    assert snap.coalition_for(lembah.selections[1]) is None
    # A party's own coalition is the first one given; a coalition's parties stood for it.
    assert snap.parties["PTA"].coalition_id == "BU"
    assert snap.parties["PTB"].coalition_id == "BU"
    assert snap.coalitions["BU"].party_ids == ("PTA", "PTB")  # not the independent
    assert snap.coalitions["BV"].name == "Barisan V"
    assert snap.coalitions["BV"].party_ids == ("PTC",)


def test_without_a_coalition_column_the_party_s_coalition_counts():
    body = f"{HEADER},party_id\n{FIRST},c1,C1,s1,Ana,5,PTA\n".encode()
    (contest,) = parse(body, "csv").contests
    assert contest.selections[0].coalition_id is None
    assert contest.stage is None
    assert contest.state is ContestState.NORMAL


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            (";DITANGGUHKAN;", ";TANGGUH;"),
            "line 5, column 'KEADAAN' (columns.contest_status): expected one of DITANGGUHKAN, "
            "RASMI, provisional, official, certified, corrected, normal, postponed, suspended, "
            'uncontested, withheld, recount, got "TANGGUH"',
        ),
        (
            (";RASMI;Bebas", ";;Bebas"),
            'line 4, column \'KEADAAN\' (columns.contest_status): "" differs from "RASMI" on '
            "line 2 for contest 'P.001'",
        ),
        (
            (";Parti B;;;4", ";Parti Bee;;;4"),
            "line 7, column 'NAMA_PARTI' (columns.party_name): party 'PTB' was given as "
            "'Parti B' earlier",
        ),
    ],
)
def test_contest_status_and_parties_that_do_not_fit_are_named(tmp_path: Path, edit, expected):
    body = NIGHT_FEED.replace(*edit, 1).encode()
    with pytest.raises(FeedError) as info:
        parse_mapped_csv(body, default_tz=UTC, mapping=own_mapping(tmp_path, NIGHT))
    assert info.value.problem == expected


def test_simple_csv_contest_status_is_named_by_its_column():
    header = HEADER + ",contest_status"
    with pytest.raises(FeedError) as info:
        parse(f"{header}\n{FIRST},c1,C1,s1,Ana,5,later\n".encode(), "csv")
    assert info.value.problem.startswith(
        "line 2, column 'contest_status': expected one of provisional, official"
    )
