"""The live channel's cost and reaction time, on this machine.

Runs the real channel (composition, one H.264/AAC encode, a sender and its connection process
writing a local file) in real time from a real database, while the real pipeline accepts the
demo night's snapshots one after another, and prints:
- CPU seconds per second of stream at 720p30 and 1080p30 (process CPU time of the channel and
  its connection process, from getrusage; the pipeline's own CPU is measured apart and left
  out, it is the daemon's);
- the time from a snapshot accepted (committed by the pipeline) to the first frame showing it.
Targets: <= 0.6 core at 720p30; new data on screen <= 2 s after it is accepted.

    .venv/bin/python bench/bench_live.py [--seconds 20]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from broadcaster.core.clock import FeedClock  # noqa: E402
from broadcaster.core.config import DatabaseConfig, load_config  # noqa: E402
from broadcaster.core.paths import DEMO_SNAPSHOTS  # noqa: E402
from broadcaster.ingest.sources import make_fetched  # noqa: E402
from broadcaster.live.runner import make_channel  # noqa: E402
from broadcaster.outbox.store import Store  # noqa: E402
from broadcaster.runtime.cycle import Pipeline  # noqa: E402


def cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def run(width: int, height: int, fps: int, seconds: float) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bench-live-") as tmp:
        base = load_config(None)
        config = base.with_overrides(
            database=DatabaseConfig(url=f"sqlite:///{tmp}/state.db"),
            live=base.live.model_copy(
                update={
                    "width": width,
                    "height": height,
                    "fps": fps,
                    "dry_run_file": f"{tmp}/live.ts",
                }
            ),
        )
        store = Store(config.database_url)
        pipeline = Pipeline(config, store, clock=FeedClock(), dry_run=True)
        channel = make_channel(config, store, dry_run=True)
        files = sorted(DEMO_SNAPSHOTS.glob("*.json"))
        gap = seconds / (len(files) + 1)
        latencies: list[float] = []
        self0, children0 = cpu(resource.RUSAGE_SELF), cpu(resource.RUSAGE_CHILDREN)
        wall0 = time.monotonic()
        thread = threading.Thread(target=channel.run)
        thread.start()
        pipeline_cpu = 0.0
        version = 0
        try:
            time.sleep(gap)
            for path in files:
                t0 = time.thread_time()
                pipeline.ingest(make_fetched(path.read_bytes(), path.name), "bench")
                pipeline_cpu += time.thread_time() - t0
                accepted = time.monotonic()
                version += 1  # the channel's data version grows by one per accepted snapshot
                deadline = accepted + 10
                while version not in channel.first_frame_at and time.monotonic() < deadline:
                    time.sleep(0.005)
                shown = channel.first_frame_at.get(version)
                if shown is not None:
                    latencies.append(shown - accepted)
                time.sleep(max(0.0, gap - (time.monotonic() - accepted)))
        finally:
            channel.stop.set()
            thread.join(60)
            store.close()
        wall = time.monotonic() - wall0
        used = cpu(resource.RUSAGE_SELF) - self0 - pipeline_cpu
        used += cpu(resource.RUSAGE_CHILDREN) - children0  # the connection process, once ended
        return {
            "stream_seconds": wall,
            "cpu_per_second": used / wall,
            "frames": channel.frames,
            "late": channel.late_frames,
            "redraws": sum(r.compositor.redraws for r in channel.renditions.values()),
            "latency_median": statistics.median(latencies) if latencies else float("nan"),
            "latency_max": max(latencies) if latencies else float("nan"),
            "snapshots": len(latencies),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="stream time per size")
    args = parser.parse_args()
    load = os.getloadavg()
    averages = " ".join(f"{x:.2f}" for x in load)
    print(f"machine: {os.cpu_count()} cores, load average {averages}")
    for label, (w, h) in (("720p30", (1280, 720)), ("1080p30", (1920, 1080))):
        r = run(w, h, 30, args.seconds)
        print(
            f"{label}: {r['cpu_per_second']:.2f} CPU s per s of stream "
            f"({r['frames']} frames in {r['stream_seconds']:.1f} s, {r['late']} late, "
            f"{r['redraws']} redrawn); snapshot accepted -> first frame showing it: "
            f"median {r['latency_median']:.2f} s, max {r['latency_max']:.2f} s "
            f"over {r['snapshots']} snapshots"
        )
    print("targets: <= 0.6 core at 720p30; new data on screen <= 2 s after it is accepted")


if __name__ == "__main__":
    main()
