"""Soak: a whole twelve-hour night, polled every 30 seconds, through one long-lived pipeline.

    python bench/bench_soak.py                     # 222 seats, 12 hours, a snapshot every 30 s
    python bench/bench_soak.py --hours 2 --step 1  # shorter

The night is broadcaster.rehearsal.fictional's (222 seats, calls spread over the night with two
bursts,
every count moving in every snapshot, so no poll is skipped as unchanged): 1,441 snapshots, fed
in order through one Pipeline and one Dispatcher, as the daemon holds them all night, with the
four dry-run accounts of the bundled configuration and their platforms' real limits, on the
feed's clock, into a real SQLite file. The snapshots are generated one at a time, in memory.

It prints the resident memory every tenth of the night, so growth shows, and at the end the
cycle times (median, 99th percentile, worst), what was posted and is still waiting, and the
database's size. What a careful operator wants to see before trusting it for a whole night:
memory that levels off, cycle times that do not creep up, a database that stays small.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from broadcaster.core.clock import FeedClock
from broadcaster.core.config import DatabaseConfig
from broadcaster.delivery.dispatcher import Dispatcher, publisher_env
from broadcaster.ingest.sources import make_fetched
from broadcaster.outbox.store import Store
from broadcaster.rehearsal.fictional import (
    Burst,
    NightPlan,
    document,
    seats,
    share_counted,
    snapshot_times,
)
from broadcaster.runtime.configuration import load_config
from broadcaster.runtime.cycle import Pipeline


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seats", type=int, default=222)
    parser.add_argument("--hours", type=float, default=12.0)
    parser.add_argument("--step", type=float, default=0.5, help="minutes between snapshots")
    parser.add_argument("--keep", type=Path, help="keep the state database in this folder")
    args = parser.parse_args()
    bursts = (Burst(args.hours * 0.25, 0.2, 10), Burst(args.hours * 0.58, 0.25, 10))
    plan = NightPlan(seats=args.seats, hours=args.hours, step_minutes=args.step, bursts=bursts)
    all_seats = seats(plan)
    times = snapshot_times(plan)
    print(
        f"{args.seats} seats over {args.hours:g} h, a snapshot every {args.step:g} min: "
        f"{len(times)} polls through one pipeline and dispatcher"
    )
    with tempfile.TemporaryDirectory() as scratch:
        tmp = str(args.keep or scratch)
        Path(tmp).mkdir(parents=True, exist_ok=True)
        config = load_config(None)
        config = config.with_overrides(
            database=DatabaseConfig(url=f"sqlite:///{tmp}/state.db"),
            planner=config.planner.model_copy(update={"night_hours": args.hours + 0.5}),
        )
        store = Store(config.database_url)
        clock = FeedClock()
        pipeline = Pipeline(config, store, clock=clock, dry_run=True)
        env = publisher_env(config, store, clock, Path(tmp) / "posts.jsonl")
        dispatcher = Dispatcher(config, store, clock=clock, env=env, dry_run=True)
        cycles: list[float] = []
        sent = 0
        checkpoints = max(1, len(times) // 10)
        print(f"{'poll':>6}{'feed time':>11}{'RSS MB':>9}{'median ms':>11}{'posts sent':>12}")
        for n, at in enumerate(times, start=1):
            states = [(s, share_counted(s, at), at >= s.called) for s in all_seats]
            body = json.dumps(document(states, at, plan.title)).encode()
            clock.advance_to(at)
            t0 = time.perf_counter()
            result = pipeline.ingest(make_fetched(body, f"{n:04d}.json"), "soak")
            sent += dispatcher.drain().sent
            cycles.append(time.perf_counter() - t0)
            assert result.outcome == "accepted", (n, result.outcome, result.error)
            if n % checkpoints == 0 or n == len(times):
                recent = statistics.median(cycles[-checkpoints:]) * 1000
                stamp = at.strftime("%H:%M")
                print(f"{n:>6}{stamp:>11}{rss_mb():>9.1f}{recent:>11.1f}{sent:>12}")
        # The tail of the night: what the budgets still allow in the next hour goes out.
        end = times[-1]
        for minute in range(1, 61):
            clock.advance_to(end + timedelta(minutes=minute))
            sent += dispatcher.drain().sent
        waiting = store.count_posts()
        store.close()
        db_mb = sum(p.stat().st_size for p in Path(tmp).glob("state.db*")) / 1e6
    ms = sorted(c * 1000 for c in cycles)
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    print(
        f"cycle (ingest + dispatch): median {statistics.median(ms):.1f} ms, "
        f"99th percentile {p99:.1f} ms, worst {ms[-1]:.1f} ms"
    )
    by_state: dict[str, int] = {}
    for (_account, _platform, state), count in waiting.items():
        by_state[state] = by_state.get(state, 0) + count
    print(f"posts sent: {sent}; outbox by state: {dict(sorted(by_state.items()))}")
    unsent = {
        f"{platform} {kind}": count
        for (platform, kind, state), count in sorted(waiting.items())
        if state not in ("sent", "superseded")
    }
    print(f"not sent an hour after the last snapshot: {unsent or 'nothing'}")
    print(f"database at the end: {db_mb:.1f} MB (with its WAL)")


if __name__ == "__main__":
    main()
