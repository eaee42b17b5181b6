"""Benchmark the command line's start: `broadcaster --help` and `broadcaster status`.

    python bench/bench_cli.py

Each command runs 7 times in a fresh process (the median is printed, beside `python -c pass`
as the floor), on the bundled rehearsal configuration with a small rehearsed outbox for
`status`. Then `python -X importtime` shows the ten modules that cost each command most.
`status` is timed twice: with no daemon (it reads the database itself: `status --direct`),
and while `broadcaster run --dry-run` runs on the same database and answers it on its socket.
Target (issue 13): both under 300 ms.
"""

from __future__ import annotations

import contextlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
RUNS = 7


def timed(args: list[str], cwd: Path) -> float:
    times = []
    for _ in range(RUNS):
        t0 = time.perf_counter()
        subprocess.run(args, cwd=cwd, capture_output=True, check=False)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def heaviest(args: list[str], cwd: Path, top: int = 10) -> list[tuple[float, str]]:
    """The modules whose import (with what they import) took longest, in ms."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "broadcaster", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONPROFILEIMPORTTIME": "1"},
    )
    rows = []
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, name = line.split("|")
        if not name.startswith(" "):
            continue
        if name[1:2] != " " and cumulative.strip().isdigit():  # top level only
            rows.append((int(cumulative) / 1000, name.strip()))
    return sorted(rows, reverse=True)[:top]


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-cli-") as tmp:
        folder = Path(tmp)
        demo = ROOT / "broadcaster" / "rehearsal" / "demo" / "snapshots"
        subprocess.run(
            [str(BIN / "broadcaster"), "rehearse", str(demo), "--fast", "--out", "r"],
            cwd=folder,
            capture_output=True,
            check=True,
        )
        config = folder / "c.toml"
        config.write_text(
            (ROOT / "broadcaster" / "rehearsal" / "demo" / "rehearsal.toml").read_text()
            + f'\n[database]\nurl = "sqlite:///{folder / "r" / "state.db"}"\n'
        )
        (folder / "snapshots").symlink_to(demo)  # the feed the daemon polls
        floor = timed([sys.executable, "-c", "pass"], folder)
        print(f"python -c pass: {floor * 1000:.0f} ms (the floor)")
        status = ["status", "--config", str(config)]
        report(folder, floor, "broadcaster --help", ["--help"])
        report(folder, floor, "broadcaster status, no daemon running", status)
        with running_daemon(folder, config):
            report(folder, floor, "broadcaster status, the daemon answering", status)


def report(folder: Path, floor: float, label: str, args: list[str]) -> None:
    took = timed([str(BIN / "broadcaster"), *args], folder)
    print(f"{label}: {took * 1000:.0f} ms ({took / floor:.0f}x the floor)")
    for ms, name in heaviest(args, folder):
        print(f"    {ms:7.1f} ms  {name}")


@contextlib.contextmanager
def running_daemon(folder: Path, config: Path) -> Iterator[None]:
    """`broadcaster run --dry-run` on the rehearsed database until its status socket is there;
    stopped (SIGTERM, then SIGKILL) whatever happens."""
    daemon = subprocess.Popen(
        [str(BIN / "broadcaster"), "run", "--config", str(config), "--dry-run"],
        cwd=folder,
        stdout=subprocess.DEVNULL,
        stderr=(folder / "daemon.log").open("w"),
        start_new_session=True,
    )
    try:
        sock = folder / "r" / "state.db.status.sock"
        deadline = time.monotonic() + 60
        while not sock.exists():
            if daemon.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(
                    f"the daemon did not start:\n{(folder / 'daemon.log').read_text()}"
                )
            time.sleep(0.1)
        yield
    finally:
        daemon.terminate()
        try:
            daemon.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(daemon.pid, signal.SIGKILL)
            daemon.wait()


if __name__ == "__main__":
    main()
