"""Delivery on a real SQLite outbox: budgets and summaries, the circuit breaker, platform-told
waits, approval, test data kept off real accounts, corrections linked and edited."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from broadcaster.core.clock import FeedClock
from broadcaster.core.config import ConfigError
from broadcaster.delivery.dispatcher import Dispatcher, publisher_env
from broadcaster.domain.posts import PostState
from broadcaster.ingest.sources import make_fetched
from broadcaster.outbox import operations as operate
from broadcaster.outbox.state import State
from broadcaster.outbox.store import Store
from broadcaster.publishers import Post, PublishedRef, Publisher, RetryLater
from broadcaster.publishers.dryrun import read_posts
from broadcaster.runtime.configuration import load_config
from broadcaster.runtime.cycle import Pipeline
from broadcaster.runtime.daemon import refuse_test_data
from tests.conftest import read_jsonl, write_config
from tests.scripts import Scripts


class Night:
    """The demo night through a real pipeline and dispatcher, on the feed's clock."""

    def __init__(
        self,
        tmp_path: Path,
        accounts: str,
        extra: str = "",
        dispatch: str = "",
        gates: str = 'votes_decreased = "warn"',
    ) -> None:
        self.config = load_config(
            write_config(
                tmp_path / "c.toml",
                source="f",
                accounts=accounts,
                extra=extra,
                dispatch=dispatch,
                gates=gates,
            )
        )
        self.store = Store(self.config.database_url)
        self.clock = FeedClock()
        self.pipeline = Pipeline(self.config, self.store, clock=self.clock, dry_run=True)
        env = publisher_env(self.config, self.store, self.clock, tmp_path / "posts.jsonl")
        self.scripts = Scripts()  # publishers scripted per account, instead of the real ones
        self.dispatcher = Dispatcher(
            self.config,
            self.store,
            clock=self.clock,
            env=env,
            dry_run=True,
            publishers=self.scripts.factory,
        )
        self.posts_path = tmp_path / "posts.jsonl"

    def feed(self, files: list[Path], every: timedelta = timedelta(minutes=5)) -> None:
        """Each snapshot, then dispatch every `every` of feed time until the next one."""
        for path in files:
            read = self.pipeline.read(make_fetched(path.read_bytes(), path.name), "t")
            if isinstance(read, tuple):
                snapshot, _ = read
                self.until(snapshot.generated_at, every)
                self.pipeline.apply(make_fetched(path.read_bytes(), path.name), "t", snapshot)
            self.dispatcher.drain()

    def until(self, moment: datetime, every: timedelta) -> None:
        now = self.clock.now()
        if now.year < 2000:
            self.clock.advance_to(moment)
            return
        while now + every < moment:
            now += every
            self.clock.advance_to(now)
            self.dispatcher.drain()
        self.clock.advance_to(moment)

    def rows(self, state: str) -> list:
        return self.store.posts_in_state(state)


def account(name: str, platform: str, **extra: str) -> str:
    lines = [f'[[accounts]]\nname = "{name}"\nplatform = "{platform}"\ndry_run = true']
    lines += [f"{k} = {v}" for k, v in extra.items()]
    return "\n".join(lines) + "\n"


def test_tight_budget_merges_and_no_called_seat_is_lost(tmp_path, demo_files):
    night = Night(
        tmp_path,
        account(
            "tt", "tiktok", events='["called", "majority"]', quota="[{posts = 6, seconds = 86400}]"
        ),
    )
    night.feed(demo_files)
    for _ in range(30):  # the rest of the night: budget refills only after 24 h, so nothing more
        night.clock.advance_to(night.clock.now() + timedelta(hours=1))
        night.dispatcher.drain()
    records = read_posts(night.posts_path)
    assert 0 < len(records) <= 6, "the quota was respected"
    kinds = [r["event_kind"] for r in records]
    assert "summary" in kinds
    assert "majority" in kinds
    # Every called seat appears, matched by id: in its own post, in a summary that replaced it,
    # or still waiting (its own post, or the summary it was merged into).
    from broadcaster.ingest.parsers import parse

    final = parse(demo_files[-1].read_bytes())
    sent = night.rows(PostState.SENT)
    pending = night.rows(PostState.PENDING)
    superseded = night.rows(PostState.SUPERSEDED)
    sent_ids, pending_ids = {r.id for r in sent}, {r.id for r in pending}
    announced = {r.contest_id for r in sent if r.event_kind == "called"}
    announced |= {r.contest_id for r in superseded if r.superseded_by in sent_ids}
    waiting = {r.contest_id for r in pending}
    waiting |= {r.contest_id for r in superseded if r.superseded_by in pending_ids}
    missing = [c.id for c in final.contests if c.called and c.id not in announced | waiting]
    assert not missing
    assert superseded
    assert all(r.superseded_by for r in superseded if r.hold_reason == "merged into a summary")


def test_calls_waiting_at_the_final_tally_are_announced_before_it(tmp_path):
    from broadcaster.rehearsal.fictional import Burst, NightPlan, write_night

    # Five posts a day over an 8-hour night paces one post every two hours, so the calls of a
    # two-hour night are still waiting when the final tally comes.
    plan = NightPlan(seats=12, hours=2, step_minutes=10, bursts=(Burst(1.5, 0.5, 10),))
    seats = write_night(plan, tmp_path / "night")
    night = Night(
        tmp_path,
        account(
            "tt", "tiktok", events='["called", "tally"]', quota="[{posts = 5, seconds = 86400}]"
        ),
    )
    night.feed(sorted((tmp_path / "night").glob("*.json")), every=timedelta(minutes=10))
    rows = night.store.posts_in_state(PostState.SENT)
    sent_ids = {r.id for r in rows}
    announced = {r.contest_id for r in rows if r.event_kind == "called"}
    merged = night.rows(PostState.SUPERSEDED)
    announced |= {r.contest_id for r in merged if r.superseded_by in sent_ids}
    assert announced == {s.id for s in seats}
    assert len(rows) <= 5
    last_two = sorted(rows, key=lambda r: (r.updated_at, r.id))[-2:]
    assert [r.event_kind for r in last_two] == ["summary", "tally"]


def test_ample_budget_posts_each_event(tmp_path, demo_files):
    night = Night(tmp_path, account("fb", "facebook", events='["called"]'))
    night.feed(demo_files)
    records = read_posts(night.posts_path)
    assert sorted(r["contest_id"] for r in records) == sorted(
        [f"cc-D{n:02d}" for n in range(1, 13)] + ["pc-P1", "pc-P2", "pc-P3"]
    )


class Failing(Publisher):
    def __init__(self, delay: float | None = None) -> None:
        self.delay = delay
        self.calls = 0

    def publish(self, post: Post) -> PublishedRef:
        self.calls += 1
        raise RetryLater("HTTP 503 (scripted)", delay=self.delay)


def test_circuit_breaker_pauses_and_resumes_after_the_cool_down(tmp_path, demo_files):
    night = Night(
        tmp_path,
        account("x1", "x", quota="[{posts = 1000, seconds = 86400}]")
        + account("fb", "facebook", quota="[{posts = 1000, seconds = 86400}]"),
        dispatch="breaker_failures = 3\nbreaker_cooldown = 600\n",
    )
    failing = Failing(delay=1)
    night.scripts["x1"] = failing
    night.feed(demo_files[3:4])
    for _ in range(10):
        night.clock.advance_to(night.clock.now() + timedelta(seconds=30))
        night.dispatcher.drain()
    paused = State(night.store).pause("x1")
    assert paused is not None
    assert paused.reason.startswith("circuit breaker: 3 failures in a row")
    assert failing.calls == 3, "nothing more is tried while the breaker is open"
    assert night.rows(PostState.SENT)
    assert all(r.account == "fb" for r in night.rows(PostState.SENT))
    del night.scripts["x1"]  # the platform recovers (the pause dropped its publisher)
    night.clock.advance_to(night.clock.now() + timedelta(minutes=11))
    night.dispatcher.drain()
    assert State(night.store).pause("x1") is None
    assert any(r.account == "x1" for r in night.rows(PostState.SENT))


def test_the_platforms_delay_holds_the_whole_account(tmp_path, demo_files):
    night = Night(tmp_path, account("x1", "x", quota="[{posts = 1000, seconds = 86400}]"))
    failing = Failing(delay=900)
    night.scripts["x1"] = failing
    night.feed(demo_files[3:4])  # plenty of posts pending
    assert failing.calls == 1
    for _ in range(14):  # the platform said 15 minutes: nothing else is tried meanwhile
        night.clock.advance_to(night.clock.now() + timedelta(minutes=1))
        night.dispatcher.drain()
    assert failing.calls == 1
    night.clock.advance_to(night.clock.now() + timedelta(minutes=2))
    night.dispatcher.drain()
    assert failing.calls == 2


def test_approval_mode_holds_every_post_until_approved(tmp_path, demo_files):
    night = Night(tmp_path, account("fb", "facebook", events='["called"]', require_approval="true"))
    night.feed(demo_files[:11])
    held = night.rows(PostState.HELD)
    assert held
    assert all(r.hold_reason == "awaiting approval" for r in held)
    assert not read_posts(night.posts_path)
    operate.approve(night.store, [held[0].id], actor="tester")
    night.dispatcher.drain()
    assert [r["idempotency_key"] for r in read_posts(night.posts_path)] == [held[0].idempotency_key]
    changes = operate.approve(night.store, None, actor="tester")
    night.dispatcher.drain()
    assert len(read_posts(night.posts_path)) == len(changes) + 1


def test_test_data_never_reaches_a_real_account(tmp_path, demo_files):
    cfg = load_config(
        write_config(
            tmp_path / "c.toml",
            source="f",
            accounts='[[accounts]]\nname = "fb"\nplatform = "facebook"\ndry_run = false\n'
            'page_id = "1"\npage_token = "T"\n',
        )
    )
    store = Store(cfg.database_url)
    pipeline = Pipeline(cfg, store, clock=FeedClock(), dry_run=False)
    for p in demo_files[:11]:
        pipeline.ingest(make_fetched(p.read_bytes(), p.name), "t")
    rows = store.posts_in_state(PostState.CANCELLED)
    assert rows
    assert all("test data" in r.hold_reason for r in rows)
    assert not store.posts_in_state(PostState.PENDING)
    with pytest.raises(ConfigError, match="allow_test_posts"):
        refuse_test_data(cfg, store, dry_run=False)
    refuse_test_data(cfg, store, dry_run=True)  # a dry run is always allowed
    store.close()


class Editing(Publisher):
    def __init__(self) -> None:
        self.sent: list[Post] = []
        self.edits: list[tuple[str, str]] = []

    def publish(self, post: Post) -> PublishedRef:
        self.sent.append(post)
        return PublishedRef(f"id-{len(self.sent)}", datetime.now(UTC))

    def edit(self, ref: PublishedRef, text: str) -> None:
        self.edits.append((ref.platform_id, text))


def test_a_correction_is_linked_to_the_post_it_corrects_and_edits_it(tmp_path, demo_files):
    night = Night(
        tmp_path,
        account("fb", "facebook", events='["called", "corrected"]', on_correction='"edit"'),
        gates="",  # the defaults: a count going down holds the correction
    )
    fake = Editing()
    night.scripts["fb"] = fake
    night.feed(demo_files)
    # The demo's correction lowers a count: the plausibility gate holds it for an operator.
    held = [r for r in night.rows(PostState.HELD) if r.event_kind == "corrected"]
    assert len(held) == 1
    assert held[0].hold_reason.startswith("implausible: D06 Westfield: Quinn Adair went down")
    assert not fake.edits
    operate.approve(night.store, [held[0].id], actor="tester")  # a genuine correction
    night.dispatcher.drain()
    correction = next(r for r in night.rows(PostState.SENT) if r.event_kind == "corrected")
    original = next(r for r in night.rows(PostState.SENT) if r.id == correction.corrects)
    assert original.contest_id == correction.contest_id == "cc-D06"
    assert original.event_kind == "called"
    assert fake.edits == [(original.platform_post_id, correction.text)]


def test_operator_actions_only_apply_to_safe_states(tmp_path, demo_files):
    night = Night(tmp_path, account("fb", "facebook", events='["called"]'))
    night.feed(demo_files[:10])
    sent = night.rows(PostState.SENT)[0]
    with pytest.raises(operate.OperatorError, match="is sent; only pending posts can be held"):
        operate.hold(night.store, [sent.id], actor="tester")
    with pytest.raises(operate.OperatorError, match="no post #99999"):
        operate.cancel(night.store, [99999], actor="tester")
    night.feed(demo_files[10:11])
    assert operate.hold(night.store, None, actor="tester") == []  # already sent: nothing pending


def test_an_operator_records_a_post_found_on_the_account(tmp_path, demo_files):
    night = Night(tmp_path, account("fb", "facebook", events='["called"]', require_approval="true"))
    night.feed(demo_files[:10])
    held = night.rows(PostState.HELD)
    assert held
    pending = held[1]
    operate.approve(night.store, [pending.id], actor="tester")
    with pytest.raises(operate.OperatorError, match="only held posts can be marked sent"):
        operate.mark_sent(night.store, pending.id, actor="tester")
    found = held[0]
    changes = operate.mark_sent(
        night.store, found.id, "https://facebook.example/p/1", actor="tester"
    )
    assert [(c.before, c.after) for c in changes] == [("held", "sent")]
    row = night.store.post_row(found.id)
    assert row.platform_url == "https://facebook.example/p/1"
    assert row.sent_at is not None
    night.dispatcher.drain()
    published = {r["idempotency_key"] for r in read_jsonl(night.posts_path)}
    assert found.idempotency_key not in published
    assert pending.idempotency_key in published
