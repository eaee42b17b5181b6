"""What one short result video costs to draw: a call and the tally of the demo night's last
snapshot, as vertical 1080x1920 MP4s, at the frame rates an account may choose. Prints the CPU
seconds (this process, from getrusage), wall time and file size of each.

    .venv/bin/python bench/bench_shorts.py [--seconds 12] [--fps 30 10]

A post waits for its video at dispatch (delivery/videos.py); the figure says how long.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from broadcaster.core.paths import DEMO_SNAPSHOTS  # noqa: E402
from broadcaster.live.data import replay_steps  # noqa: E402
from broadcaster.live.shorts import render_short  # noqa: E402
from broadcaster.runtime.configuration import load_config  # noqa: E402


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--fps", type=int, nargs="+", default=[30, 10])
    args = parser.parse_args()
    config = load_config(None)
    final = replay_steps(config, sorted(DEMO_SNAPSHOTS.glob("*.json")))[-1].data
    contest = final.calls[0].contest_id if final.calls else None
    print(f"{'short':<8} {'fps':>4} {'cpu s':>7} {'wall s':>7} {'MB':>6}")
    with tempfile.TemporaryDirectory() as tmp:
        for fps in args.fps:
            for name, contest_id in (("call", contest), ("tally", None)):
                out = Path(tmp) / f"{name}-{fps}.mp4"
                c0, t0 = cpu(), time.perf_counter()
                render_short(
                    config, final, out, contest_id=contest_id, seconds=args.seconds, fps=fps
                )
                c1, t1 = cpu(), time.perf_counter()
                size = out.stat().st_size / 1e6
                print(f"{name:<8} {fps:>4} {c1 - c0:>7.2f} {t1 - t0:>7.2f} {size:>6.1f}")


if __name__ == "__main__":
    main()
