"""A NIST report is read contest by contest, never as one tree, and always as the tree reads it.

`read_streamed` must give exactly `read_tree`'s snapshot, or give up (Unsure, or any error) so
that `parse_nist` falls back to the tree, whose answer and error messages count.
"""

from __future__ import annotations

import json
import random
import tracemalloc
from datetime import UTC
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from broadcaster.core.paths import DEMO_SNAPSHOTS
from broadcaster.domain.model import Progress, Snapshot
from broadcaster.ingest.parsers import FeedError, nist
from broadcaster.ingest.parsers.base import decode_text
from broadcaster.ingest.parsers.jsonwalk import WINDOW, Unsure, Walker, located
from broadcaster.ingest.parsers.nist import parse_nist, read_streamed, read_tree
from tests.conftest import shared_feed
from tests.ge15_night import ge15_plan, write_ge15
from tests.nist_builder import (
    candidate,
    candidate_contest,
    coalition,
    counts,
    party,
    party_contest,
    report,
    unit,
)


def tree(body: bytes) -> Snapshot:
    return read_tree(decode_text(body), default_tz=UTC)


# Windows far smaller than a contest make every read cross a window's end, and one of an odd
# size cuts the Khmer names' three-byte characters anywhere.
WINDOWS = [WINDOW, 16, 37]


def streamed(body: bytes, window: int = WINDOW) -> Snapshot:
    return read_streamed(body, default_tz=UTC, window=window)


def outcome(read: Any, body: bytes) -> tuple[str, Any]:
    """What a reading gives: its snapshot, or its error's kind and message."""
    try:
        return ("snapshot", read(body))
    except Exception as exc:  # compared, never hidden: the test fails on any difference
        return ("error", f"{type(exc).__name__}: {exc}")


def night_doc(status: str = "unofficial-partial") -> dict[str, Any]:
    """Two elections; a district made of three precincts that reports no progress of its own
    (so a final report counts every precinct), a party-list contest, a coalition, a winner."""
    units = [
        unit("ru-1", ["p-1", "p-2", "p-3"]),
        unit("p-1"),
        unit("p-2"),
        unit("p-3"),
        unit("ru-2"),
    ]
    parties = [
        party("par-a", "Party A"),
        party("par-b", "Party B"),
        coalition("coa-1", "Coalition One", ["par-a"]),
    ]
    doc = report(
        [
            candidate_contest(
                "c1",
                [("s-a", "can-a", [counts("p-1", 40)]), ("s-b", "can-b", [counts("p-1", 25)])],
                district="ru-1",
                reported=None,
            ),
            candidate_contest(
                "c2",
                [("s-c", "can-c", [counts("ru-2", 7)]), ("s-d", "can-d", [counts("ru-2", 9)])],
                district="ru-2",
                reported=(1, 1),
            ),
            party_contest(
                "pc-1",
                [
                    ("ps-a", "par-a", [counts("ru-1", 300)]),
                    ("ps-b", "coa-1", [counts("ru-1", 200)]),
                ],
                seats=3,
            ),
        ],
        candidates=[
            candidate("can-a", "Ana Binti Ali", "par-a"),
            candidate("can-b", "សុខ ចាន់ធី", "par-b"),
            candidate("can-c", "Chea Sokha", "par-a", winner=True),
            candidate("can-d", "Dara", "par-b"),
        ],
        units=units,
        parties=parties,
        status=status,
    )
    second = json.loads(json.dumps(doc["Election"][0]))
    second["Name"]["Text"][0]["Content"] = "Second Test Election"
    second["Candidate"] = [candidate("can-e", "Eng", "par-b")]
    second["Contest"] = [
        candidate_contest("c3", [("s-e", "can-e", [counts("ru-2", 3)])], district="ru-2")
    ]
    doc["Election"].append(second)
    return doc


def ordered(doc: dict[str, Any], order: str) -> bytes:
    """The document with its objects' keys as built, sorted (as the NIST exports we have are:
    Election before GpUnit, Party and Status) or reversed."""
    if order == "built":
        return json.dumps(doc, ensure_ascii=False).encode()
    if order == "sorted":
        return json.dumps(doc, sort_keys=True, indent=1, ensure_ascii=False).encode()

    def reverse(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: reverse(value[k]) for k in reversed(list(value))}
        if isinstance(value, list):
            return [reverse(v) for v in value]
        return value

    # Reversed: the contests come before their election's candidates, and that election is
    # then read the tree's way.
    return json.dumps(reverse(doc), ensure_ascii=False).encode()


@pytest.mark.parametrize("window", WINDOWS)
@pytest.mark.parametrize("order", ["built", "sorted", "reversed"])
@pytest.mark.parametrize("status", ["unofficial-partial", "certified"])
def test_a_report_read_contest_by_contest_is_the_tree_reading(
    order: str, status: str, window: int
) -> None:
    body = ordered(night_doc(status), order)
    expected = tree(body)
    assert streamed(body, window) == expected
    assert parse_nist(body, default_tz=UTC) == expected
    # The precincts say one of three reported; a final report counts them all, though its
    # Status is read after the contests in sorted order.
    c1 = expected.contest("c1")
    assert c1 is not None
    assert c1.progress == (Progress(3, 3) if status == "certified" else Progress(1, 3))
    assert [c.id for c in expected.contests] == ["c1", "c2", "pc-1", "c3"]


def test_the_tree_is_not_built_for_a_well_formed_report(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_tree(*_args: Any, **_kwargs: Any) -> Any:
        raise AssertionError("the whole tree was read")

    body = ordered(night_doc(), "sorted")
    expected = tree(body)
    monkeypatch.setattr(nist, "load_json_text", no_tree)
    assert parse_nist(body, default_tz=UTC) == expected


def test_bundled_and_generated_nights_read_the_same_both_ways(tmp_path: Path) -> None:
    files = sorted(DEMO_SNAPSHOTS.glob("*.json"))
    files += write_ge15(tmp_path / "night", ge15_plan(30))[:3]
    assert len(files) > 3
    for path in files:
        body = path.read_bytes()
        assert streamed(body) == tree(body), path.name
        assert streamed(body, 64) == tree(body), path.name


@pytest.mark.parametrize(
    "name", ["err-2022-11-08-Massachusetts-Cambridge.json", "err-gen-03_synthetic.json"]
)
def test_real_and_official_samples_read_the_same_both_ways(name: str) -> None:
    body = shared_feed(name).read_bytes()
    assert streamed(body) == tree(body)
    assert streamed(body, 37) == tree(body)


def _text(doc: dict[str, Any]) -> str:
    return json.dumps(doc)


def _swap(text: str, old: str, new: str) -> str:
    assert old in text
    return text.replace(old, new, 1)


def _duplicate_election(doc: dict[str, Any]) -> str:
    # json.loads keeps the last of two same-named members; the first one here is a decoy.
    decoy = json.loads(json.dumps(doc["Election"]))
    decoy[0]["Name"]["Text"][0]["Content"] = "Decoy Election"
    for election in decoy:
        for contest in election["Contest"]:
            contest["@id"] = "decoy-" + contest["@id"]
    return _swap(_text(doc), '"Election": ', f'"Election": {json.dumps(decoy)}, "Election": ')


def _escaped_units_and_a_plain_nested_one(doc: dict[str, Any]) -> str:
    doc["Election"][0]["Contest"][0]["Extension"] = {"GpUnit": []}
    return _swap(_text(doc), '"GpUnit": [{', '"\\u0047pUnit": [{')


def _ballots_after_contests(doc: dict[str, Any]) -> str:
    election = doc["Election"][0]
    election["BallotCounts"] = [{"Type": "total", "BallotsCast": 99, "GpUnitId": "ru-2"}]
    return _text(doc)


def _nested_gpunit(doc: dict[str, Any]) -> str:
    # An extension member named like the report's units, inside a contest: not the units.
    doc["Election"][0]["Contest"][0]["Extension"] = {"GpUnit": [unit("ru-x")]}
    return _text(doc)


def _units_only_nested(doc: dict[str, Any]) -> str:
    units = doc.pop("GpUnit")
    doc["Election"][0]["Extension"] = {"GpUnit": units}
    return _text(doc)


def _candidates_after_contests(doc: dict[str, Any]) -> str:
    election = doc["Election"][0]
    election["Candidate"] = election.pop("Candidate")
    return _text(doc)


HOSTILE = {
    "a second Election member wins": _duplicate_election,
    "a units member named with an escape": lambda d: _swap(_text(d), '"GpUnit"', '"\\u0047pUnit"'),
    "a member named GpUnit inside a contest": _nested_gpunit,
    "escaped units, and a plain GpUnit inside a contest": _escaped_units_and_a_plain_nested_one,
    "ballot counts after the contests": _ballots_after_contests,
    "units only inside an election": _units_only_nested,
    "candidates after the contests": _candidates_after_contests,
    "a duplicate Party member": lambda d: _swap(_text(d), '"Party": ', '"Party": [], "Party": '),
    "two Contest members": lambda d: _swap(_text(d), '"Contest": [', '"Contest":[],"Contest":['),
    "no comma between two contests": lambda d: _swap(_text(d), '}]}]}, {"@type"', '}]}]} {"@type"'),
    "a comma before a closing brace": lambda d: _text(d)[:-1] + ", }",
    "data after the document": lambda d: _text(d) + " {}",
    "a second byte order mark": lambda d: "\ufeff" + _text(d),
    "no Election": lambda d: _swap(_text(d), '"Election"', '"Elections"'),
    "an empty Election list": lambda d: json.dumps({**d, "Election": []}),
    "Status read before contests, then broken": lambda d: json.dumps({**d, "Status": "nope"}),
    "a contest that is not an object": lambda d: _swap(_text(d), '"Contest": [', '"Contest": [7, '),
    "a duplicate contest id": lambda d: json.dumps(
        {**d, "Election": [{**d["Election"][0], "Contest": d["Election"][0]["Contest"] * 2}]}
    ),
    "not a report": lambda d: _swap(_text(d), '"ElectionResults.ElectionReport"', '"Other"'),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_unusual_or_broken_reports_get_the_tree_readings_answer(case: str) -> None:
    body = HOSTILE[case](night_doc()).encode()
    expected = outcome(tree, body)
    assert outcome(lambda b: parse_nist(b, default_tz=UTC), body) == expected
    # The contest-by-contest reading either agrees or gives up: it never answers otherwise.
    for window in WINDOWS:
        by_contest = outcome(partial(streamed, window=window), body)
        assert by_contest == expected or by_contest[0] == "error", (window, by_contest)


def test_a_second_election_member_is_the_one_read() -> None:
    snap = parse_nist(_duplicate_election(night_doc()).encode(), default_tz=UTC)
    assert snap.election == "Test Election"
    # Read contest by contest, the broken first one stops it (or the repeated name would).
    with pytest.raises((Unsure, FeedError)):
        streamed(_duplicate_election(night_doc()).encode())


def test_candidates_after_the_contests_are_still_the_candidates() -> None:
    snap = parse_nist(_candidates_after_contests(night_doc()).encode(), default_tz=UTC)
    c1 = snap.contest("c1")
    assert c1 is not None
    assert [s.name for s in c1.selections] == ["Ana Binti Ali", "សុខ ចាន់ធី"]


def test_mangled_reports_are_answered_as_the_tree_answers_them() -> None:
    """Random damage (a byte dropped, doubled or replaced by JSON punctuation) to a small
    report: the reading's snapshot or error message is always the tree's."""
    text = ordered(night_doc("certified"), "sorted").decode()
    rng = random.Random(15)
    marks = [*',:{}[]"\\ 0-', "\u17a2"]
    checked = 0
    for _ in range(400):
        at = rng.randrange(len(text))
        cut = rng.choice(["drop", "double", "replace"])
        if cut == "drop":
            mangled = text[:at] + text[at + 1 :]
        elif cut == "double":
            mangled = text[:at] + text[at] + text[at:]
        else:
            mangled = text[:at] + rng.choice(marks) + text[at + 1 :]
        body = mangled.encode()
        expected = outcome(tree, body)
        assert outcome(lambda b: parse_nist(b, default_tz=UTC), body) == expected, (cut, at)
        by_contest = outcome(lambda b: streamed(b, rng.choice(WINDOWS)), body)
        assert by_contest == expected or by_contest[0] == "error", (cut, at)
        checked += expected[0] == "snapshot"
    assert checked > 20  # some damage left a readable report, and it was compared


def test_reading_contest_by_contest_holds_much_less_at_once(tmp_path: Path) -> None:
    """tracemalloc's count of what was allocated at the worst moment: the tree of a
    2,000-seat report is several times its text; the contest-by-contest reading holds the
    text, the snapshot and one contest."""
    body = write_ge15(tmp_path / "night", ge15_plan(2000))[-1].read_bytes()

    def peak(read: Any) -> int:
        tracemalloc.start()
        try:
            read(body)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    whole, by_contest = peak(tree), peak(streamed)
    assert by_contest < 0.6 * whole, (by_contest, whole)


def test_an_error_found_reading_contest_by_contest_is_the_trees_message() -> None:
    doc = night_doc()
    doc["Election"][0]["Contest"][1]["ContestSelection"][0]["VoteCounts"][0]["Count"] = -4
    body = json.dumps(doc, sort_keys=True).encode()
    with pytest.raises(FeedError) as tree_error:
        tree(body)
    with pytest.raises(FeedError) as error:
        parse_nist(body, default_tz=UTC)
    assert str(error.value) == str(tree_error.value)
    assert "Contest[1].ContestSelection[0].VoteCounts[0].Count" in str(error.value)


def test_a_report_nested_too_deeply_is_refused_both_ways() -> None:
    doc = night_doc()
    doc["Election"][0]["Contest"][0]["Extra"] = "DEEP"
    body = json.dumps(doc).replace('"DEEP"', "[" * 5000 + "]" * 5000).encode()
    with pytest.raises(FeedError, match="nested too deeply"):
        parse_nist(body, default_tz=UTC)
    with pytest.raises((Unsure, RecursionError)):
        streamed(body)


@pytest.mark.parametrize("window", WINDOWS)
def test_bytes_that_are_not_utf8_are_named_as_the_tree_names_them(window: int) -> None:
    body = ordered(night_doc(), "sorted").replace(b"Ana Binti", b"A\xffna Binti", 1)
    with pytest.raises(FeedError) as tree_error:
        tree(body)
    assert "not valid UTF-8" in str(tree_error.value)
    with pytest.raises(FeedError) as error:
        parse_nist(body, default_tz=UTC)
    assert str(error.value) == str(tree_error.value)
    with pytest.raises(Unsure):
        streamed(body, window)


def test_a_report_is_never_decoded_whole_at_once(tmp_path: Path) -> None:
    """The text decoded at any one time is a window, not the report: a report many windows
    long is read with no decoded text longer than two windows."""
    body = write_ge15(tmp_path / "night", ge15_plan(300))[-1].read_bytes()
    assert len(body) > 20 * 4096
    longest = 0
    original = nist.Walker._load

    def load(self: Any, base: int) -> None:
        nonlocal longest
        original(self, base)
        longest = max(longest, len(self.text))

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(nist.Walker, "_load", load)
        assert streamed(body, 4096) == tree(body)
    assert 0 < longest <= 2 * 4096


@pytest.mark.timeout(60)
@pytest.mark.parametrize("window", WINDOWS)
def test_a_long_run_of_bytes_that_are_not_utf8_is_refused_not_looped_on(window: int) -> None:
    """A window never ends inside a character, but gives back at most three bytes for it: a
    run of continuation bytes longer than a window once made it load nothing, for ever."""
    run = b"\x80" * max(64, 3 * min(window, 1 << 21))
    body = b'{"GpUnit": "' + run + b'"}'
    with pytest.raises(Unsure):
        streamed(body, window)
    with pytest.raises(Unsure):
        located(body, ("GpUnit",), window)
    with pytest.raises(FeedError, match="not valid UTF-8"):
        parse_nist(body, default_tz=UTC)


@pytest.mark.parametrize("window", [16, 17, 23, 37])
def test_numbers_cut_by_a_windows_end_are_read_whole(window: int) -> None:
    """A window ending inside "1.|5" or "1e|5" once read the number as 1 and then gave up;
    every number is read whole wherever a window ends."""
    numbers = ["11.5625", "1e5", "1E+10", "-0.0", "3.14e-2", "-12", "123456789"]
    for pad in range(40):
        for number in numbers:
            body = ('{"' + "a" * pad + '": ' + number + ', "z": [' + number + "]}").encode()
            walk = Walker(body, window)
            got = {}
            for key in walk.members():
                got[key] = walk.value()
            walk.end()
            assert got == json.loads(body), (pad, number)


def test_the_window_shrinks_again_after_a_large_value() -> None:
    body = ('{"big": "' + "x" * 5000 + '", "rest": [' + ", ".join(["1"] * 40000) + "]}").encode()
    walk = Walker(body, 64)
    sizes = []
    for key in walk.members():
        if key == "big":
            walk.value()
        else:
            for _ in walk.elements():
                walk.value()
                sizes.append(walk.size)
    walk.end()
    assert max(sizes) >= 4096  # grown for the large value
    assert sizes[-1] <= 256  # and back near 64 bytes for the small ones after it
