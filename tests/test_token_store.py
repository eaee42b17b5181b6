"""The token store across processes: the daemon rotating a TikTok token and an operator's
`broadcaster auth` in another process must never lose each other's update."""

from __future__ import annotations

import json
import multiprocessing
import stat
from pathlib import Path

import filelock
import pytest

from broadcaster.core.secrets import SecretError, TokenStore

WRITERS = 4
WRITES = 60


def _write_many(path: str, account: str, start: multiprocessing.synchronize.Event) -> None:
    """One process: put this account's tokens again and again, each write a new version."""
    store = TokenStore(Path(path))
    start.wait(30)
    for n in range(WRITES):
        store.put(account, {"access_token": f"{account}-access-{n}", "version": n})


def test_every_process_keeps_its_last_write(tmp_path: Path):
    path = tmp_path / "tokens.json"
    TokenStore(path).put("operator", {"access_token": "kept", "version": 0})
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Event()
    accounts = [f"account-{i}" for i in range(WRITERS)]
    procs = [ctx.Process(target=_write_many, args=(str(path), a, start)) for a in accounts]
    try:
        for p in procs:
            p.start()
        start.set()  # all at once, so their read-modify-writes overlap
        for p in procs:
            p.join(120)
        assert [p.exitcode for p in procs] == [0] * WRITERS
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
                p.join()
    data = json.loads(path.read_text(encoding="utf-8"))
    # Without the lock, a process writes back a file it read before another's last write,
    # and that account's newest tokens are gone (the stale version, or the account itself).
    assert {a: data.get(a, {}).get("version") for a in accounts} == dict.fromkeys(
        accounts, WRITES - 1
    )
    assert data["operator"] == {"access_token": "kept", "version": 0}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.with_name("tokens.json.lock").stat().st_mode) == 0o600
    assert not list(tmp_path.glob(".tokens-*")), "no temporary file is left behind"


def test_a_held_lock_times_out_naming_the_file(tmp_path: Path):
    path = tmp_path / "tokens.json"
    store = TokenStore(path, lock_timeout=0.2)
    store.put("a", {"access_token": "first"})
    other = filelock.FileLock(store.lock_path)  # another holder (its own descriptor)
    with other, pytest.raises(SecretError) as info:
        store.put("a", {"access_token": "second"})
    message = str(info.value)
    assert str(path) in message
    assert str(store.lock_path) in message
    assert "0.2 s" in message
    assert "second" not in message, "no token in the message"
    assert store.get("a") == {"access_token": "first"}, "nothing was written"
    store.put("a", {"access_token": "third"})  # the lock is free again
    assert store.get("a") == {"access_token": "third"}
