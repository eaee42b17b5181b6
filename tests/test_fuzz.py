"""Property-based: mutated snapshots of every format through the parsers, the gates and the
differ. Whatever the bytes, the only thing that may escape is FeedError, the documented
rejection; anything else would stop a night."""

from __future__ import annotations

import json
from datetime import UTC
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from broadcaster.core.paths import DEMO_SNAPSHOTS
from broadcaster.ingest import gates, parsers
from broadcaster.ingest.differ import DiffRules, DiffState, diff
from broadcaster.ingest.parsers import FeedError, parse
from broadcaster.ingest.parsers.mapped import load_mapping
from tests.test_parse_eml import GOOD, count_510
from tests.test_parse_mapped import example

RULES = DiffRules()
NIST = sorted(DEMO_SNAPSHOTS.glob("*.json"))[8].read_bytes()
NIST_PREVIOUS = sorted(DEMO_SNAPSHOTS.glob("*.json"))[7].read_bytes()
EML = count_510(GOOD)
CSV = example("simple-csv").encode()
MAPPED_JSON = example("json-feed").encode()

SETTINGS = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _mapping(tmp: Path) -> Any:
    path = tmp / "mapping.toml"
    path.write_text(example("json-mapping"))
    return load_mapping(path)


MAPPING = None


def survive(body: bytes, fmt: str = "auto") -> None:
    """Parse, gate and diff `body` against a real previous state; only FeedError may escape."""
    global MAPPING
    if fmt == "mapped" and MAPPING is None:
        import tempfile

        MAPPING = _mapping(Path(tempfile.mkdtemp()))
    try:
        snapshot = parse(body, fmt, default_tz=UTC, mapping=MAPPING)
    except FeedError as exc:
        event("rejected")
        if not exc.problem:
            raise AssertionError("a rejection must say why") from None
        return
    event("read")
    previous = parse(NIST_PREVIOUS)
    _, state = diff(DiffState(), previous, RULES)
    gates.check(previous, snapshot)
    events, _ = diff(state, snapshot, RULES)
    assert all(e.key for e in events)


def mutate(seed: bytes, edits: list[tuple[int, int, bytes]]) -> bytes:
    out = bytearray(seed)
    for position, delete, insert in edits:
        at = position % (len(out) + 1)
        out[at : at + delete] = insert
    return bytes(out)


EDITS = st.lists(
    st.tuples(
        st.integers(0, 1 << 20),
        st.integers(0, 40),
        st.binary(max_size=12)
        | st.sampled_from([b'"', b"{", b"]", b"-1", b"1e309", b"<", b"\xff"]),
    ),
    min_size=1,
    max_size=6,
)


@SETTINGS
@given(EDITS, st.sampled_from(["nist", "eml", "csv", "mapped"]))
def test_byte_mutations_of_every_format_are_rejected_or_read(edits, fmt):
    seed = {"nist": NIST, "eml": EML, "csv": CSV, "mapped": MAPPED_JSON}[fmt]
    survive(mutate(seed, edits), fmt if fmt == "mapped" else "auto")


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**12), 10**12)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


def paths(doc: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc[:3]):
            out += paths(v, (*prefix, i))
    return out


NIST_DOC = json.loads(NIST)
NIST_PATHS = paths(NIST_DOC)[1:]
MAPPED_DOC = json.loads(MAPPED_JSON)
MAPPED_PATHS = paths(MAPPED_DOC)[1:]


def replaced(doc: Any, path: tuple, value: Any) -> Any:
    doc = json.loads(json.dumps(doc))
    target = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return doc


@SETTINGS
@given(st.sampled_from(NIST_PATHS), JSON_VALUES)
def test_any_value_anywhere_in_a_nist_report(path, value):
    survive(json.dumps(replaced(NIST_DOC, path, value)).encode())


@SETTINGS
@given(st.sampled_from(MAPPED_PATHS), JSON_VALUES)
def test_any_value_anywhere_in_a_mapped_json_feed(path, value):
    survive(json.dumps(replaced(MAPPED_DOC, path, value)).encode(), "mapped")


@pytest.mark.parametrize("error", [IndexError("list index out of range"), LookupError("codec")])
def test_a_parser_bug_of_the_lookup_kind_is_a_feed_error_naming_it(
    error: Exception, monkeypatch: pytest.MonkeyPatch
) -> None:
    # IndexError and LookupError (an unknown codec a document declares) are not KeyErrors:
    # they escaped parse() as bugs instead of rejecting the snapshot with what went wrong.
    def broken(body: bytes, **_: Any) -> Any:
        raise error

    monkeypatch.setattr(parsers, "_load", lambda _fmt: broken)
    with pytest.raises(FeedError, match=f"unexpected content \\({type(error).__name__}: "):
        parse(NIST, "nist", default_tz=UTC)
