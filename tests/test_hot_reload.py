"""Templates edited on a live system: a broken edit never posts garbage or stops anything; the
last good version stays in use; a fixed template releases the posts that waited for it."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from sqlalchemy.exc import OperationalError

from broadcaster.core.clock import FeedClock
from broadcaster.delivery.dispatcher import Dispatcher
from broadcaster.domain.posts import PostState
from broadcaster.ingest.sources import FileSource, make_fetched
from broadcaster.outbox.store import Store
from broadcaster.publishers import PublisherEnv
from broadcaster.publishers.dryrun import read_posts
from broadcaster.runtime.configuration import load_config
from broadcaster.runtime.cycle import Pipeline
from tests.conftest import DEMO, broadcaster_cmd, invoke, read_jsonl, wait_for, write_config

X_ONLY = (
    '[[accounts]]\nname = "x-main"\nplatform = "x"\nevents = ["called"]\n'
    "quota = [{posts = 10000, seconds = 86400}]\n"
)


def write_template(folder: Path, text: str) -> Path:
    path = folder / "en" / "x" / "called.j2"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    # Make each edit visible to a modification-time check, however fast the test runs.
    stamp = time.time_ns() + 1_000_000
    os.utime(path, ns=(stamp, stamp))
    return path


def setup(tmp_path: Path):
    cfg = load_config(
        write_config(
            tmp_path / "c.toml", source="f", accounts=X_ONLY, extra='[templates]\ndir = "tpl"\n'
        )
    )
    store = Store(cfg.database_url)
    clock = FeedClock()
    pipeline = Pipeline(cfg, store, clock=clock, dry_run=True)
    env = PublisherEnv(clock=clock, posts_path=tmp_path / "posts.jsonl")
    dispatcher = Dispatcher(cfg, store, clock=clock, env=env, dry_run=True)
    return cfg, store, pipeline, dispatcher


def feed(pipeline: Pipeline, files: list[Path]) -> None:
    for p in files:
        assert pipeline.ingest(make_fetched(p.read_bytes(), p.name), "t").outcome == "accepted"


def test_broken_from_the_start_holds_posts_until_fixed(tmp_path: Path, demo_files):
    path = write_template(tmp_path / "tpl", "{{ contest.name }")  # syntax error
    _cfg, store, pipeline, dispatcher = setup(tmp_path)
    feed(pipeline, demo_files[:11])
    dispatcher.drain()
    held = store.posts_in_state(PostState.HELD)
    assert held
    assert not read_posts(tmp_path / "posts.jsonl")
    assert all(f"{path}:1: syntax error" in r.hold_reason for r in held)
    assert store.get_state("template_problems") == [f"{path}:1: syntax error: unexpected '}}'"]

    write_template(tmp_path / "tpl", "Fixed: {{ contest.name }}")
    released = pipeline.maintain_templates()
    assert released == len(held)
    dispatcher.drain()
    texts = [r["text"] for r in read_posts(tmp_path / "posts.jsonl")]
    assert len(texts) == len(held)
    assert all(t.startswith("[TEST] Fixed: ") for t in texts)
    assert store.get_state("template_problems") == []
    store.close()


def test_a_broken_edit_keeps_the_last_good_version(tmp_path: Path, demo_files):
    write_template(tmp_path / "tpl", "V1 {{ contest.name }}")
    _cfg, store, pipeline, dispatcher = setup(tmp_path)
    feed(pipeline, demo_files[:10])  # the first calls
    path = write_template(tmp_path / "tpl", "V2 {{ contest.winner_nmae }}")  # unknown variable
    assert pipeline.maintain_templates() == 0
    problems = store.get_state("template_problems")
    assert len(problems) == 1
    assert problems[0].startswith(f"{path}:1: unknown variable")
    feed(pipeline, demo_files[10:11])  # more calls arrive while the template is broken
    dispatcher.drain()
    texts = [r["text"] for r in read_posts(tmp_path / "posts.jsonl")]
    assert texts
    assert all(t.startswith("[TEST] V1 ") for t in texts)
    assert not store.posts_in_state(PostState.HELD)

    write_template(tmp_path / "tpl", "V3 {{ contest.name }}")
    pipeline.maintain_templates()
    assert store.get_state("template_problems") == []
    feed(pipeline, demo_files[11:12])
    dispatcher.drain()
    newest = [r["text"] for r in read_posts(tmp_path / "posts.jsonl")][len(texts) :]
    assert newest
    assert all(t.startswith("[TEST] V3 ") for t in newest)
    store.close()


def status(cfg: Path) -> str:
    result = invoke("status", "--config", str(cfg), columns=200)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_edit_break_and_fix_a_template_under_a_running_daemon(tmp_path: Path):
    files = sorted(DEMO.glob("*.json"))
    replay = tmp_path / "feed"
    replay.mkdir()
    for p in files[:9]:  # up to 23:00: nothing called yet
        shutil.copy(p, replay)
    write_template(tmp_path / "tpl", "V1 {{ contest.name }}")
    cfg = write_config(
        tmp_path / "c.toml", source="feed", accounts=X_ONLY, extra='[templates]\ndir = "tpl"\n'
    )
    log = (tmp_path / "daemon.log").open("w")
    proc = subprocess.Popen(
        [*broadcaster_cmd(), "run", "--config", str(cfg), "--dry-run"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=log,
        start_new_session=True,  # its own process group, killed whole if the test fails
    )
    try:
        wait_for(lambda: "23:00" in status(cfg))
        path = write_template(tmp_path / "tpl", "V2 {{ contest.name }")
        wait_for(lambda: f"{path}:1" in status(cfg))
        shutil.copy(files[9], replay)  # three seats called while the template is broken
        wait_for(lambda: len(read_jsonl(tmp_path / "posts.jsonl")) >= 3)
        posted = read_jsonl(tmp_path / "posts.jsonl")
        assert [r["text"][:10] for r in posted] == ["[TEST] V1 "] * 3
        write_template(tmp_path / "tpl", "V3 {{ contest.name }}")
        wait_for(lambda: "called.j2" not in status(cfg))
        shutil.copy(files[10], replay)
        wait_for(lambda: len(read_jsonl(tmp_path / "posts.jsonl")) > 3)
        newer = read_jsonl(tmp_path / "posts.jsonl")[3:]
        assert all(r["text"].startswith("[TEST] V3 ") for r in newer)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
            log.close()
    assert code == 0, (tmp_path / "daemon.log").read_text()
    assert "last good version stays in use" in (tmp_path / "daemon.log").read_text()


def test_a_bug_in_template_maintenance_is_logged_and_the_feed_is_still_read(
    tmp_path: Path, demo_files, monkeypatch, caplog
):
    _, store, pipeline, _ = setup(tmp_path)
    write_template(tmp_path / "tpl", "{{ contest.name }} called")
    feed_file = tmp_path / "feed.json"
    shutil.copy(demo_files[0], feed_file)
    source = FileSource(feed_file, max_bytes=10_000_000)

    def broken() -> list:
        raise KeyError("a bug in the composer")

    monkeypatch.setattr(pipeline.composer, "refresh", broken)
    result = pipeline.poll(source)
    assert result.outcome == "accepted"  # read and taken in all the same
    assert any(
        "template maintenance failed: KeyError" in r.getMessage() and r.levelname == "ERROR"
        for r in caplog.records
    )

    def outage() -> list:
        raise OperationalError("SELECT 1", {}, Exception("database is locked"))

    monkeypatch.setattr(pipeline.composer, "refresh", outage)
    shutil.copy(demo_files[1], feed_file)
    with pytest.raises(OperationalError):  # the database down: the cycle is tried again
        pipeline.poll(source)
    store.close()
