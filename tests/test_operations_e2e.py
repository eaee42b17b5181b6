"""Operators steer a running daemon through the database; /healthz and /metrics describe it."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.conftest import DEMO, broadcaster_cmd, invoke, read_jsonl, wait_for, write_config
from tests.local_servers import free_port


def cli(cfg: Path, *args: str) -> subprocess.CompletedProcess[str]:
    result = invoke(*args, "--config", str(cfg), columns=200)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:  # noqa: S310 - our own endpoint
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_pause_hold_approve_resume_while_the_daemon_runs_and_health(tmp_path: Path, processes):
    files = sorted(DEMO.glob("*.json"))
    feed = tmp_path / "results.json"
    feed.write_bytes(files[8].read_bytes())
    port = free_port()
    accounts = "".join(
        f'[[accounts]]\nname = "{p}-test"\nplatform = "{p}"\nevents = ["called", "tally"]\n'
        "quota = [{posts = 1000, seconds = 86400}]\n"
        for p in ("facebook", "x")
    )
    cfg = write_config(
        tmp_path / "c.toml",
        source="results.json",
        accounts=accounts,
        extra=f'[service]\nlisten = "127.0.0.1:{port}"\n',
    )
    log = (tmp_path / "daemon.log").open("w")
    proc = processes.start(
        [*broadcaster_cmd(), "run", "--config", str(cfg), "--dry-run"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    posts = tmp_path / "posts.jsonl"
    try:
        wait_for(
            lambda: "08-2300" in cli(cfg, "status").stdout or "23:00" in cli(cfg, "status").stdout
        )
        cli(cfg, "pause", "x-test", "--reason", "checking the X account")
        feed.write_bytes(files[9].read_bytes())  # three seats called, and a tally
        wait_for(lambda: sum(r["platform"] == "facebook" for r in read_jsonl(posts)) >= 4)
        time.sleep(1)
        assert not [r for r in read_jsonl(posts) if r["platform"] == "x"], "x is paused"
        status = cli(cfg, "status").stdout
        assert "x-test" in status
        assert "paused" in status
        assert "checking the X account" in status

        code, body = get(f"http://127.0.0.1:{port}/healthz")
        health = json.loads(body)
        assert code == 200
        assert health["status"] == "ok"
        assert health["dry_run"] is True
        x = next(a for a in health["accounts"] if a["name"] == "x-test")
        assert x["state"] == "paused"
        code, metrics = get(f"http://127.0.0.1:{port}/metrics")
        assert code == 200
        assert 'broadcaster_account_paused{account="x-test"} 1' in metrics
        assert (
            'broadcaster_posts{account="facebook-test",platform="facebook",state="sent"} 4'
            in metrics
        )
        assert "broadcaster_polls_total" in metrics
        assert "broadcaster_snapshots_total" in metrics

        held = cli(cfg, "outbox", "hold", "--all").stdout
        assert "4 posts held" in held
        cli(cfg, "resume", "x")  # by platform
        time.sleep(1.5)
        assert not [r for r in read_jsonl(posts) if r["platform"] == "x"], "held posts stay held"
        listing = cli(cfg, "outbox", "list", "--state", "held").stdout
        assert "x-test" in listing
        assert "held by an operator" in listing
        conn = sqlite3.connect(tmp_path / "state.db")
        first = conn.execute("select id from posts where state = 'held' order by id").fetchone()[0]
        conn.close()
        shown = cli(cfg, "outbox", "show", str(first)).stdout
        assert f"#{first}" in shown
        assert "held by an operator" in shown
        assert "[TEST]" in shown
        cli(cfg, "outbox", "approve", "--all")
        wait_for(lambda: sum(r["platform"] == "x" for r in read_jsonl(posts)) == 4)
    finally:
        code = processes.stop(proc)
        log.close()
    assert code == 0, (tmp_path / "daemon.log").read_text()[-2000:]
    keys = [r["idempotency_key"] for r in read_jsonl(posts)]
    assert len(keys) == len(set(keys)) == 8
