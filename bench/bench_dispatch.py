"""Benchmark one dispatch step against the size of the backlog: it must cost what changed and
what is due now, not the number of pending posts.

    python bench/bench_dispatch.py                      # 100, 10,000 and 100,000 pending posts
    python bench/bench_dispatch.py --pending 100 1000

For each size, a real SQLite outbox is filled through the real pipeline (a fictional night of
1,000 seats, 30 % counted: a progress post each, for one X account in dry run with a quota
that never binds), then its pending posts are copied (new idempotency keys and contests) up
to the size wanted. A dispatcher then runs: the first
step builds its queue from the database (printed apart), then 30 steps (--steps) are measured, each
planning the account's posts and sending one post or one summary. Printed per size: the
first step's time, the median and longest step, and per step the SQL statements, commits and
the work SQLite did (its virtual machine's instructions, in thousands), which are counts, not
times. Target (issue 13): the step cost flat within 2x from 100 to 100,000 pending posts.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import event, func, select, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from broadcaster.core.clock import FeedClock  # noqa: E402
from broadcaster.delivery.dispatcher import Dispatcher  # noqa: E402
from broadcaster.ingest.sources import make_fetched  # noqa: E402
from broadcaster.outbox.store import Store, posts  # noqa: E402
from broadcaster.publishers import PublisherEnv  # noqa: E402
from broadcaster.rehearsal.fictional import NightPlan, document, seats  # noqa: E402
from broadcaster.runtime.configuration import load_config  # noqa: E402
from broadcaster.runtime.cycle import Pipeline  # noqa: E402

SEED_SEATS = 1000
COLUMNS = (
    "event_id, event_key, event_kind, account, platform, state, priority, text, media, "
    "attempts, feed_time, created_at, updated_at, dry_run, wants_card, test_data"
)


def config_file(folder: Path) -> Path:
    path = folder / "c.toml"
    path.write_text(
        '[election]\ntimezone = "Asia/Bangkok"\n[feed]\nsource = "feed.json"\n'
        '[database]\nurl = "sqlite:///state.db"\n[output]\nposts = "posts.jsonl"\n'
        "[cards]\nenabled = false\n[events]\nthresholds = [25, 50, 75, 100]\n"
        '[[accounts]]\nname = "x-bench"\nplatform = "x"\ndry_run = true\n'
        "quota = [{posts = 1000000, seconds = 86400}]\n"
    )
    return path


def fill(store: Store, config: Any, clock: FeedClock, pending: int) -> None:
    """A night of SEED_SEATS called seats, its pending posts copied up to `pending`."""
    plan = NightPlan(seats=SEED_SEATS, hours=1.0, bursts=())
    at = clock.now()
    body = json.dumps(document([(s, 0.3, False) for s in seats(plan)], at, plan.title))
    pipeline = Pipeline(config, store, clock=clock, dry_run=True)
    pipeline.ingest(make_fetched(body.encode(), "night.json"), "bench")
    with store.transaction() as conn:
        have = conn.execute(select(func.count()).select_from(posts)).scalar_one()
        if have > pending:
            keep = select(posts.c.id).order_by(posts.c.id).limit(pending).scalar_subquery()
            conn.execute(posts.delete().where(posts.c.id.not_in(keep)))
            return
        copy = 0
        while have < pending:
            copy += 1
            conn.execute(
                text(
                    f"INSERT INTO posts (idempotency_key, contest_id, {COLUMNS}) "  # noqa: S608
                    f"SELECT idempotency_key || :key, contest_id || :key, {COLUMNS} "
                    "FROM posts WHERE idempotency_key NOT LIKE '%|copy%' LIMIT :n"
                ),
                {"key": f"|copy{copy}", "n": min(have, pending - have)},
            )
            have = conn.execute(select(func.count()).select_from(posts)).scalar_one()


def measure(pending: int, steps: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bench-dispatch-") as tmp:
        folder = Path(tmp)
        config = load_config(config_file(folder))
        store = Store(config.database_url)
        clock = FeedClock(datetime(2030, 7, 28, 20, tzinfo=UTC))
        fill(store, config, clock, pending)
        counts = {"statements": 0, "commits": 0, "work": 0}

        def statement(*_args: object) -> None:
            counts["statements"] += 1

        def commit(*_args: object) -> None:
            counts["commits"] += 1

        def progress() -> int:
            counts["work"] += 1
            return 0

        def connect(dbapi_conn: Any, _record: object) -> None:
            dbapi_conn.set_progress_handler(progress, 1000)

        event.listen(store.engine, "before_cursor_execute", statement)
        event.listen(store.engine, "commit", commit)
        event.listen(store.engine, "connect", connect)
        store.engine.dispose()
        env = PublisherEnv(clock=clock, posts_path=folder / "posts.jsonl", timezone="UTC")
        dispatcher = Dispatcher(config, store, clock=clock, env=env, dry_run=True)
        account = dispatcher.accounts["x-bench"]
        t0 = time.perf_counter()
        dispatcher._step(account)
        first = time.perf_counter() - t0
        for key in counts:
            counts[key] = 0
        times = []
        for _ in range(steps):
            t0 = time.perf_counter()
            dispatcher._step(account)
            times.append(time.perf_counter() - t0)
        dispatcher.close()
        store.close()
    return {
        "first": first,
        "median": statistics.median(times),
        "longest": max(times),
        **{key: value / steps for key, value in counts.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pending", type=int, nargs="+", default=[100, 10_000, 100_000])
    parser.add_argument("--steps", type=int, default=30, help="steps measured per size")
    opts = parser.parse_args()
    logging.disable(logging.WARNING)
    base = None
    for pending in opts.pending:
        f = measure(pending, opts.steps)
        base = base or f["median"]
        print(
            f"{pending:>7,} pending: first step (builds the queue) {f['first'] * 1000:7.1f} ms; "
            f"then per step median {f['median'] * 1000:6.2f} ms ({f['median'] / base:.2f}x the "
            f"smallest), longest {f['longest'] * 1000:6.2f} ms; {f['statements']:.1f} SQL "
            f"statements, {f['commits']:.1f} commits, {f['work']:.1f}k SQLite instructions"
        )


if __name__ == "__main__":
    main()
