"""Exactly once across crashes: the short version of bench/bench_crash.py, and the failpoints
it relies on."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from broadcaster.core import failpoints

ROOT = Path(__file__).resolve().parent.parent


def test_daemon_killed_again_and_again_posts_every_call_exactly_once():
    # The benchmark fails fast by itself (a post refused or held for good, 60 s without
    # progress, 240 s in all) and kills its daemon; it runs in its own session, and the whole
    # group is killed here if it ever outlives its time anyway.
    proc = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "bench" / "bench_crash.py"),
            *("--seats", "6", "--kills", "6", "--seed", "3"),
            *("--stall", "60", "--max-seconds", "240", "--json"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=270)  # before pytest-timeout's 300 s
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)  # the benchmark kills its daemon and says where
        stdout, stderr = proc.communicate(timeout=30)
        pytest.fail(f"the benchmark outlived its own 240 s bound: {stderr[-3000:]}")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)  # the benchmark kills its daemon, then exits
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    # Nothing of the killed daemons outlives the benchmark: their card workers leave by
    # themselves (they waited forever on their task queue, one pair per kill).
    deadline = time.monotonic() + 20
    while _in_session(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = _in_session(proc.pid)
    if left:
        os.killpg(proc.pid, signal.SIGKILL)
    assert not left, left
    assert proc.returncode != 2, f"the night got stuck: {stderr[-3000:]}"
    assert stdout, stderr[-3000:]
    result = json.loads(stdout.strip().splitlines()[-1])
    assert result["duplicates"] == 0, result
    assert result["missing"] == 0, result
    assert result["kills"] >= 6, result
    assert result["daemon_starts"] == result["kills"] + 1, result
    for platform in ("facebook", "youtube", "tiktok", "x"):
        assert result["per_platform"][platform]["posts"] >= 6, result
    assert proc.returncode == 0


def _in_session(sid: int) -> list[str]:
    """The command lines of the processes still running in session `sid` (zombies aside)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[3]) == sid and fields[0] not in ("Z", "X"):
                found.append((stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode())
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile
    return found


def test_failpoint_specification_is_checked():
    assert failpoints.parse("after_claim:0.5,in_call:1:0.2") == {
        "after_claim": (0.5, 0.3),
        "in_call": (1.0, 0.2),
    }
    with pytest.raises(ValueError, match="unknown point 'before_lunch'"):
        failpoints.parse("before_lunch:1")
    with pytest.raises(ValueError, match=r"probability 0\.\.1"):
        failpoints.parse("after_call:2")
    with pytest.raises(ValueError, match="expected name:probability"):
        failpoints.parse("after_call:often")


@pytest.mark.parametrize("point", ["after_claim", "in_call"])
def test_a_failpoint_kills_the_process_and_says_where(tmp_path: Path, point: str):
    code = (
        "import time\n"
        "from broadcaster.core import failpoints\n"
        "failpoints.hit('after_claim')\n"
        "with failpoints.around_call():\n"
        "    time.sleep(5)\n"
        "print('survived')\n"
    )
    log = tmp_path / "fp.log"
    env = {
        **os.environ,
        failpoints.ENV: f"{point}:1:0.1",
        failpoints.LOG_ENV: str(log),
    }
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == -signal.SIGKILL
    assert "survived" not in proc.stdout
    assert log.read_text() == f"{point}\n"


def test_failpoints_are_inert_without_the_variable():
    env = {k: v for k, v in os.environ.items() if not k.startswith(failpoints.ENV)}
    code = (
        "from broadcaster.core import failpoints\n"
        "assert not failpoints.active()\n"
        "failpoints.hit('after_claim')\n"
        "with failpoints.around_call():\n"
        "    pass\n"
        "print('alive')\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.stdout.strip() == "alive", proc.stderr
