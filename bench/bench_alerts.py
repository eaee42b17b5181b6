"""What the alert check costs the daemon each poll cycle: `Alerter.run_once()` over the demo
night's database (4 posts held by a gate), then over the same database with 300 more posts held
and 2 accounts paused, with nothing new to send (the steady state of a bad night). Prints the
median and 95th percentile per cycle, and the database reads it makes.

    .venv/bin/python bench/bench_alerts.py
"""

from __future__ import annotations

import logging
import shutil
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from sqlalchemy import event

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from broadcaster.alerts.alerter import Alerter  # noqa: E402
from broadcaster.core.clock import FeedClock  # noqa: E402
from broadcaster.core.config import CardsConfig  # noqa: E402
from broadcaster.outbox.state import PauseRecord, State  # noqa: E402
from broadcaster.outbox.store import HoldKind, Store  # noqa: E402
from broadcaster.rehearsal.replay import rehearse  # noqa: E402
from broadcaster.runtime.configuration import load_config  # noqa: E402

CYCLES = 300


def measure(alerter: Alerter, store: Store) -> tuple[float, float, int]:
    reads = 0

    def count(*_: object) -> None:
        nonlocal reads
        reads += 1

    alerter.run_once()  # the first run records what holds; the rest find nothing new
    event.listen(store.engine, "before_cursor_execute", count)
    times = []
    for _ in range(CYCLES):
        start = time.perf_counter()
        alerter.run_once()
        times.append(time.perf_counter() - start)
    event.remove(store.engine, "before_cursor_execute", count)
    times.sort()
    return statistics.median(times) * 1000, times[int(len(times) * 0.95)] * 1000, reads // CYCLES


def main() -> None:
    logging.disable(logging.CRITICAL)  # the alerts and the demo's gate finding would log
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        config = load_config(None).with_overrides(cards=CardsConfig(enabled=False))
        rehearse(config, ROOT / "broadcaster" / "rehearsal" / "demo" / "snapshots", folder)
        db = folder / "state.db"
        shutil.copy(db, folder / "bench.db")
        config = config.with_overrides(database=config.database.model_copy(
            update={"url": f"sqlite:///{folder / 'bench.db'}"}
        ))  # fmt: skip
        store = Store(config.database_url)
        state = State(store)
        started = state.night_started()
        assert started is not None
        clock = FeedClock(started + timedelta(hours=1))
        alerter = Alerter(config, store, clock=clock, dry_run=True, destinations=[])
        median, p95, reads = measure(alerter, store)
        print(f"demo night (4 held):           {median:6.2f} ms median, {p95:6.2f} ms p95, "
              f"{reads} queries per cycle")  # fmt: skip
        for row in store.posts_in_state("sent")[:300]:
            store.mark_held(row.id, HoldKind.GATE, "bench: check votes_decreased")
        for name in ("x-demo", "tiktok-demo"):
            state.set_pause(name, PauseRecord("circuit breaker: `broadcaster resume`", by=None))
        median, p95, reads = measure(alerter, store)
        print(f"304 held, 2 accounts paused:   {median:6.2f} ms median, {p95:6.2f} ms p95, "
              f"{reads} queries per cycle")  # fmt: skip
        store.close()


if __name__ == "__main__":
    main()
