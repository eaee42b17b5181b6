"""Dispatch on a real SQLite outbox: the dry-run publisher, recovery, and the error taxonomy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from broadcaster.core.clock import FeedClock
from broadcaster.delivery.dispatcher import Dispatcher
from broadcaster.domain.posts import ALL_STATES, PostState
from broadcaster.ingest.sources import make_fetched
from broadcaster.outbox.store import Store, post_from_row
from broadcaster.publishers import (
    InDoubt,
    Post,
    PublishedRef,
    Publisher,
    PublisherEnv,
    Reauthorize,
    Rejected,
    RetryLater,
)
from broadcaster.publishers.dryrun import DryRunPublisher, read_posts, repair_torn_tail
from broadcaster.runtime.configuration import load_config
from broadcaster.runtime.cycle import Pipeline
from tests.conftest import write_config
from tests.scripts import Scripts

REQUIRED_FIELDS = {
    "platform",
    "account",
    "event_kind",
    "event_key",
    "contest_id",
    "text",
    "media",
    "idempotency_key",
    "created_at",
    "published_at",
    "dry_run",
}


@pytest.fixture
def setup(tmp_path: Path, demo_files):
    config = load_config(write_config(tmp_path / "c.toml", source="feed.json"))
    store = Store(config.database_url)
    clock = FeedClock(datetime(2030, 7, 28, 12, tzinfo=UTC))
    pipeline = Pipeline(config, store, clock=clock, dry_run=True)
    for p in demo_files[:10]:
        pipeline.ingest(make_fetched(p.read_bytes(), p.name), "test")
    env = PublisherEnv(clock=clock, posts_path=tmp_path / "posts.jsonl", timezone="Asia/Bangkok")
    yield config, store, clock, env
    store.close()


def test_dry_run_writes_one_complete_record_per_post(setup):
    config, store, clock, env = setup
    dispatcher = Dispatcher(config, store, clock=clock, env=env, dry_run=True)
    stats = dispatcher.drain()
    records = read_posts(env.posts_path)
    assert stats.sent == len(records) > 0
    assert not store.posts_in_state(PostState.PENDING)
    for r in records:
        assert set(r) >= REQUIRED_FIELDS
        assert r["dry_run"] is True
        assert datetime.fromisoformat(r["published_at"]).utcoffset() is not None
        assert datetime.fromisoformat(r["created_at"]).utcoffset() is not None
    called = [r for r in records if r["event_kind"] == "called"]
    assert called
    assert all(r["contest_id"].startswith(("cc-", "pc-")) for r in called)
    tallies = [r for r in records if r["event_kind"] == "tally"]
    assert tallies
    assert all(r["contest_id"] is None for r in tallies)
    # Most urgent first: calls are written before progress updates of the same batch.
    kinds = [r["event_kind"] for r in records]
    assert kinds.index("called") < max(i for i, k in enumerate(kinds) if k == "progress")
    assert len({r["idempotency_key"] for r in records}) == len(records)


def test_interrupted_posts_are_found_or_resent_never_duplicated(setup):
    config, store, clock, env = setup
    dispatcher = Dispatcher(config, store, clock=clock, env=env, dry_run=True)
    due = store.due_posts(clock.now(), 2)
    a, b = due
    # a: published, then the process died before marking it sent.
    assert store.claim(a.id, clock.now()) == 1
    DryRunPublisher(config.accounts[0], env).publish(post_from_row(a, 1))
    # b: claimed, then the process died before the call.
    assert store.claim(b.id, clock.now()) == 1
    stats = Dispatcher(config, store, clock=clock, env=env, dry_run=True).recover()
    assert (stats.sent, stats.retried) == (1, 1)
    dispatcher.drain()
    keys = [r["idempotency_key"] for r in read_posts(env.posts_path)]
    assert keys.count(a.idempotency_key) == 1
    assert keys.count(b.idempotency_key) == 1
    assert len(keys) == len(set(keys))


@pytest.mark.parametrize("returning", [True, False], ids=["one-statement", "sqlite-before-3.35"])
def test_claim_is_exclusive(setup, monkeypatch: pytest.MonkeyPatch, returning: bool):
    _, store, clock, _ = setup
    # The claim reads the attempt number back in the same UPDATE where the database can
    # (PostgreSQL, SQLite 3.35+), in a second statement where it cannot: the same answers.
    monkeypatch.setattr(store.engine.dialect, "update_returning", returning)
    row = store.due_posts(clock.now(), 1)[0]
    assert store.claim(row.id, clock.now()) == 1
    assert store.claim(row.id, clock.now()) is None
    store.mark_retry(row.id, "timed out", clock.now())
    assert store.claim(row.id, clock.now()) == 2


def test_torn_last_line_is_cut(tmp_path: Path):
    path = tmp_path / "posts.jsonl"
    path.write_bytes(b'{"idempotency_key": "a"}\n{"idempotency_key": "b", "te')
    repair_torn_tail(path)
    assert path.read_bytes() == b'{"idempotency_key": "a"}\n'


class Scripted(Publisher):
    """A stand-in platform that answers with a scripted outcome per call."""

    def __init__(self, outcomes: list[object], found: PublishedRef | None = None) -> None:
        self.outcomes = outcomes
        self.found = found
        self.calls: list[Post] = []

    def publish(self, post: Post) -> PublishedRef:
        self.calls.append(post)
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return PublishedRef("id-1", datetime.now(UTC), "https://example.invalid/1")

    def find(self, post: Post) -> PublishedRef | None:
        return self.found


def dispatch_one(setup, publisher: Publisher) -> tuple[Store, object]:
    config, store, clock, env = setup
    row = store.due_posts(clock.now(), 1)[0]
    scripts = Scripts({row.account: publisher})
    dispatcher = Dispatcher(
        config, store, clock=clock, env=env, dry_run=True, publishers=scripts.factory
    )
    dispatcher.run_once(limit=1)
    return store, row


def state_of(store: Store, row_id: int):
    for state in ALL_STATES:
        for r in store.posts_in_state(state):
            if r.id == row_id:
                return r
    raise AssertionError(row_id)


def test_retry_later_honours_the_platform_delay(setup):
    store, row = dispatch_one(setup, Scripted([RetryLater("429", delay=120)]))
    r = state_of(store, row.id)
    clock = setup[2]
    assert r.state == PostState.PENDING
    assert r.attempts == 1
    assert r.not_before == clock.now() + timedelta(seconds=120)
    assert not any(p.id == row.id for p in store.due_posts(clock.now(), 100))


def test_rejected_goes_to_failed_with_the_reason(setup):
    store, row = dispatch_one(setup, Scripted([Rejected("duplicate content")]))
    r = state_of(store, row.id)
    assert r.state == PostState.FAILED
    assert "duplicate content" in r.last_error


def test_reauthorise_pauses_that_account_only(setup):
    config, store, clock, env = setup
    store, row = dispatch_one(setup, Scripted([Reauthorize("token expired")]))
    r = state_of(store, row.id)
    assert r.state == PostState.PENDING
    assert "account paused" in r.last_error
    assert store.get_state(f"paused:{row.account}")["reason"].startswith("re-authorise")
    dispatcher = Dispatcher(config, store, clock=clock, env=env, dry_run=True)
    dispatcher.drain()
    left = store.posts_in_state(PostState.PENDING)
    assert left
    assert {p.account for p in left} == {row.account}, "other accounts go on"


def test_in_doubt_checks_the_platform_before_resending(setup):
    ref = PublishedRef("found-9", datetime.now(UTC))
    store, row = dispatch_one(setup, Scripted([InDoubt("read timeout")], found=ref))
    r = state_of(store, row.id)
    assert r.state == PostState.SENT
    assert r.platform_post_id == "found-9"
    store, row2 = dispatch_one(setup, Scripted([InDoubt("read timeout")], found=None))
    assert state_of(store, row2.id).state == PostState.PENDING


def test_success_stores_the_platform_id(setup):
    store, row = dispatch_one(setup, Scripted([None]))
    r = state_of(store, row.id)
    assert r.state == PostState.SENT
    assert (r.platform_post_id, r.platform_url) == ("id-1", "https://example.invalid/1")
