"""A large snapshot is collected into a private temporary file and read from there, piece by
piece; a small one stays in memory. Either way the parsers see the same bytes and the same
fingerprint."""

from __future__ import annotations

import gc
import hashlib
import logging
import os
import random
import subprocess
import sys
import tempfile
import textwrap
import tracemalloc
from datetime import UTC
from pathlib import Path

import pytest

from broadcaster.core.paths import DEMO_SNAPSHOTS
from broadcaster.ingest.parsers import FeedError, parse
from broadcaster.ingest.parsers.jsonwalk import Unsure, located
from broadcaster.ingest.parsers.nist import read_streamed
from broadcaster.ingest.payload import (
    Collector,
    SpooledBytes,
    TooLarge,
    read_path,
    whole,
)
from tests.ge15_night import ge15_plan, write_ge15

ROOT = Path(__file__).resolve().parent.parent


def collected(data: bytes, spool_at: int, chunk: int = 7) -> tuple[object, str]:
    collector = Collector(spool_at)
    for i in range(0, len(data), chunk):
        collector.add(data[i : i + chunk])
    return collector.done()


def test_a_small_body_stays_in_memory_with_its_sha256() -> None:
    data = b'{"a": "b"}' * 10
    body, digest = collected(data, spool_at=len(data))
    assert body == data
    assert isinstance(body, bytes)
    assert digest == hashlib.sha256(data).hexdigest()


def test_a_large_body_is_read_back_from_its_file_as_bytes_would_give_it() -> None:
    rng = random.Random(5)
    data = bytes(rng.randrange(256) for _ in range(5000))
    body, digest = collected(data, spool_at=100, chunk=333)
    assert isinstance(body, SpooledBytes)
    assert digest == hashlib.sha256(data).hexdigest()
    assert len(body) == len(data)
    assert bytes(body) == whole(body) == data
    for _ in range(500):
        start, stop = rng.randrange(-5100, 5100), rng.randrange(-5100, 5100)
        assert body[start:stop] == data[start:stop], (start, stop)
        assert body[start:] == data[start:]
        assert body[:stop] == data[:stop]
        index = rng.randrange(-5000, 5000)
        assert body[index] == data[index]
    with pytest.raises(IndexError):
        body[5000]
    with pytest.raises(IndexError):
        body[-5001]
    with pytest.raises(ValueError, match="no step"):
        body[::2]


def test_the_file_has_no_name_and_is_closed_with_its_payload(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing else can open (and change) the copy that was hashed, and a dropped payload
    does not keep a descriptor open through a twelve-hour night."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    fds = Path("/proc/self/fd")
    if not fds.is_dir():
        pytest.skip("needs /proc to count open files")
    gc.collect()
    before = len(list(fds.iterdir()))
    body, _ = collected(b"x" * 1000, spool_at=10)
    assert isinstance(body, SpooledBytes)
    assert list(tmp_path.iterdir()) == []
    assert len(list(fds.iterdir())) == before + 1
    del body
    gc.collect()
    assert len(list(fds.iterdir())) == before


def test_a_temporary_folder_that_cannot_be_written_keeps_the_body_in_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "missing"))
    data = bytes(range(256)) * 40
    with caplog.at_level(logging.WARNING, logger="broadcaster.ingest.payload"):
        body, digest = collected(data, spool_at=1000, chunk=100)
    assert body == data
    assert digest == hashlib.sha256(data).hexdigest()
    assert "cannot write a large snapshot to a temporary file in" in caplog.text
    assert str(tmp_path / "missing") in caplog.text


@pytest.mark.parametrize("room", [150_001, 0], ids=["part-way", "no-usable-folder"])
def test_a_file_that_fills_up_gives_back_exactly_what_it_took(tmp_path: Path, room: int) -> None:
    """A real write failure (the file size limit, as a full disk would be): half-way through
    a chunk, what reached the file is read back and the rest is kept in memory; with no room
    at all, no temporary folder is usable (Python's own search fails) and the body stays in
    memory all the same."""
    script = textwrap.dedent(
        f"""
        import hashlib, resource, signal, sys
        from broadcaster.ingest.payload import Collector
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG, not death
        data = bytes(i * 7 % 251 for i in range(300_000))
        resource.setrlimit(resource.RLIMIT_FSIZE, ({room}, {room}))
        collector = Collector(spool_at=50_000)
        for i in range(0, len(data), 40_000):
            collector.add(data[i : i + 40_000])
        body, digest = collector.done()
        assert type(body) is bytes, type(body)
        assert body == data
        assert digest == hashlib.sha256(data).hexdigest()
        print("ok")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={**os.environ, "TMPDIR": str(tmp_path)},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
    assert "holding it in memory instead" in done.stderr


def test_read_path_collects_a_file_and_refuses_one_past_its_limit(tmp_path: Path) -> None:
    path = tmp_path / "snap.json"
    data = b"0123456789" * 1000
    path.write_bytes(data)
    body, digest = read_path(path, limit=len(data), spool_at=100)
    assert isinstance(body, SpooledBytes)
    assert bytes(body) == data
    assert digest == hashlib.sha256(data).hexdigest()
    with pytest.raises(TooLarge):
        read_path(path, limit=len(data) - 1, spool_at=100)
    with pytest.raises(FileNotFoundError):
        read_path(tmp_path / "absent.json", limit=10)


@pytest.mark.parametrize("snapshot", sorted(DEMO_SNAPSHOTS.glob("*.json"))[:4], ids=str)
def test_a_spooled_snapshot_parses_as_the_same_bytes_do(snapshot: Path) -> None:
    data = snapshot.read_bytes()
    body, _ = read_path(snapshot, limit=len(data), spool_at=64)
    assert isinstance(body, SpooledBytes)
    assert parse(body, default_tz=UTC) == parse(data, default_tz=UTC)
    for window in (16, 37, 4096):
        assert read_streamed(body, default_tz=UTC, window=window) == read_streamed(
            data, default_tz=UTC, window=window
        )


def test_formats_read_whole_are_given_the_whole_body() -> None:
    data = (
        b"election,status,generated_at,contest_id,contest_name,selection_id,selection_name,votes\n"
        b"Test Night (TEST),partial,2030-05-01T20:00:00+07:00,c1,North,s1,Ana,10\n"
        b"Test Night (TEST),partial,2030-05-01T20:00:00+07:00,c1,North,s2,Bo,7\n"
    )
    body, _ = collected(data, spool_at=8)
    assert isinstance(body, SpooledBytes)
    snapshot = parse(body, "csv", default_tz=UTC)
    assert snapshot == parse(data, "csv", default_tz=UTC)
    assert [s.votes for s in snapshot.contests[0].selections] == [10, 7]


def test_a_broken_spooled_report_gets_the_trees_error() -> None:
    data = (sorted(DEMO_SNAPSHOTS.glob("*.json"))[0]).read_bytes()[:-40]
    body, _ = collected(data, spool_at=64, chunk=4096)
    with pytest.raises(FeedError) as spooled:
        parse(body, "nist", default_tz=UTC)
    with pytest.raises(FeedError) as held:
        parse(data, "nist", default_tz=UTC)
    assert str(spooled.value) == str(held.value)
    assert "line" in str(spooled.value)


def test_a_member_names_whitespace_longer_than_a_window_is_left_to_the_tree() -> None:
    data = b'{"Party"' + b" " * 100 + b': [], "GpUnit": []}'
    with pytest.raises(Unsure):
        located(data, ("GpUnit", "Party"), 16)
    assert located(data, ("GpUnit", "Party"), 4096) == {
        "GpUnit": ([], data.index(b"[]}"), data.index(b"[]}") + 2),
        "Party": ([], data.index(b"[],"), data.index(b"[],") + 2),
    }
    # The name as the document's last word is not a member.
    assert located(b'["Party"   ', ("Party",), 16) == {"Party": None}


def test_a_large_reports_bytes_are_never_held_whole_while_it_is_read(tmp_path: Path) -> None:
    """Read from its temporary file, a 1,000-seat report's parse holds a small part of the
    report's size on top of the snapshot it builds (here: the bytes and the snapshot together
    are compared with the bytes alone)."""
    folder = tmp_path / "night"
    write_ge15(folder, ge15_plan(1000))
    path = sorted(folder.glob("*.json"))[-1]
    size = path.stat().st_size
    body, _ = read_path(path, limit=size, spool_at=1 << 16)
    assert isinstance(body, SpooledBytes)
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        snapshot = parse(body, "nist", default_tz=UTC)
        spooled_peak = tracemalloc.get_traced_memory()[1] - base
        contests = len(snapshot.contests)
        del snapshot
        gc.collect()
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        held = path.read_bytes()
        again = parse(held, "nist", default_tz=UTC)
        held_peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    assert len(again.contests) == contests == 1000
    # Held in memory, the bytes are part of the peak; spooled, they never are.
    assert held_peak - spooled_peak > 0.8 * size, (held_peak, spooled_peak, size)


def test_a_rehearsal_lets_each_snapshots_temporary_file_go_once_it_is_parsed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every snapshot read from a temporary file, none still open while the posts that follow
    it are dispatched (a 20,000-seat night would otherwise keep 42 MB of disk per snapshot)."""
    from broadcaster.ingest import payload
    from broadcaster.rehearsal.replay import rehearse
    from broadcaster.runtime.configuration import load_config

    fds = Path("/proc/self/fd")
    if not fds.is_dir():
        pytest.skip("needs /proc to see open files")
    spool = tmp_path / "spool"
    spool.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(spool))
    monkeypatch.setattr(payload, "SPOOL_AT", 64)

    def spooled_open() -> int:
        gc.collect()
        found = 0
        for fd in fds.iterdir():
            try:
                found += os.readlink(fd).startswith(str(spool))
            except OSError:
                continue
        return found

    opened = []
    original = payload.SpooledBytes.__init__

    def counted(self: SpooledBytes, *args: object) -> None:
        opened.append(spooled_open())
        original(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(payload.SpooledBytes, "__init__", counted)
    at_steps: list[int] = []
    config = load_config(None)
    config = config.with_overrides(cards=config.cards.model_copy(update={"enabled": False}))
    rehearse(
        config,
        DEMO_SNAPSHOTS,
        tmp_path / "out",
        speed=None,
        tail=0,
        on_step=lambda _path, _result: at_steps.append(spooled_open()),
    )
    files = sorted(DEMO_SNAPSHOTS.glob("*.json"))
    assert len(opened) == len(at_steps) == len(files)
    assert opened == [1] * len(files)  # the one being collected, none left from before
    assert at_steps == [0] * len(files)
