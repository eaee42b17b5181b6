"""The dispatcher's cost follows the changes, not the backlog (issue 13): SQL statements and
commits per step counted with SQLAlchemy's events, the in-memory queue's plans against the
planner's own, and the same night giving the same posts as before."""

from __future__ import annotations

import json
import random
import sqlite3
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select, update

from broadcaster.core.clock import FeedClock
from broadcaster.delivery.dispatcher import Dispatcher
from broadcaster.domain.events import PRIORITY, EventKind
from broadcaster.domain.posts import HoldKind, PostState
from broadcaster.domain.quota import Window
from broadcaster.ingest import payload
from broadcaster.ingest.payload import SPOOL_AT
from broadcaster.ingest.sources import make_fetched
from broadcaster.outbox.state import State
from broadcaster.outbox.store import Store, posts
from broadcaster.planning.budget import budget_state
from broadcaster.planning.planner import Item, plan_account
from broadcaster.planning.queue import AccountQueue
from broadcaster.publishers import PublisherEnv
from broadcaster.rehearsal.fictional import NightPlan, document, seats
from broadcaster.runtime.configuration import load_config
from broadcaster.runtime.cycle import Pipeline
from tests.conftest import write_config
from tests.ge15_night import ge15_plan, rehearse_quietly, write_ge15

FIXTURES = Path(__file__).parent / "fixtures"
X_ONLY = '\n[[accounts]]\nname = "x-test"\nplatform = "x"\ndry_run = true\n'


class Counter:
    """SQL statements and commits on one store's engine, and the work SQLite did for them
    (its virtual machine's instructions, in thousands: what grows with the rows a query
    reads, counted, not timed)."""

    def __init__(self, store: Store) -> None:
        self.statements = 0
        self.commits = 0
        self.work = 0
        event.listen(store.engine, "before_cursor_execute", self._statement)
        event.listen(store.engine, "commit", self._commit)
        event.listen(store.engine, "connect", self._connect)
        store.engine.dispose()  # connections made from now on are counted

    def _connect(self, dbapi_conn: Any, _record: object) -> None:
        if isinstance(dbapi_conn, sqlite3.Connection):  # the work is SQLite's to count
            dbapi_conn.set_progress_handler(self._progress, 1000)

    def _progress(self) -> int:
        self.work += 1
        return 0

    def _statement(self, *_args: object) -> None:
        self.statements += 1

    def _commit(self, *_args: object) -> None:
        self.commits += 1

    def take(self) -> tuple[int, int, int]:
        out = (self.statements, self.commits, self.work)
        self.statements = self.commits = self.work = 0
        return out


def _night(
    tmp_path: Path, contests: int, database: str = "sqlite:///state.db"
) -> tuple[Dispatcher, Store, Counter]:
    """`contests` seats all called in one snapshot, queued for one X account."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    config = load_config(
        write_config(tmp_path / "c.toml", source="feed.json", accounts=X_ONLY, database=database)
    )
    store = Store(config.database_url)
    at = datetime(2030, 7, 28, 20, tzinfo=UTC)
    clock = FeedClock(at)
    plan = NightPlan(seats=contests, hours=1.0, bursts=())
    body = json.dumps(document([(s, 1.0, True) for s in seats(plan)], at, plan.title)).encode()
    pipeline = Pipeline(config, store, clock=clock, dry_run=True)
    assert pipeline.ingest(make_fetched(body, "night.json"), "test").outcome == "accepted"
    env = PublisherEnv(clock=clock, posts_path=tmp_path / "posts.jsonl", timezone="Asia/Bangkok")
    dispatcher = Dispatcher(config, store, clock=clock, env=env, dry_run=True)
    return dispatcher, store, Counter(store)


def _step_costs(dispatcher: Dispatcher, counter: Counter, steps: int) -> list[tuple[int, int, int]]:
    account = dispatcher.accounts["x-test"]
    dispatcher._step(account)  # the first step builds the queue from the database
    counter.take()
    costs = []
    for _ in range(steps):
        assert dispatcher._step(account) is not None
        costs.append(counter.take())
    return costs


def test_a_step_costs_the_same_statements_whatever_the_backlog(tmp_path: Path) -> None:
    small, small_store, small_count = _night(tmp_path / "small", 300)
    large, large_store, large_count = _night(tmp_path / "large", 3000)
    try:
        assert len(large_store.posts_in_state(PostState.PENDING)) > 9 * len(
            small_store.posts_in_state(PostState.PENDING)
        )
        few = _step_costs(small, small_count, 4)
        many = _step_costs(large, large_count, 4)
        # Same statements and commits per step, and about the same work in the database:
        # nothing in a step reads the whole backlog.
        assert [s for s, _, _ in many] == [s for s, _, _ in few]
        assert [c for _, c, _ in many] == [c for _, c, _ in few]
        assert all(commits <= 4 for _, commits, _ in many)  # claim, sent, summary, waiting
        assert sum(w for _, _, w in many) <= 2 * sum(w for _, _, w in few) + 20
        assert large.queues.rebuilds == 1
    finally:
        small.close()
        large.close()
        small_store.close()
        large_store.close()


def test_steps_reuse_their_statements(tmp_path: Path) -> None:
    """Building a statement costs SQLAlchemy more than SQLite takes to run it (about 90 us
    against 25 on the 2-core machine): after its first steps, a dispatcher sending, merging
    into summaries and rendering deferred posts runs statements built once, not new ones."""
    dispatcher, store, _counter = _night(tmp_path, 300)
    seen: dict[int, object] = {}  # held, so that no id is reused by a new object
    built = 0
    warm = False

    def before(_conn: object, clause: object, *_args: object) -> None:
        nonlocal built
        if id(clause) not in seen:
            seen[id(clause)] = clause
            built += warm

    event.listen(store.engine, "before_execute", before)
    account = dispatcher.accounts["x-test"]
    try:
        for step in range(60):
            warm = step >= 5
            dispatcher._step(account)
        sent = store.posts_in_state(PostState.SENT)
        merged = [r for r in store.posts_in_state(PostState.SUPERSEDED) if r.superseded_by]
        assert len(sent) >= 50  # sends
        assert merged  # and summaries
        # A few statements are first used after the warm-up (each once); before, every
        # merge and every deferred render built its own (342 in these 55 steps).
        assert built <= 5
    finally:
        dispatcher.close()
        store.close()


def test_stale_posts_are_retired_in_one_transaction(tmp_path: Path) -> None:
    dispatcher, store, counter = _night(tmp_path, 30)
    try:
        pending = [r.id for r in store.posts_in_state(PostState.PENDING)]
        counter.take()
        retired = store.supersede_many([(i, f"reason {i % 3}") for i in pending])
        assert retired == len(pending)
        assert counter.take()[1] == 1
        reasons = {r.hold_reason for r in store.posts_in_state(PostState.SUPERSEDED)}
        assert reasons == {"reason 0", "reason 1", "reason 2"}
    finally:
        dispatcher.close()
        store.close()


def test_posts_added_or_released_behind_the_queue_are_sent(tmp_path: Path) -> None:
    """A post added after the queue was built (new id) and one released from a hold without
    an audited command (a template fix) both go out; one cancelled by hand never does."""
    dispatcher, store, _ = _night(tmp_path, 12)
    try:
        dispatcher._step(dispatcher.accounts["x-test"])
        ids = [r.id for r in store.posts_in_state(PostState.PENDING)]
        held, cancelled = ids[0], ids[1]
        with store.transaction() as conn:
            conn.execute(
                update(posts)
                .where(posts.c.id == held)
                .values(state=PostState.HELD, hold_kind=HoldKind.TEMPLATE)
            )
        dispatcher._step(dispatcher.accounts["x-test"])  # sees the held count change
        store.replace_held(held, [_released(store, held)])
        with store.transaction() as conn:
            conn.execute(
                update(posts).where(posts.c.id == cancelled).values(state=PostState.CANCELLED)
            )
        dispatcher.invalidate()  # a change by hand, neither audited nor counted
        dispatcher.drain()
        with store.engine.connect() as conn:
            states = dict(conn.execute(select(posts.c.id, posts.c.state)).all())
        assert states[held] in (PostState.SENT, PostState.SUPERSEDED)
        assert states[cancelled] == PostState.CANCELLED
        assert not store.posts_in_state(PostState.PENDING)
    finally:
        dispatcher.close()
        store.close()


def _released(store: Store, post_id: int):  # type: ignore[no-untyped-def]
    from broadcaster.domain.posts import NewPost

    row = store.post_row(post_id)
    return NewPost(row.idempotency_key, row.event_key, row.account, row.platform, "fixed", (), True)


# -- the queue plans exactly as the planner does --

NOW = datetime(2030, 7, 28, 22, tzinfo=UTC)
KINDS = [
    EventKind.CALLED,
    EventKind.PROGRESS,
    EventKind.LEADER,
    EventKind.TALLY,
    EventKind.CORRECTED,
    EventKind.SUMMARY,
    EventKind.TIE,
]


def _items(rng: random.Random, n: int, start: int, contests: int) -> list[Item]:
    out = []
    for i in range(n):
        kind = rng.choice(KINDS)
        contest = (
            None if kind in (EventKind.TALLY, EventKind.SUMMARY) else f"c{rng.randrange(contests)}"
        )
        out.append(
            Item(
                id=start + i,
                kind=kind,
                contest_id=contest,
                feed_time=NOW - timedelta(minutes=rng.randrange(300)),
                priority=PRIORITY[kind],
                final=kind is EventKind.TALLY and rng.random() < 0.05,
            )
        )
    return out


@pytest.mark.parametrize("seed", range(300))
def test_the_queue_plans_as_the_planner(seed: int) -> None:
    rng = random.Random(seed)
    pending = _items(rng, rng.randrange(0, 40), 1000, rng.randrange(1, 12))
    sent = _items(rng, rng.randrange(0, 20), 1, 12)
    gone = _items(rng, rng.randrange(0, 10), 2000, 12)
    sends = sorted(NOW - timedelta(minutes=rng.randrange(1, 1400)) for _ in sent)
    windows = [Window(posts=rng.choice((5, 17, 50, 300)), seconds=86400)]
    if rng.random() < 0.5:
        windows.append(Window(posts=rng.choice((1, 3, 10)), seconds=rng.choice((60, 900))))
    budget = budget_state(windows, sends, NOW)
    night_ends = NOW + timedelta(hours=rng.choice((-1, 0.01, 2, 8)))
    expected = plan_account(
        pending, sent, budget, windows, now=NOW, night_ends=night_ends, recent_sends=sends
    )
    queue = AccountQueue()
    for item, at in zip(sent, sends, strict=True):
        queue.add_sent(item, at)
    for item in [*pending, *gone]:
        queue.add(item, None, NOW)
    for item in gone:  # claimed or cancelled since
        queue.discard(item.id)
    for item in rng.sample(pending, len(pending) // 3):  # back after a retry
        queue.discard(item.id)
        queue.add(item, None, NOW)
    got = queue.plan(budget, windows, now=NOW, night_ends=night_ends)
    assert sorted(got.supersede) == sorted(expected.supersede)
    if expected.merge:  # read from the end and in slices, as a merge reads it
        assert got.merge[-1] == expected.merge[-1]
        assert got.merge[:3] == list(expected.merge[:3])
        assert len(got.merge) == len(expected.merge)
    assert (got.send, list(got.merge), got.wait_until, got.reason) == (
        expected.send,
        expected.merge,
        expected.wait_until,
        expected.reason,
    )


def test_a_queue_admits_posts_when_due_and_forgets_old_sends() -> None:
    queue = AccountQueue()
    item = Item(1, EventKind.CALLED, "c1", NOW, PRIORITY[EventKind.CALLED])
    queue.add(item, NOW + timedelta(minutes=5), NOW)
    assert queue.head() is None
    assert len(queue) == 1
    queue.advance(NOW + timedelta(minutes=5), NOW - timedelta(days=1))
    assert queue.head() == item
    assert queue.recent_sends() == []  # read before the send: the send still shows after
    queue.add_sent(item, NOW)
    assert queue.head() is None
    assert queue.recent_sends() == [NOW]
    queue.advance(NOW + timedelta(days=2), NOW + timedelta(days=1))
    assert queue.recent_sends() == []


# -- the same night, the same posts --


@pytest.mark.parametrize(
    ("render_ahead", "slice_", "spool_at"),
    [(500, 5000, SPOOL_AT), (0, 5000, SPOOL_AT), (500, 7, SPOOL_AT), (500, 5000, 4096)],
    ids=["rendered-at-ingest", "deferred", "read-in-slices", "read-from-temporary-files"],
)
def test_the_ge15_sized_night_sends_the_same_posts_as_before(
    tmp_path: Path,
    render_ahead: int,
    slice_: int,
    spool_at: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The posts the 40-seat version of the GE15-sized night sent before the dispatcher kept
    its queues in memory (tests/fixtures/ge15_40_sent.json), by idempotency key and text; the
    same when every snapshot is a burst whose posts are rendered only when sent, when the
    dispatcher reads new posts a few at a time (planning nothing until all are in), and when
    every snapshot is read from a temporary file as a large one is."""
    from broadcaster.delivery import queues

    monkeypatch.setattr(queues, "SLICE", slice_)
    monkeypatch.setattr(payload, "SPOOL_AT", spool_at)
    spooled = 0
    original = payload.SpooledBytes.__init__

    def counted(self: payload.SpooledBytes, *args: Any) -> None:
        nonlocal spooled
        spooled += 1
        original(self, *args)

    monkeypatch.setattr(payload.SpooledBytes, "__init__", counted)
    write_ge15(tmp_path / "night", ge15_plan(40))
    config = load_config(None)
    config = config.with_overrides(
        cards=config.cards.model_copy(update={"enabled": False}),
        templates=config.templates.model_copy(update={"render_ahead": render_ahead}),
    )
    store = rehearse_quietly(config, tmp_path / "night", tmp_path / "out")
    try:
        with store.engine.connect() as conn:
            sent = dict(
                conn.execute(
                    select(posts.c.idempotency_key, posts.c.text).where(
                        posts.c.state == PostState.SENT
                    )
                ).all()
            )
    finally:
        store.close()
    expected = json.loads((FIXTURES / "ge15_40_sent.json").read_text())
    assert sorted(sent) == sorted(expected)
    assert sent == expected
    assert spooled == (17 if spool_at < SPOOL_AT else 0)


def test_a_queue_keeps_its_order_through_many_claims_and_retries() -> None:
    rng = random.Random(5)
    queue = AccountQueue()
    items = {i: _items(rng, 1, i, 50)[0] for i in range(1, 2000)}
    for item in items.values():
        queue.add(item, None, NOW)
    for post_id in rng.sample(sorted(items), 1800):  # claimed: the order is rebuilt on the way
        queue.discard(post_id)
    for post_id in rng.sample(sorted(items), 300):  # some back after a retry
        queue.add(items[post_id], None, NOW)
    for kind in KINDS:
        due = sorted(
            (i for i in queue.due.values() if i.kind is kind), key=lambda i: (i.feed_time, i.id)
        )
        assert list(queue.in_order(kind)) == [i.id for i in due]
        assert queue.oldest_id(kind) == min((i.id for i in due), default=None)
        assert queue.newest(kind) == (due[-1].id if due else None)


def _called_on_tiktok(
    tmp_path: Path, contests: int, extra: str = ""
) -> tuple[Any, Store, Pipeline, list[Any]]:
    """`contests` seats all called in one snapshot for one TikTok account: its configuration,
    store, pipeline and the pending calls' rows."""
    accounts = '\n[[accounts]]\nname = "tt"\nplatform = "tiktok"\ndry_run = true\n'
    path = write_config(tmp_path / "c.toml", source="feed.json", accounts=accounts, extra=extra)
    config = load_config(path)
    store = Store(config.database_url)
    at = datetime(2030, 7, 28, 20, tzinfo=UTC)
    plan = NightPlan(seats=contests, hours=1.0, bursts=())
    body = json.dumps(document([(s, 1.0, True) for s in seats(plan)], at, plan.title)).encode()
    pipeline = Pipeline(config, store, clock=FeedClock(at), dry_run=True)
    assert pipeline.ingest(make_fetched(body, "night.json"), "test").outcome == "accepted"
    pending = store.posts_in_state(PostState.PENDING)
    return config, store, pipeline, [r for r in pending if r.event_kind == EventKind.CALLED]


def test_a_merge_makes_each_posts_view_once_and_the_same_summary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A merge tries 8, 16, 32... posts and then searches below the first that does not fit;
    each post's view is made once for all those tries (they were made again for every try,
    most of a 20,000-seat night's dispatch), and the summary is the one made without that."""
    from broadcaster.content import context
    from broadcaster.content.compose import compose_summary
    from broadcaster.content.context import shared_vars
    from broadcaster.content.samples import display_from
    from broadcaster.delivery.merging import StoredEvents, merge

    config, store, pipeline, called = _called_on_tiktok(tmp_path, 300)
    ids = [r.id for r in called]
    event_of = {r.id: r.event_id for r in called}
    account = config.accounts[0]
    made: list[str] = []
    original = context.contest_view

    def counted(contest: Any, *args: Any, **kwargs: Any) -> Any:
        made.append(contest.id)
        return original(contest, *args, **kwargs)

    monkeypatch.setattr(context, "contest_view", counted)
    merged = merge(
        store, StoredEvents(store), pipeline.composer, account, ids, event_of.__getitem__
    )
    assert merged is not None
    assert 16 < len(merged.included) < len(ids)  # several tries, and a search below one
    assert len(made) == len(set(made))  # each post's view once
    monkeypatch.setattr(context, "contest_view", original)

    stored = store.events_with_context_many([event_of[i] for i in merged.included])
    items = [(i, stored[event_of[i]].event, stored[event_of[i]].context) for i in merged.included]
    newest = store.events_with_context_many([event_of[ids[-1]]])[event_of[ids[-1]]]
    views = shared_vars(newest.shared, config.election.timezone, display_from(config))
    alone = compose_summary(pipeline.composer, account, items, views)
    assert alone is not None
    summary = store.post_row(merged.post_id)
    assert summary.text == alone.post.text
    store.close()


@pytest.mark.parametrize("limit", [700, 1500, 2600, 4000])
def test_a_summary_holds_the_most_posts_that_fit(
    tmp_path: Path, limit: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The search for how many posts fit a summary (interpolating on the texts' lengths, with
    halving as a fallback) finds the same number as trying every count, in fewer tries."""
    from broadcaster.content.compose import Composer, compose_summary
    from broadcaster.content.context import shared_vars
    from broadcaster.content.samples import display_from

    config, store, _pipeline, called = _called_on_tiktok(
        tmp_path, 120, extra=f"[limits]\ntiktok = {limit}\n"
    )
    stored = store.events_with_context_many([r.event_id for r in called])
    items = [(r.id, stored[r.event_id].event, stored[r.event_id].context) for r in called]
    views = shared_vars(stored[called[-1].event_id].shared, "UTC", display_from(config))
    account = config.accounts[0]
    composer = Composer(config, dry_run=True)

    def fits(n: int) -> bool:
        found = compose_summary(composer, account, items[:n], views)
        return found is not None and len(found.included) == n

    most = max((n for n in range(2, len(items) + 1) if fits(n)), default=None)
    tries: list[int] = []
    original = Composer.compose

    def counted(self: Composer, event: Any, *args: Any, **kwargs: Any) -> Any:
        tries.append(len(event.data["merged"]))
        return original(self, event, *args, **kwargs)

    monkeypatch.setattr(Composer, "compose", counted)
    found = compose_summary(composer, account, items, views)
    store.close()
    assert most is not None
    assert 2 < most < len(items)
    assert found is not None
    assert len(found.included) == most
    assert len(tries) <= 5, tries  # halving alone takes 7 or 8 here


def test_a_burst_is_read_in_slices_and_nothing_is_planned_until_all_are_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a burst, each step reads at most a slice of the new posts and plans nothing
    (the longest step no longer reads the whole burst); once all are in, it plans as before."""
    from broadcaster.delivery import queues

    config = load_config(write_config(tmp_path / "c.toml", source="feed.json", accounts=X_ONLY))
    store = Store(config.database_url)
    at = datetime(2030, 7, 28, 20, tzinfo=UTC)
    clock = FeedClock(at)
    plan = NightPlan(seats=300, hours=1.0, bursts=())
    pipeline = Pipeline(config, store, clock=clock, dry_run=True)
    env = PublisherEnv(clock=clock, posts_path=tmp_path / "posts.jsonl", timezone="Asia/Bangkok")
    dispatcher = Dispatcher(config, store, clock=clock, env=env, dry_run=True)
    account = dispatcher.accounts["x-test"]

    def ingest(fraction: float, called: bool, minutes: int) -> int:
        when = at + timedelta(minutes=minutes)
        doc = document([(s, fraction, called) for s in seats(plan)], when, plan.title)
        result = pipeline.ingest(make_fetched(json.dumps(doc).encode(), f"{minutes}.json"), "t")
        assert result.outcome == "accepted"
        return result.posts

    try:
        ingest(0.5, False, 0)
        dispatcher._step(account)  # the queue is built from the database at the first step
        monkeypatch.setattr(queues, "SLICE", 40)
        newest_before = store.outbox_marker()[0]
        assert ingest(1.0, True, 30) > 200
        burst = [r.id for r in store.queued_posts(newest_before)]  # what the queue takes
        absorbed: list[int] = []
        while True:
            stats = dispatcher._step(account)
            assert stats is not None
            if not stats.absorbed:
                break
            assert stats.sent == 0  # nothing planned from half a burst
            absorbed.append(stats.absorbed)
        assert absorbed == [40] * (len(burst) // 40)  # the last, partial slice: then planned
        queue = dispatcher.queues.queues["x-test"]
        pending = {r.id for r in store.posts_in_state(PostState.PENDING)}
        assert all(i in queue.due for i in burst if i in pending)  # every one is in
    finally:
        dispatcher.close()
        store.close()


def test_an_accounts_limits_are_read_again_in_one_statement_after_each_send(
    tmp_path: Path,
) -> None:
    """After each call to the platform the account's learned quota and platform wait are read
    again, both in one statement; a wait written by another process (`accounts doctor` calls
    the platform too) is honoured at the next step, and nothing is sent while it lasts."""
    dispatcher, store, _ = _night(tmp_path, 30)
    account = dispatcher.accounts["x-test"]
    reads: list[list[str]] = []  # the keys of each statement that read the limits

    def kv_read(_conn: object, _cursor: object, statement: str, params: Any, *_: object) -> None:
        keys = [str(p) for p in params] if statement.lstrip().upper().startswith("SELECT") else []
        if "FROM kv" in statement and any("blocked" in k or "learned" in k for k in keys):
            reads.append(sorted(keys))

    event.listen(store.engine, "before_cursor_execute", kv_read)
    try:
        assert dispatcher._step(account) is not None
        reads.clear()
        assert dispatcher._step(account) is not None  # a send: the limits read once, together
        assert reads == [["blocked:x-test", "learned_quota:x-test"]]
        other = Store(store.url)  # another process's store on the same database
        until = dispatcher.clock.now() + timedelta(hours=1)
        State(other).block("x-test", until)
        other.close()
        sent_before = len(store.posts_in_state(PostState.SENT))
        assert dispatcher._step(account) is None  # read again after the last send: it waits
        assert len(store.posts_in_state(PostState.SENT)) == sent_before
        waiting = State(store).waiting("x-test")
        assert waiting is not None
        assert waiting.until == until
    finally:
        dispatcher.close()
        store.close()


def test_merges_read_each_event_once_for_every_account(tmp_path: Path) -> None:
    """Every account merges much the same posts in turn: the events they hold are read from
    the database once, and a bounded number kept, least recently used first out."""
    from broadcaster.delivery.merging import StoredEvents

    _config, store, _pipeline, called = _called_on_tiktok(tmp_path, 40)
    event_ids = [r.event_id for r in called]
    read: list[int] = []
    original = store.events_with_context_many

    def counted(ids: Any) -> Any:
        read.extend(ids)
        return original(ids)

    store.events_with_context_many = counted  # type: ignore[method-assign]
    events = StoredEvents(store, kept=30)
    first = events.get(event_ids[:20])
    assert events.get(event_ids[:20]) == first  # a second account's merge: nothing read
    assert read == event_ids[:20]
    assert first == original(event_ids[:20])  # what the database holds
    read.clear()
    events.get(event_ids[15:40])  # 20 more: the 10 least recently used make room
    assert read == event_ids[20:40]
    read.clear()
    events.get(event_ids[:10] + event_ids[30:40])
    assert read == event_ids[:10]
    store.close()


def test_a_large_nights_heap_is_settled_after_each_snapshot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a large snapshot is applied, one full collection runs and what survives is frozen,
    so no full pass over the night's state lands in a dispatch step later; garbage in cycles
    from before is collected at the next snapshot."""
    import gc
    import weakref

    from broadcaster.runtime import cycle

    monkeypatch.setattr(cycle, "LARGE_NIGHT", 30)
    config = load_config(write_config(tmp_path / "c.toml", source="feed.json", accounts=X_ONLY))
    store = Store(config.database_url)
    at = datetime(2030, 7, 28, 20, tzinfo=UTC)
    pipeline = Pipeline(config, store, clock=FeedClock(at), dry_run=True)

    class Node:
        pass

    def ingest(count: float, name: str) -> None:
        plan = NightPlan(seats=30, hours=1.0, bursts=())
        doc = document([(s, count, False) for s in seats(plan)], at, plan.title)
        fetched = make_fetched(json.dumps(doc).encode(), name)
        assert pipeline.ingest(fetched, "test").outcome == "accepted"

    try:
        gc.unfreeze()
        cyclic = Node()
        cyclic.me = cyclic  # type: ignore[attr-defined]
        gone = weakref.ref(cyclic)
        ingest(0.2, "a.json")
        assert gc.get_freeze_count() > 0  # the night's state is frozen
        del cyclic  # garbage now, but frozen: only a collection after an unfreeze finds it
        gc.collect()
        assert gone() is not None
        ingest(0.5, "b.json")
        assert gone() is None  # collected at the next snapshot
        assert gc.get_freeze_count() > 0
        small = Pipeline(config, store, clock=FeedClock(at), dry_run=True)
        monkeypatch.setattr(cycle, "LARGE_NIGHT", 31)  # a smaller night is left alone
        gc.unfreeze()
        pipeline = small
        ingest(0.8, "c.json")
        assert gc.get_freeze_count() == 0
    finally:
        gc.unfreeze()
        store.close()


def test_queued_posts_share_their_contest_ids_and_feed_times(tmp_path: Path) -> None:
    """A large night queues tens of thousands of posts: those of one contest hold one copy of
    its id, and those of one snapshot one copy of its time, not one each."""
    dispatcher, store, _ = _night(tmp_path, 40)
    try:
        dispatcher._step(dispatcher.accounts["x-test"])  # builds the queue from the database
        queue = dispatcher.queues.queues["x-test"]
        items = [*queue.due.values(), *(item for item, _ in queue._later.values())]
        assert len(items) >= 40
        # Every account's posts of a contest, and every snapshot's, share the one interned id.
        # (A fresh copy of each id, interned, must be the very string the item holds.)
        assert all(
            i.contest_id is None or sys.intern("".join(list(i.contest_id))) is i.contest_id
            for i in items
        )
        assert len({i.feed_time for i in items}) == 1
        assert len({id(i.feed_time) for i in items}) == 1
    finally:
        dispatcher.close()
        store.close()


def test_equal_feed_times_in_other_zones_or_folds_are_not_shared() -> None:
    from types import SimpleNamespace

    from broadcaster.delivery.queues import queued_item

    utc = datetime(2030, 7, 28, 20, tzinfo=UTC)
    bangkok = utc.astimezone(timezone(timedelta(hours=7)))
    folded = utc.replace(fold=1)
    times: dict[datetime, datetime] = {}

    def item(post_id: int, when: datetime) -> Item:
        row = SimpleNamespace(
            id=post_id, event_kind="called", contest_id="c1", feed_time=when, priority=1
        )
        row.event_key = "k"
        return queued_item(row, times=times)

    first = item(1, utc)
    assert item(2, datetime(2030, 7, 28, 20, tzinfo=UTC)).feed_time is first.feed_time
    assert item(3, bangkok).feed_time is bangkok
    assert item(4, folded).feed_time is folded
    assert item(3, bangkok).feed_time.utcoffset() == timedelta(hours=7)
