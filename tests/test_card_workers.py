"""Cards drawn ahead by worker processes (issue 13): the same file as one drawn at send time,
found by the send without drawing it again, and a worker's failure never worse than drawing
the card at send time."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.exc import NoResultFound

from broadcaster.core.clock import FeedClock
from broadcaster.delivery import cards
from broadcaster.delivery.cards import CardMaker
from broadcaster.domain.posts import PostState
from broadcaster.ingest.sources import make_fetched
from broadcaster.outbox.store import Store
from broadcaster.runtime.configuration import load_config
from broadcaster.runtime.cycle import Pipeline
from tests.conftest import write_config

FACEBOOK = '\n[[accounts]]\nname = "page"\nplatform = "facebook"\ndry_run = true\n'


@pytest.fixture
def outbox(tmp_path: Path, demo_files: list[Path]):
    config = load_config(
        write_config(tmp_path / "c.toml", source="f", accounts=FACEBOOK, cards=True)
    )
    store = Store(config.database_url)
    pipeline = Pipeline(
        config, store, clock=FeedClock(datetime(2030, 7, 28, tzinfo=UTC)), dry_run=True
    )
    for path in demo_files[:12]:
        pipeline.ingest(make_fetched(path.read_bytes(), path.name), "test")
    calls = [r for r in store.posts_in_state(PostState.PENDING) if r.event_kind == "called"]
    assert calls
    yield config, store, calls
    store.close()


def test_a_card_drawn_ahead_is_the_one_the_send_uses(outbox, tmp_path, monkeypatch) -> None:
    config, store, calls = outbox
    account = config.accounts[0]
    inline = CardMaker(config, store, tmp_path / "inline", workers=0)
    expected = [inline.card_for(row, account) for row in calls[:3]]
    ahead = CardMaker(config, store, tmp_path / "ahead", workers=1)
    try:
        for row in calls[:3]:
            ahead.prefetch(row.event_id, account)
        for future in list(ahead._drawing.values()):
            future.result(timeout=120)  # drawn by the worker, before any send asks
        drawn_here: list[Path] = []
        monkeypatch.setattr(cards, "render_card", lambda *a, **k: drawn_here.append(a[-1]))
        got = [ahead.card_for(row, account) for row in calls[:3]]
    finally:
        ahead.close()
    assert drawn_here == []  # the send found its card ready
    assert [p.name for p in got] == [p.name for p in expected]
    assert [p.read_bytes() for p in got] == [p.read_bytes() for p in expected]
    assert not list((tmp_path / "ahead").glob("*.part*"))


def test_a_worker_that_fails_leaves_the_send_to_draw_it(outbox, tmp_path) -> None:
    config, store, calls = outbox
    account = config.accounts[0]
    maker = CardMaker(config, store, tmp_path / "cards", workers=1)
    try:
        maker.prefetch(10**9, account)  # no such event: the worker's draw fails
        future = maker._drawing[(10**9, account.name)]
        with pytest.raises(NoResultFound):
            future.result(timeout=120)
        row = calls[0]
        fake = type("Row", (), {"event_id": 10**9})()
        with pytest.raises(NoResultFound):  # drawn here, failing as it would have
            maker.card_for(fake, account)
        assert maker.card_for(row, account).exists()  # the pool still serves
    finally:
        maker.close()


CHILD = """
import json, os, sys, time
from pathlib import Path
from broadcaster.delivery.cards import CardMaker
from broadcaster.outbox.store import Store
from broadcaster.runtime.configuration import load_config
config = load_config(Path(sys.argv[1]))
maker = CardMaker(config, Store(config.database_url), Path(sys.argv[2]), workers=2)
pool = maker._workers()
pids = set()
while len(pids) < 2:
    pids.update(f.result(timeout=120) for f in [pool.submit(os.getpid) for _ in range(8)])
print(json.dumps(sorted(pids)), flush=True)
time.sleep(600)
"""


def _running(pid: int) -> bool:
    """Whether a process runs (a zombie, waiting for its parent to read its end, does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_workers_leave_when_the_process_that_made_them_is_killed(tmp_path: Path) -> None:
    """A daemon killed outright (SIGKILL, the OOM killer) cannot stop its pool: its workers
    leave by themselves, instead of waiting forever on a task queue nobody writes to."""
    config = write_config(tmp_path / "c.toml", source="f", accounts=FACEBOOK, cards=True)
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(config), str(tmp_path / "cards")],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        workers = json.loads(proc.stdout.readline())
        assert len(workers) == 2
        assert all(_running(pid) for pid in workers)
        proc.kill()
        proc.wait(timeout=30)
        deadline = time.monotonic() + 20
        while any(_running(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [pid for pid in workers if _running(pid)]
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # whatever of its group is left
        proc.wait(timeout=30)


@pytest.mark.parametrize(
    ("cores", "workers"), [(1, 0), (2, 2), (3, 2), (4, 2), (5, 3), (6, 4), (64, 4)]
)
def test_cards_are_drawn_ahead_by_default_from_two_cores(cores: int, workers: int) -> None:
    """Measured on the 2-core machine (bench/bench_rehearse.py, GE15-sized night with cards):
    two workers drew the night in 11.4 s against 14.0 s with none; more cores, more workers,
    at most four."""
    assert cards.default_workers(cores) == workers


def test_the_first_cards_are_drawn_here_while_the_workers_start(
    outbox, tmp_path, monkeypatch
) -> None:
    """A pool calls a card "running" as soon as it is queued for a worker, before any worker
    has started (a second or more, longer under load): until one has drawn a card, a send
    draws its own rather than wait for them. Afterwards it waits for the worker's card."""
    config, store, calls = outbox
    account = config.accounts[0]
    expected = CardMaker(config, store, tmp_path / "inline", workers=0).card_for(calls[0], account)
    drawn_here: list[Path] = []
    original = cards.render_card

    def counted(*args: Any, **kwargs: Any) -> Any:
        drawn_here.append(args[-1])
        return original(*args, **kwargs)

    monkeypatch.setattr(cards, "render_card", counted)
    maker = CardMaker(config, store, tmp_path / "cold", workers=2)
    try:
        for row in calls[:3]:
            maker.prefetch(row.event_id, account)
        first = maker.card_for(calls[0], account)  # the workers are still starting
        assert len(drawn_here) == 1
        assert first.read_bytes() == expected.read_bytes()
        for future in list(maker._drawing.values()):
            future.result(timeout=120)
        drawn_here.clear()
        assert maker.card_for(calls[1], account).exists()
        assert drawn_here == []  # now the workers' card is taken
    finally:
        maker.close()


def test_ctrl_c_to_the_group_leaves_the_workers_drawing(tmp_path: Path) -> None:
    """Ctrl-C reaches every process of the terminal's group: the daemon stops its pool itself,
    so a worker ignores it (it used to die, breaking the pool and the send waiting on it)."""
    config = load_config(
        write_config(tmp_path / "c.toml", source="f", accounts=FACEBOOK, cards=True)
    )
    store = Store(config.database_url)
    maker = CardMaker(config, store, tmp_path / "cards", workers=1)
    try:
        pool = maker._workers()
        worker = pool.submit(os.getpid).result(timeout=120)
        os.kill(worker, signal.SIGINT)
        time.sleep(0.5)  # an interrupted worker would be gone by now
        assert pool.submit(os.getpid).result(timeout=120) == worker
    finally:
        maker.close()
        store.close()


def test_workers_are_counted_from_the_cores_this_process_may_use() -> None:
    """A daemon pinned to one core (taskset, a container's cpuset) on a larger host starts
    no worker: the host's core count is not what it may use."""
    script = (
        "import os\n"
        "os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})\n"
        "from broadcaster.delivery.cards import default_workers\n"
        "print(default_workers())\n"
    )
    if not hasattr(os, "sched_setaffinity"):
        pytest.skip("no CPU affinity here")
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "0"


def test_go_live_counts_earlier_cards_but_not_a_killed_drawers_part_file(tmp_path: Path) -> None:
    """A worker that leaves mid-card (its daemon killed) leaves its `.part` file, never used:
    `go-live` says how many cards earlier runs drew, without it."""
    from broadcaster.runtime import golive

    config = load_config(
        write_config(tmp_path / "c.toml", source="f", accounts=FACEBOOK, cards=True)
    )
    folder = config.path(config.cards.dir)
    assert folder is not None
    folder.mkdir(parents=True)
    (folder / "0123abcd.png").write_bytes(b"png")
    (folder / "4567ef01.jpg").write_bytes(b"jpg")
    (folder / "89ab.4242.c0ffee00.part.jpg").write_bytes(b"half")
    (check,) = list(golive.cards(config))
    assert check.ok
    assert "; 2 cards from earlier runs" in check.detail
