"""Bursts rendered when sent (issue 13): a snapshot with more new events than `[templates]
render_ahead` stores its posts without text, and each is rendered just before it is sent, from
the stored context. Whatever must be seen before it is sent is still rendered at ingest (an
account's approvals, the gates' holds, a template known broken); rendering at send time can
still hold a post or split it into a thread, and the superseded posts are never rendered."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from broadcaster.core.clock import FeedClock
from broadcaster.delivery.dispatcher import Dispatcher
from broadcaster.domain.posts import HoldKind, PostState
from broadcaster.ingest.sources import make_fetched
from broadcaster.outbox.store import Store
from broadcaster.publishers import PublisherEnv
from broadcaster.publishers.dryrun import read_posts
from broadcaster.runtime.configuration import load_config
from broadcaster.runtime.cycle import Pipeline
from tests.conftest import write_config
from tests.renders import count_renders


def _account(name: str, platform: str, extra: str = "") -> str:
    return (
        f'\n[[accounts]]\nname = "{name}"\nplatform = "{platform}"\ndry_run = true\n'
        f"quota = [{{posts = 100000, seconds = 86400}}]\n{extra}"
    )


class Night:
    def __init__(self, tmp_path: Path, accounts: str, extra: str = "", gates: str = "") -> None:
        self.tmp_path = tmp_path
        cfg = load_config(
            write_config(
                tmp_path / "c.toml",
                source="f",
                accounts=accounts,
                extra=f'[templates]\ndir = "tpl"\nrender_ahead = 0\n{extra}',
                **({"gates": gates} if gates else {}),
            )
        )
        (tmp_path / "tpl").mkdir(exist_ok=True)
        self.store = Store(cfg.database_url)
        clock = FeedClock()
        self.pipeline = Pipeline(cfg, self.store, clock=clock, dry_run=True)
        env = PublisherEnv(clock=clock, posts_path=tmp_path / "posts.jsonl")
        self.dispatcher = Dispatcher(cfg, self.store, clock=clock, env=env, dry_run=True)

    def feed(self, files: list[Path]) -> None:
        for p in files:
            result = self.pipeline.ingest(make_fetched(p.read_bytes(), p.name), "t")
            assert result.outcome == "accepted", result.error

    def rows(self, state: str) -> list[Any]:
        return list(self.store.posts_in_state(state))

    def sent(self) -> list[dict[str, Any]]:
        return read_posts(self.tmp_path / "posts.jsonl")


def write_template(folder: Path, platform: str, kind: str, text: str) -> Path:
    path = folder / "en" / platform / f"{kind}.j2"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    stamp = time.time_ns() + 1_000_000  # an edit a modification-time check sees
    os.utime(path, ns=(stamp, stamp))
    return path


def test_a_burst_is_stored_unrendered_and_only_what_is_sent_is_rendered(
    tmp_path: Path, demo_files: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    night = Night(tmp_path, _account("x-main", "x"))
    renders = count_renders(monkeypatch)
    night.feed(demo_files[:8])
    pending = night.rows(PostState.PENDING)
    assert pending
    assert all(row.text is None for row in pending)
    assert renders == []  # nothing rendered at ingest
    night.dispatcher.drain()
    sent = night.sent()
    assert sent
    assert all(post["text"].startswith("[TEST] ") for post in sent)
    superseded = night.rows(PostState.SUPERSEDED)
    assert superseded  # newer results replaced some posts before they went out...
    assert all(row.text is None for row in superseded)  # ...and those were never rendered
    assert len(renders) < len(sent) + len(superseded)


def test_what_an_operator_must_see_is_rendered_at_ingest(
    tmp_path: Path, demo_files: list[Path]
) -> None:
    accounts = _account("fb-approved", "facebook", "require_approval = true\n") + _account(
        "x-main", "x"
    )
    night = Night(tmp_path, accounts, gates='votes_decreased = "hold"')
    night.feed(demo_files)
    held = night.rows(PostState.HELD)
    approvals = [r for r in held if r.hold_kind == HoldKind.APPROVAL]
    gated = [r for r in held if r.hold_kind == HoldKind.GATE]
    assert approvals
    assert all(r.account == "fb-approved" and r.text for r in approvals)
    assert gated  # the demo's correction lowers a count: held for a person, with its text
    assert all(r.text for r in gated)


def test_test_data_bound_for_a_real_account_is_cancelled_at_ingest(
    tmp_path: Path, demo_files: list[Path]
) -> None:
    accounts = (
        '[[accounts]]\nname = "fb"\nplatform = "facebook"\ndry_run = false\n'
        'page_id = "1"\npage_token = "T"\n'
    )
    cfg_path = write_config(
        tmp_path / "c.toml",
        source="f",
        accounts=accounts,
        extra="[templates]\nrender_ahead = 0\n",
    )
    cfg = load_config(cfg_path)
    store = Store(cfg.database_url)
    pipeline = Pipeline(cfg, store, clock=FeedClock(), dry_run=False)
    for p in demo_files[:6]:
        result = pipeline.ingest(make_fetched(p.read_bytes(), p.name), "t")
        assert result.outcome == "accepted", result.error
    cancelled = store.posts_in_state(PostState.CANCELLED)
    assert cancelled
    assert all("test data" in r.hold_reason for r in cancelled)
    assert not store.posts_in_state(PostState.PENDING)
    store.close()


def test_a_template_that_fails_when_sent_holds_the_post_until_it_is_fixed(
    tmp_path: Path, demo_files: list[Path]
) -> None:
    path = write_template(tmp_path / "tpl", "x", "called", "{{ contest.name }}")
    night = Night(tmp_path, _account("x-main", "x", 'events = ["called"]\n'))
    night.feed(demo_files[:11])
    assert night.rows(PostState.PENDING)
    # Broken after ingest (lint would keep the last good version, so break what it cannot
    # see: a name only real contests lack).
    write_template(tmp_path / "tpl", "x", "called", "{{ contest.name }} {{ contest.nope }}")
    night.pipeline.composer.refresh()
    night.dispatcher.composer.refresh()
    rebuilds = night.dispatcher.queues.rebuilds
    night.dispatcher.drain()
    assert not night.sent()
    held = night.rows(PostState.HELD)
    assert len(held) > 1
    # Holds of its own never make the dispatcher read its whole queue again: at 20,000 seats
    # one read per held post would take hours.
    assert night.dispatcher.queues.rebuilds <= max(rebuilds, 1)
    assert all(r.hold_kind == HoldKind.TEMPLATE for r in held)
    assert all(str(path) in r.hold_reason for r in held)

    write_template(tmp_path / "tpl", "x", "called", "Fixed: {{ contest.name }}")
    assert night.pipeline.maintain_templates() == len(held)
    night.dispatcher.drain()
    texts = [p["text"] for p in night.sent()]
    assert len(texts) == len(held)
    assert all(t.startswith("[TEST] Fixed: ") for t in texts)


def test_a_post_too_long_for_one_part_becomes_a_thread_when_sent(
    tmp_path: Path, demo_files: list[Path]
) -> None:
    write_template(tmp_path / "tpl", "x", "called", "{{ contest.name }} " + "word " * 70 + "end.")
    night = Night(
        tmp_path,
        _account("x-main", "x", 'events = ["called"]\n'),
        extra='overflow = { "x/called" = "thread" }\n',
    )
    night.feed(demo_files[:11])
    night.dispatcher.drain()
    sent = night.sent()
    keys = [p["idempotency_key"] for p in sent]
    firsts = [k for k in keys if "#" not in k]
    assert firsts
    for key in firsts:
        assert f"{key}#2" in keys
        assert keys.index(key) < keys.index(f"{key}#2")
    seconds = [p for p in sent if p["idempotency_key"].endswith("#2")]
    assert all("end." in p["text"] and p["reply_to"] for p in seconds)


def test_a_post_an_operator_holds_before_it_is_rendered_is_released_and_rendered(
    tmp_path: Path, demo_files: list[Path]
) -> None:
    from broadcaster.outbox import operations

    night = Night(tmp_path, _account("x-main", "x"))
    night.feed(demo_files[:8])
    pending = night.rows(PostState.PENDING)
    assert pending
    assert all(row.text is None for row in pending)
    first, *rest = (row.id for row in pending)
    assert operations.hold(night.store, None, actor="tester")
    assert operations.approve(night.store, [first], actor="tester")
    assert len(operations.approve(night.store, None, actor="tester")) == len(rest)
    night.dispatcher.invalidate()
    night.dispatcher.drain()
    sent = night.sent()
    assert sent
    assert all(post["text"].startswith("[TEST] ") for post in sent)
    assert not night.rows(PostState.HELD)


def test_templates_are_checked_before_a_deferred_post_uses_them(
    tmp_path: Path, demo_files: list[Path]
) -> None:
    """The dispatcher renders a burst's posts with templates it loads and checks as the
    pipeline does: one that fails its check on the sample contests (here, any party-list
    contest) is not used for the contests it happens to work for."""
    night = Night(tmp_path, _account("x-main", "x", 'events = ["called"]\n'))
    night.feed(demo_files[:11])
    assert night.rows(PostState.PENDING)
    write_template(
        tmp_path / "tpl",
        "x",
        "called",
        "Override {{ contest.name }}{% if contest.kind == 'party' %}{{ nope }}{% endif %}",
    )
    night.dispatcher.drain()
    assert not [p for p in night.sent() if "Override" in p["text"]]
    held = night.rows(PostState.HELD)
    assert held
    assert all(r.hold_kind == HoldKind.TEMPLATE for r in held)


def test_an_operators_hold_while_a_post_is_being_rendered_is_never_overwritten(
    tmp_path: Path, demo_files: list[Path]
) -> None:
    """The operator holds everything at the very moment the dispatcher writes a burst's post's
    text (after it read the post as pending): the write must not put the post back to
    pending, and nothing held goes out."""
    from sqlalchemy import event

    from broadcaster.outbox import operations

    night = Night(tmp_path, _account("x-main", "x"))
    night.feed(demo_files[:8])
    assert night.rows(PostState.PENDING)
    held: list[Any] = []

    def hold_first(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        # Just before the first text is written, on another connection: the operator's hold.
        if not held and statement.startswith("UPDATE posts SET state=?, text=?"):
            held.extend(operations.hold(night.store, None, actor="tester"))

    event.listen(night.store.engine, "before_cursor_execute", hold_first)
    night.dispatcher.drain()
    assert held
    assert night.sent() == []
    rows = night.rows(PostState.HELD)
    assert len(rows) == len(held)
    assert all(r.hold_kind == HoldKind.OPERATOR and r.text is None for r in rows)


def test_the_console_offers_to_approve_a_held_burst_post_and_edit_says_why_it_cannot(
    tmp_path: Path, demo_files: list[Path]
) -> None:
    from broadcaster.console.posts import PostView
    from broadcaster.outbox import operations

    night = Night(tmp_path, _account("x-main", "x"))
    night.feed(demo_files[:8])
    (first, *_) = night.rows(PostState.PENDING)
    operations.hold(night.store, [first.id], actor="tester")
    row = night.store.post_row(first.id)
    assert row.text is None
    view = PostView(row, count=None, limit=280, unit="weighted characters", card=False, drawn=False)
    assert view.approvable
    with pytest.raises(operations.OperatorError, match="written just before it is sent"):
        operations.edit_text(night.store, first.id, "new text", actor="tester")
