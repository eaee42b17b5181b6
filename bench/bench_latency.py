"""Benchmark the daemon's feed-to-post latency: from a changed snapshot on disk to the first
post it causes reaching the (dry-run) publisher.

    python bench/bench_latency.py                 # 20 changes, polled every second
    python bench/bench_latency.py --changes 40 --poll 0.5

The real `broadcaster run --dry-run` runs in its own process (its own process group, killed at
the end) on a results file that this script rewrites 20 times, each time with the next
snapshot of a fictional 60-seat night (every one of which has new events). After each change
it watches posts.jsonl for the first new line, then waits for the daemon to go quiet before
the next change. The dispatcher's own tick is set to 30 s, so what is measured is the path a
new snapshot takes: poll, ingest, dispatch at once. Printed: each latency, the median, p99
and worst. Target (issue 13): p99 <= poll interval + 250 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from broadcaster.rehearsal.fictional import (  # noqa: E402
    NightPlan,
    document,
    seats,
    share_counted,
    snapshot_times,
)

QUIET = 1.5  # seconds without a new post before the next change


def snapshots(count: int) -> list[bytes]:
    plan = NightPlan(seats=60, hours=3.0, step_minutes=5.0, bursts=())
    all_seats = seats(plan)
    out = []
    for at in snapshot_times(plan)[6 : 6 + count + 1]:  # from when seats report
        states = [(s, share_counted(s, at), at >= s.called) for s in all_seats]
        out.append(json.dumps(document(states, at, plan.title)).encode())
    return out


def write_atomically(path: Path, body: bytes) -> float:
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(body)
    tmp.replace(path)
    return time.monotonic()


def lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def wait_quiet(posts: Path, timeout: float = 60.0) -> int:
    """Wait until no new post has come for QUIET seconds; the number of posts then."""
    deadline = time.monotonic() + timeout
    seen, since = lines(posts), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.05)
        now = lines(posts)
        if now != seen:
            seen, since = now, time.monotonic()
        elif time.monotonic() - since >= QUIET:
            break
    return seen


def config_text(poll: float) -> str:
    return f"""
[election]
timezone = "Asia/Bangkok"
[feed]
source = "feed.json"
poll_interval = {poll}
[dispatch]
interval = 30
[database]
url = "sqlite:///state.db"
[output]
posts = "posts.jsonl"
[cards]
enabled = false
[service]
listen = ""
[[accounts]]
name = "facebook-bench"
platform = "facebook"
dry_run = true
quota = [{{posts = 1000000, seconds = 86400}}]
"""


def run(changes: int, poll: float) -> list[float]:
    bodies = snapshots(changes)
    with tempfile.TemporaryDirectory(prefix="bench-latency-") as tmp:
        folder = Path(tmp)
        (folder / "c.toml").write_text(config_text(poll))
        feed, posts = folder / "feed.json", folder / "posts.jsonl"
        write_atomically(feed, bodies[0])
        exe = Path(sys.executable).parent / "broadcaster"
        proc = subprocess.Popen(
            [str(exe), "--log-level", "WARNING", "run", "--dry-run", "--config", "c.toml"],
            cwd=folder,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 60
            while lines(posts) == 0 and time.monotonic() < deadline:
                time.sleep(0.05)
            seen = wait_quiet(posts)
            latencies = []
            for body in bodies[1:]:
                written = write_atomically(feed, body)
                deadline = written + 30
                while lines(posts) == seen and time.monotonic() < deadline:
                    time.sleep(0.002)
                if lines(posts) == seen:
                    print("  a change brought no post within 30 s")
                    continue
                latencies.append(time.monotonic() - written)
                print(
                    f"  change {len(latencies):2d}: first post after {latencies[-1] * 1000:.0f} ms"
                )
                seen = wait_quiet(posts)
            return latencies
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--changes", type=int, default=20)
    parser.add_argument("--poll", type=float, default=1.0)
    opts = parser.parse_args()
    got = sorted(run(opts.changes, opts.poll))
    if not got:
        sys.exit("no latency measured")
    p99 = got[min(len(got) - 1, round(0.99 * (len(got) - 1)))]
    print(
        f"{len(got)} changes, poll every {opts.poll:g} s: "
        f"median {statistics.median(got) * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, "
        f"worst {got[-1] * 1000:.0f} ms "
        f"(target p99 <= {(opts.poll + 0.25) * 1000:.0f} ms)"
    )


if __name__ == "__main__":
    main()
