"""The cycle on a real SQLite file: accepted, rejected, duplicate and stale snapshots, restarts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select

from broadcaster.content.compose import TEST_MARKER
from broadcaster.core.clock import FeedClock
from broadcaster.core.config import Config
from broadcaster.domain.posts import PostState
from broadcaster.ingest.sources import make_fetched
from broadcaster.outbox.store import Store, events, posts
from broadcaster.runtime.configuration import load_config
from broadcaster.runtime.cycle import Pipeline
from tests.conftest import write_config


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return load_config(write_config(tmp_path / "c.toml", source="feed.json"))


@pytest.fixture
def store(config: Config):
    s = Store(config.database_url)
    yield s
    s.close()


def ingest(pipeline: Pipeline, path: Path, body: bytes | None = None):
    return pipeline.ingest(
        make_fetched(body if body is not None else path.read_bytes(), path.name), "test"
    )


def post_keys(store: Store) -> list[str]:
    with store.engine.connect() as conn:
        return list(conn.execute(select(posts.c.idempotency_key).order_by(posts.c.id)).scalars())


def test_demo_night_enqueues_every_event_for_every_account(config, store, demo_files):
    pipeline = Pipeline(config, store, clock=FeedClock(), dry_run=True)
    results = [ingest(pipeline, p) for p in demo_files]
    assert [r.outcome for r in results] == ["accepted"] * len(demo_files)
    total_events = sum(r.events for r in results)
    keys = post_keys(store)
    assert len(keys) == total_events * 4 == len(set(keys))
    with store.engine.connect() as conn:
        texts = list(conn.execute(select(posts.c.text)).scalars())
    assert all(t.startswith(TEST_MARKER) for t in texts), "demo posts must carry the TEST marker"


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b'{"@type": "ElectionResults.ElectionReport", ', "malformed JSON"),
        (b"", "empty body"),
        (b"<html><body>Service Unavailable</body></html>", "HTML page"),
        ("TYPES", "expected a non-negative integer"),
        ("REFS", "unknown candidate"),
    ],
)
def test_rejected_snapshot_keeps_state_and_posts_nothing(
    config, store, demo_files, body, problem, caplog
):
    pipeline = Pipeline(config, store, clock=FeedClock(), dry_run=True)
    for p in demo_files[:5]:
        ingest(pipeline, p)
    before_keys = post_keys(store)
    before_state = pipeline.state
    if isinstance(body, str):
        doc = json.loads(demo_files[5].read_bytes())
        sel = doc["Election"][0]["Contest"][0]["ContestSelection"][0]
        if body == "TYPES":
            sel["VoteCounts"][0]["Count"] = "lots"
        else:
            sel["CandidateIds"] = ["can-nobody"]
        body = json.dumps(doc).encode()
    result = ingest(pipeline, demo_files[5].with_name("broken.json"), body)
    assert result.outcome == "rejected"
    assert problem in (result.error or "")
    assert post_keys(store) == before_keys
    assert pipeline.state is before_state
    assert any("rejected snapshot broken.json from test" in r.getMessage() for r in caplog.records)
    # The next good snapshot is diffed against the last accepted one, as if nothing happened.
    assert ingest(pipeline, demo_files[5]).outcome == "accepted"


def test_same_bytes_are_a_duplicate_and_older_snapshots_are_rejected(config, store, demo_files):
    pipeline = Pipeline(config, store, clock=FeedClock(), dry_run=True)
    ingest(pipeline, demo_files[3])
    assert ingest(pipeline, demo_files[3]).outcome == "duplicate"
    stale = ingest(pipeline, demo_files[2])
    assert stale.outcome == "rejected"
    assert "older than the last accepted snapshot" in (stale.error or "")


def test_restart_resumes_from_the_database_without_repeating(config, demo_files):
    store = Store(config.database_url)
    pipeline = Pipeline(config, store, clock=FeedClock(), dry_run=True)
    for p in demo_files[:9]:
        ingest(pipeline, p)
    store.close()

    store = Store(config.database_url)
    restarted = Pipeline(config, store, clock=FeedClock(), dry_run=True)
    assert restarted.state.previous == pipeline.state.previous
    assert restarted.state.announced == pipeline.state.announced
    assert restarted.state.last_tally == pipeline.state.last_tally
    assert restarted.state.last_tally_slot == pipeline.state.last_tally_slot
    # Everything already processed is recognised; the rest continues seamlessly.
    assert [ingest(restarted, p).outcome for p in demo_files[:9]] == ["duplicate"] * 9
    for p in demo_files[9:]:
        ingest(restarted, p)
    resumed = post_keys(store)
    store.close()

    fresh_cfg = config.with_overrides(
        database=config.database.model_copy(update={"url": "sqlite://"})
    )
    fresh_store = Store("sqlite://")
    fresh = Pipeline(fresh_cfg, fresh_store, clock=FeedClock(), dry_run=True)
    for p in demo_files:
        ingest(fresh, p)
    assert sorted(resumed) == sorted(post_keys(fresh_store))


def test_a_broken_template_holds_the_post_instead_of_failing(tmp_path, demo_files):
    tdir = tmp_path / "tpl" / "en" / "x"
    tdir.mkdir(parents=True)
    (tdir / "called.j2").write_text("{{ contest.winner_name }}")
    cfg = load_config(
        write_config(tmp_path / "c.toml", source="feed.json", extra='[templates]\ndir = "tpl"\n')
    )
    store = Store(cfg.database_url)
    pipeline = Pipeline(cfg, store, clock=FeedClock(), dry_run=True)
    for p in demo_files[:10]:
        assert ingest(pipeline, p).outcome == "accepted"
    held = store.posts_in_state(PostState.HELD)
    assert held
    assert all(r.platform == "x" and r.event_kind == "called" for r in held)
    assert all("called.j2:1: unknown variable" in r.hold_reason for r in held)
    with store.engine.connect() as conn:
        assert conn.execute(select(events.c.id)).first() is not None
    store.close()


def test_a_cycle_that_fails_before_its_commit_is_tried_again_next_poll(
    config, store, demo_files, tmp_path, monkeypatch
):
    from broadcaster.ingest.sources import FileSource

    feed = tmp_path / "feed.json"
    feed.write_bytes(demo_files[0].read_bytes())
    pipeline = Pipeline(config, store, clock=FeedClock(), dry_run=True)
    source = FileSource(feed, 1 << 20)
    assert pipeline.poll(source).outcome == "accepted"
    feed.write_bytes(demo_files[1].read_bytes())

    def disk_full(*_args, **_kwargs):
        raise OSError("database or disk is full")

    with monkeypatch.context() as m:
        m.setattr(store, "insert_snapshot", disk_full)
        with pytest.raises(OSError, match="disk is full"):
            pipeline.poll(source)
    result = pipeline.poll(source)  # the same bytes, untouched file: read and tried again
    assert result.outcome == "accepted"
    assert store.snapshot_counts() == (2, 0)
    assert pipeline.poll(source).outcome == "unchanged"


def test_a_polled_reports_bytes_go_once_parsed(config, store, demo_files, monkeypatch):
    """`poll` hands the fetched bytes over rather than keeping them: by the time the snapshot
    is diffed and its posts rendered, the report's bytes (42 MB at 20,000 seats) are gone."""
    freed: list[bool] = []

    class Tracked(bytes):
        def __del__(self) -> None:
            freed.append(True)

    class OneReport:
        description = "one report"

        def fetch(self):
            return make_fetched(Tracked(demo_files[0].read_bytes()), "report.json")

        def forget(self) -> None:
            pass

    at_apply: list[bool] = []
    apply = Pipeline.apply

    def watched(self, *args, **kwargs):
        at_apply.append(bool(freed))
        return apply(self, *args, **kwargs)

    monkeypatch.setattr(Pipeline, "apply", watched)
    pipeline = Pipeline(config, store, clock=FeedClock(), dry_run=True)
    assert pipeline.poll(OneReport()).outcome == "accepted"
    assert at_apply == [True]
    assert store.snapshot_counts() == (1, 0)


def test_a_spooled_report_that_cannot_be_read_back_is_read_again_not_rejected(
    config, store, demo_files, tmp_path
):
    """A temporary file that fails to read is the local disk, not the snapshot: the cycle
    fails (named), nothing is recorded, and the same bytes are taken again next poll."""
    import os

    from broadcaster.ingest.payload import SpooledBytes, SpoolUnreadable
    from broadcaster.ingest.sources import Fetched, fingerprint

    data = demo_files[0].read_bytes()
    spooled = tmp_path / "spooled"
    spooled.write_bytes(data)
    # Read through a descriptor opened for writing only: every read is a real EBADF.
    unreadable = open(os.open(spooled, os.O_WRONLY), "rb", buffering=0)  # noqa: SIM115
    fresh = make_fetched(data, "report.json")

    class Flaky:
        description = "a feed whose spool fails once"

        def __init__(self) -> None:
            self.handed, self.forgotten = 0, 0

        def fetch(self):
            self.handed += 1
            if self.handed == 1:
                body = SpooledBytes(unreadable, len(data))
                return Fetched(body, "report.json", fingerprint(data), fresh.fetched_at)
            return fresh

        def forget(self) -> None:
            self.forgotten += 1

    source = Flaky()
    pipeline = Pipeline(config, store, clock=FeedClock(), dry_run=True)
    with pytest.raises(SpoolUnreadable, match=r"temporary file .*read again"):
        pipeline.poll(source)
    assert source.forgotten == 1
    assert store.snapshot_counts() == (0, 0)
    assert not store.fingerprint_known(fingerprint(data))
    assert pipeline.poll(source).outcome == "accepted"
