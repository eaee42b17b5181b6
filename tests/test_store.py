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


def test_processes_opening_a_new_database_at_once_all_succeed(tmp_path: Path):
    ctx = multiprocessing.get_context("spawn")
    for round_ in range(6):
        url = f"sqlite:///{tmp_path / f'r{round_}.db'}"
        procs = [ctx.Process(target=_open_and_write, args=(url,)) for _ in range(4)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(timeout=60)
        assert [p.exitcode for p in procs] == [0, 0, 0, 0]
        store = Store(url)
        assert store.get_state("paused:x")["again"] is True
        assert store.get_state("schema_version") == 1
        store.close()
