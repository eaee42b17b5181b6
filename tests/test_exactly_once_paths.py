"""The exactly-once failure paths, each driven by a scripted platform through the dispatcher's
publisher factory on a real SQLite outbox: a look-up that fails, one that says "later", one that
cannot be made (held for an operator), an adapter raising something unexpected, giving up after
the maximum attempts, and a card that cannot be drawn. In every one, a post is on the platform
at most once: nothing is sent again while the platform might already have it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from broadcaster.core.clock import FeedClock
from broadcaster.delivery.cards import CardMaker
from broadcaster.delivery.dispatcher import MAX_ATTEMPTS, Dispatcher
from broadcaster.delivery.recovery import STILL_PROCESSING
from broadcaster.domain.posts import ALL_STATES, HoldKind, PostState
from broadcaster.ingest.sources import make_fetched
from broadcaster.outbox.store import Store
from broadcaster.publishers import (
    InDoubt,
    Post,
    PublishedRef,
    Publisher,
    PublisherEnv,
    RetryLater,
)
from broadcaster.publishers.base import NotFoundYet
from broadcaster.runtime.configuration import load_config
from broadcaster.runtime.cycle import Pipeline
from tests.conftest import write_config
from tests.scripts import Scripts

START = datetime(2030, 7, 28, 12, tzinfo=UTC)


class Platform(Publisher):
    """A platform that answers each publish and each look-up from a script. An entry is an
    exception to raise, or (for publish) anything else to accept the post; for find, a
    PublishedRef (it is there) or None (certainly not there). Past the script it accepts
    every post and answers look-ups truthfully. What was accepted is kept, as the platform
    would keep it, so a test can count the copies of a post."""

    def __init__(self, publishes: list[Any], finds: list[Any] | None = None) -> None:
        self.publishes = publishes
        self.finds = finds or []
        self.published: list[Post] = []
        self.accepted: list[str] = []  # idempotency keys of the posts the platform holds
        self.lookups = 0

    def publish(self, post: Post) -> PublishedRef:
        self.published.append(post)
        outcome = self.publishes.pop(0) if self.publishes else None
        if isinstance(outcome, InDoubt):
            self.accepted.append(post.idempotency_key)  # it went through; the answer was lost
            raise outcome
        if isinstance(outcome, BaseException):
            raise outcome
        self.accepted.append(post.idempotency_key)
        return PublishedRef(f"id-{len(self.accepted)}", START, None)

    def find(self, post: Post) -> PublishedRef | None:
        self.lookups += 1
        if not self.finds:
            there = post.idempotency_key in self.accepted
            return PublishedRef(f"found-{post.outbox_id}", START) if there else None
        outcome = self.finds.pop(0)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def sends_of(self, row: Any) -> list[Post]:
        return [p for p in self.published if p.outbox_id == row.id]


@pytest.fixture
def night(tmp_path: Path, demo_files):
    """A demo night's first snapshots planned for dry-run accounts; the clock stands still."""

    def make(accounts: str | None = None, cards: bool = False, dispatch: str = ""):
        config = load_config(
            write_config(
                tmp_path / "c.toml",
                source="feed.json",
                accounts=accounts,
                cards=cards,
                dispatch=dispatch,
            )
        )
        store = Store(config.database_url)
        clock = FeedClock(START)
        pipeline = Pipeline(config, store, clock=clock, dry_run=True)
        for p in demo_files[:10]:
            pipeline.ingest(make_fetched(p.read_bytes(), p.name), "test")
        env = PublisherEnv(clock=clock, posts_path=tmp_path / "posts.jsonl")
        made.append(store)
        return config, store, clock, env

    made: list[Store] = []
    yield make
    for store in made:
        store.close()


def first_post(store: Store, clock: FeedClock) -> Any:
    return store.due_posts(clock.now(), 1)[0]


def row_of(store: Store, post_id: int) -> Any:
    for state in ALL_STATES:
        for r in store.posts_in_state(state):
            if r.id == post_id:
                return r
    raise AssertionError(f"post {post_id} is gone")


def dispatcher_for(config, store, clock, env, platform: Platform, account: str, **kw: Any):
    scripts = Scripts({account: platform})
    return Dispatcher(
        config, store, clock=clock, env=env, dry_run=True, publishers=scripts.factory, **kw
    )


def only(dispatcher: Dispatcher, account: str) -> None:
    """Dispatch for one account only: the others' posts would only slow the test."""
    dispatcher.accounts = {account: dispatcher.accounts[account]}


def test_a_failing_look_up_leaves_the_post_in_doubt_until_the_platform_answers(night):
    config, store, clock, env = night()
    row = first_post(store, clock)
    ref = PublishedRef("found-7", START, "https://example.invalid/7")
    platform = Platform(
        [InDoubt("read timeout after sending")],
        [RetryLater("lookup: HTTP 503"), RetryLater("lookup: HTTP 503"), ref],
    )
    d = dispatcher_for(config, store, clock, env, platform, row.account)
    only(d, row.account)

    d.run_once(limit=1)  # published (answer lost), looked up: the look-up fails
    assert row_of(store, row.id).state == PostState.SENDING, "in doubt: neither sent nor resent"
    d.run_once(limit=1)  # looked up again at the next step: fails again
    assert row_of(store, row.id).state == PostState.SENDING
    clock.advance_to(clock.now() + timedelta(hours=1))
    d.run_once(limit=1)  # the platform answers: it is there
    settled = row_of(store, row.id)
    assert settled.state == PostState.SENT
    assert settled.platform_post_id == "found-7"
    assert len(platform.sends_of(row)) == 1, "never sent again while the look-up failed"
    assert platform.accepted.count(row.idempotency_key) == 1
    assert platform.lookups == 3


def test_a_look_up_that_says_later_waits_and_resumes_without_a_second_post(night):
    config, store, clock, env = night()
    row = first_post(store, clock)
    platform = Platform([InDoubt("upload answered late"), None], [NotFoundYet("processing")])
    d = dispatcher_for(config, store, clock, env, platform, row.account)
    only(d, row.account)

    d.run_once(limit=1)
    waiting = row_of(store, row.id)
    assert waiting.state == PostState.PENDING
    assert waiting.not_before == START + STILL_PROCESSING
    d.run_once(limit=1)
    assert len(platform.sends_of(row)) == 1, "not retried before the platform's processing time"

    clock.advance_to(clock.now() + STILL_PROCESSING + timedelta(seconds=1))
    d.run_once(limit=1)
    assert row_of(store, row.id).state == PostState.SENT
    # The second publish carries the same idempotency key and attempt count goes on: the
    # adapter resumes from its checkpoint rather than starting a new post.
    assert [p.attempt for p in platform.sends_of(row)] == [1, 2]


def test_a_post_whose_platform_cannot_be_asked_is_held_for_an_operator(night):
    config, store, clock, env = night()
    row = first_post(store, clock)
    platform = Platform(
        [InDoubt("accepted, no publish_id")],
        [NotImplementedError("tiktok cannot look a post up before its publish_id")],
    )
    d = dispatcher_for(config, store, clock, env, platform, row.account)
    only(d, row.account)

    d.run_once(limit=1)
    held = row_of(store, row.id)
    assert held.state == PostState.HELD
    assert held.hold_kind == HoldKind.IN_DOUBT
    assert f"outbox mark-sent {row.id}" in held.hold_reason
    assert f"outbox approve {row.id}" in held.hold_reason
    clock.advance_to(clock.now() + timedelta(hours=2))
    d.run_once()
    assert len(platform.sends_of(row)) == 1, "a held post is not sent again by itself"


@pytest.mark.parametrize(
    ("found", "expected", "publishes"),
    [
        (PublishedRef("found-1", START), PostState.SENT, 1),  # it had gone out: sent, once
        (None, PostState.SENT, 2),  # certainly absent: sent again after the backoff
    ],
    ids=["there", "absent"],
)
def test_an_unexpected_adapter_error_is_treated_as_in_doubt(night, found, expected, publishes):
    config, store, clock, env = night()
    row = first_post(store, clock)
    platform = Platform([KeyError("adapter bug"), None], [found])
    d = dispatcher_for(config, store, clock, env, platform, row.account)
    only(d, row.account)

    d.run_once(limit=1)  # the daemon survives the adapter's bug
    after = row_of(store, row.id)
    if found is None:
        assert after.state == PostState.PENDING
        assert "KeyError" in after.last_error
        clock.advance_to(clock.now() + timedelta(minutes=10))
        d.run_once(limit=1)
    assert row_of(store, row.id).state == expected
    assert len(platform.sends_of(row)) == publishes
    assert platform.lookups >= 1, "looked up before anything was sent again"


def test_a_post_is_given_up_after_the_maximum_attempts(night):
    # The breaker would pause the account first; here the attempt limit is what stops it.
    config, store, clock, env = night(dispatch="breaker_failures = 1000")
    row = first_post(store, clock)
    platform = Platform([KeyError("adapter bug")] * (MAX_ATTEMPTS + 3), [None] * (MAX_ATTEMPTS + 3))
    d = dispatcher_for(config, store, clock, env, platform, row.account)
    only(d, row.account)

    for _ in range(MAX_ATTEMPTS + 3):
        d.run_once(limit=1)
        if row_of(store, row.id).state != PostState.PENDING:
            break
        clock.advance_to(clock.now() + timedelta(hours=1))
    failed = row_of(store, row.id)
    assert failed.state == PostState.FAILED
    assert failed.attempts == MAX_ATTEMPTS
    assert failed.last_error.startswith(f"gave up after {MAX_ATTEMPTS} attempts")
    assert len(platform.sends_of(row)) == MAX_ATTEMPTS


def test_a_card_that_cannot_be_drawn(night, tmp_path: Path):
    """TikTok needs a picture: its post is held with the reason. X can post text alone: it goes
    out without the card. Neither stops the dispatcher."""
    accounts = "".join(
        f'\n[[accounts]]\nname = "{p}-test"\nplatform = "{p}"\ndry_run = true\n'
        for p in ("tiktok", "x")
    )
    config, store, clock, env = night(accounts=accounts, cards=True)
    blocked = tmp_path / "cards-is-a-file"
    blocked.write_text("not a folder")  # every card drawn into it fails, as a full disk would
    cards = CardMaker(config, store, blocked, workers=0)  # drawn by the dispatcher
    tiktok, x = Platform([None] * 50), Platform([None] * 50)
    scripts = Scripts({"tiktok-test": tiktok, "x-test": x})
    d = Dispatcher(
        config, store, clock=clock, env=env, dry_run=True, publishers=scripts.factory, cards=cards
    )
    wanting = [r for r in store.due_posts(clock.now(), 500) if r.wants_card]
    assert {r.account for r in wanting} == {"tiktok-test", "x-test"}, "the night wants cards"

    d.run_once(limit=3)

    held = [r for r in store.posts_in_state(PostState.HELD) if r.account == "tiktok-test"]
    assert held, "TikTok's posts wait for their card"
    assert all(r.hold_kind == HoldKind.CARD for r in held)
    assert all(r.hold_reason.startswith("card: ") for r in held)
    assert not tiktok.published, "no TikTok post without its picture"
    assert x.published, "X posts went out"
    assert all(p.media == () for p in x.published), "without the card that failed"
    assert len(held) > 1
    assert d.queues.rebuilds == 1, "its own holds never make it read its queues again"
