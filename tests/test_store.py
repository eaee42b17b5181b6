"""The database under several processes at once: the daemon starting while an operator runs a
command against the same new file, both writing the same state key."""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

from broadcaster.store import Store


def _open_and_write(url: str) -> None:
    store = Store(url)
    store.put_state("paused:x", {"by": os.getpid()})
    store.put_state("paused:x", {"by": os.getpid(), "again": True})
    store.close()


def open_at_once(url: str, processes: int = 4) -> None:
    """Several processes open the database at `url` and write the same key, all at once; each
    must succeed and the last write must stand."""
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_open_and_write, args=(url,)) for _ in range(processes)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=60)
    assert [p.exitcode for p in procs] == [0] * processes
    store = Store(url)
    try:
        assert store.get_state("paused:x")["again"] is True
        assert store.get_state("schema_version") == 1
    finally:
        store.close()


def test_processes_opening_a_new_database_at_once_all_succeed(tmp_path: Path):
    for round_ in range(6):
        open_at_once(f"sqlite:///{tmp_path / f'r{round_}.db'}")
