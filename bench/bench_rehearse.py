"""Benchmark a whole rehearsed night: `broadcaster rehearse --fast` of a GE15-sized night.

    python bench/bench_rehearse.py                   # 222 seats, cards on and off
    python bench/bench_rehearse.py --seats 20000     # a national local election's size
    python bench/bench_rehearse.py --cards off
    python bench/bench_rehearse.py --card-workers 0  # cards drawn by the dispatcher alone

The night is tests/ge15_night.py's: 222 single-seat contests, about 950 candidates, 17
snapshots over 8 hours, real-length Malay names. It is rehearsed through the real pipeline,
planner, dispatcher and dry-run publishers of the bundled configuration (four accounts), with
60 minutes of tail (the CLI's default), each run in a fresh process so its peak memory is its
own. Printed per run: wall time and its ratio to the floor (parsing the same snapshots with
`json.loads`, measured just before and just after the run: their mean), posts sent and
superseded, SQL statements and commits (SQLAlchemy's events), the longest dispatch step, and
the peak RSS (with cards, also the most its card workers held at once, sampled: processes of
their own).

Targets (issue 13, 2 cores): 222 seats with cards <= 8 s, without <= 3 s; 20,000 seats with
cards: peak memory <= 400 MB and the longest dispatch step <= 50 ms.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def floor(folder: Path) -> float:
    """Seconds to read and `json.loads` every snapshot (the least any rehearsal must do)."""
    t0 = time.perf_counter()
    for path in sorted(folder.glob("*.json")):
        json.loads(path.read_bytes())
    return time.perf_counter() - t0


class Descendants:
    """Samples, four times a second, the resident memory of this process's descendants (the
    card workers and the process that starts them) and keeps the largest total seen."""

    def __init__(self) -> None:
        self.peak = 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._done.wait(0.25):
            self.peak = max(self.peak, self._total())

    @staticmethod
    def _total() -> int:
        parents: dict[int, int] = {}
        rss: dict[int, int] = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                status = (entry / "status").read_text()
            except OSError:
                continue
            fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
            parents[int(entry.name)] = int(fields.get("PPid", "0"))
            rss[int(entry.name)] = int(fields.get("VmRSS", "0 kB").split()[0] or 0)
        me, total = os.getpid(), 0
        for pid in parents:
            up, seen = parents.get(pid, 0), 0
            while up and up != me and seen < 64:
                up, seen = parents.get(up, 0), seen + 1
            if up == me:
                total += rss.get(pid, 0)
        return total

    def stop(self) -> float:
        """The largest total seen, in MB."""
        self._done.set()
        self._thread.join()
        return self.peak / 1024


def child(folder: Path, out: Path, cards: bool, workers: int | None) -> dict[str, float]:
    """One rehearsal in this process; its figures."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    from broadcaster.delivery.dispatcher import Dispatcher
    from broadcaster.domain.posts import PostState
    from broadcaster.outbox.store import Store
    from broadcaster.rehearsal.replay import rehearse
    from broadcaster.runtime.configuration import load_config
    from broadcaster.runtime.cycle import Pipeline

    counts = {"statements": 0, "commits": 0}

    def statement(*_args: object) -> None:
        counts["statements"] += 1

    def commit(*_args: object) -> None:
        counts["commits"] += 1

    event.listen(Engine, "before_cursor_execute", statement)
    event.listen(Engine, "commit", commit)
    steps: list[float] = []
    original = Dispatcher._step

    def timed(self: Dispatcher, account: object) -> object:
        t0 = time.perf_counter()
        try:
            return original(self, account)  # type: ignore[arg-type]
        finally:
            steps.append(time.perf_counter() - t0)

    Dispatcher._step = timed  # type: ignore[method-assign]
    ingests: list[float] = []
    apply = Pipeline.apply

    def timed_apply(self: Pipeline, *args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return apply(self, *args, **kwargs)
        finally:
            ingests.append(time.perf_counter() - t0)

    Pipeline.apply = timed_apply  # type: ignore[method-assign]
    logging.disable(logging.WARNING)
    # Only with cards: each sample reads all of /proc, in the process being measured.
    helpers = Descendants() if cards else None
    config = load_config(None)
    config = config.with_overrides(
        cards=config.cards.model_copy(update={"enabled": cards, "workers": workers})
    )
    t0 = time.perf_counter()
    report = rehearse(config, folder, out, speed=None, tail=3600)
    wall = time.perf_counter() - t0
    store = Store(f"sqlite:///{out / 'state.db'}")
    by_state: dict[str, int] = {}
    for (_platform, _kind, state), n in store.count_posts().items():
        by_state[state] = by_state.get(state, 0) + n
    store.close()
    return {
        "wall": wall,
        "sent": report.sent,
        "posts": report.new_posts,
        "superseded": by_state.get(PostState.SUPERSEDED, 0),
        "statements": counts["statements"],
        "commits": counts["commits"],
        "steps": len(steps),
        "longest_step": max(steps, default=0.0),
        "longest_ingest": max(ingests, default=0.0),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "helpers_rss_mb": helpers.stop() if helpers is not None else 0.0,
    }


def run(folder: Path, cards: bool, workers: int | None) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bench-rehearse-") as tmp:
        proc = subprocess.run(
            [sys.executable, __file__, "--child", str(folder), str(Path(tmp) / "out")]
            + (["--cards", "on"] if cards else ["--cards", "off"])
            + ([] if workers is None else ["--card-workers", str(workers)]),
            capture_output=True,
            text=True,
            check=False,
        )
    if proc.returncode != 0:
        sys.exit(f"rehearsal failed:\n{proc.stderr[-3000:]}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def _helpers(mb: float) -> str:
    if mb <= 0:
        return " (no card workers: cards drawn by the dispatcher)"
    return f", its card workers {mb:.0f} MB together at most"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seats", type=int, default=222)
    parser.add_argument("--cards", choices=("on", "off", "both"), default="both")
    parser.add_argument("--card-workers", type=int, default=None, help="[cards] workers")
    parser.add_argument("--child", nargs=2, type=Path, help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if opts.child:
        figures = child(opts.child[0], opts.child[1], opts.cards == "on", opts.card_workers)
        print(json.dumps(figures))
        return
    from tests.ge15_night import ge15_plan, write_ge15

    with tempfile.TemporaryDirectory(prefix="bench-ge15-") as tmp:
        folder = Path(tmp) / "night"
        files = write_ge15(folder, ge15_plan(opts.seats))
        # The host's speed can change by half within minutes: the floor is measured just
        # before and just after each run, and the run is compared to their mean.
        repeats = 3 if opts.seats <= 2000 else 1
        print(f"night: {opts.seats} seats, {len(files)} snapshots")
        modes = {"on": [True], "off": [False], "both": [True, False]}[opts.cards]
        for cards in modes:
            before = min(floor(folder) for _ in range(repeats))
            f = run(folder, cards, opts.card_workers)
            after = min(floor(folder) for _ in range(repeats))
            base = (before + after) / 2
            print(
                f"cards {'on ' if cards else 'off'}: {f['wall']:.2f} s wall "
                f"({f['wall'] / base:.0f}x the floor: json.loads of every snapshot, "
                f"{before * 1000:.0f} ms before the run and {after * 1000:.0f} ms after); "
                f"{f['sent']:.0f} sent, "
                f"{f['superseded']:.0f} superseded of {f['posts']:.0f} posts; "
                f"{f['statements']:.0f} SQL statements "
                f"({f['statements'] / max(1, f['sent']):.1f} per sent post), "
                f"{f['commits']:.0f} commits; {f['steps']:.0f} dispatch steps, longest "
                f"{f['longest_step'] * 1000:.0f} ms; longest ingest of a snapshot "
                f"{f['longest_ingest']:.2f} s; peak RSS {f['peak_rss_mb']:.0f} MB"
                + (_helpers(f["helpers_rss_mb"]) if cards else "")
            )


if __name__ == "__main__":
    main()
