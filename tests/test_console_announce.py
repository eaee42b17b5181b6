"""Announcements through the same outbox as every post, and the queries the console adds to
the store and operate modules (pages, counts, the change marker, indexes)."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from broadcaster.console.app import create_app
from broadcaster.console.users import Role, UserStore
from broadcaster.content.lint import lint_templates
from broadcaster.core.clock import FeedClock
from broadcaster.core.logs import register_secret
from broadcaster.delivery.dispatcher import Dispatcher, publisher_env
from broadcaster.domain.events import TEMPLATED_KINDS, EventKind
from broadcaster.domain.posts import HoldKind, PostState
from broadcaster.outbox.announce import AnnouncementError, announce, clean_text, measure
from broadcaster.outbox.audit import entries
from broadcaster.outbox.operations import (
    PostFilter,
    approve,
    count_by_state,
    find_posts,
    post_history,
)
from broadcaster.outbox.store import Store
from broadcaster.runtime.configuration import load_config
from tests.conftest import read_jsonl
from tests.console_support import FAST_HASHER, PASSWORD, demo_night, login, make_env

TEXT = "Results from Region X are delayed: the count resumes at 22:00."


@pytest.fixture(scope="module")
def night_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return demo_night(tmp_path_factory.mktemp("night"))


@pytest.fixture
def env(tmp_path: Path, night_db: Path) -> tuple[Path, Any]:
    return make_env(tmp_path, night_db)


@pytest.fixture
def store(env: tuple[Path, Any]) -> Iterator[Store]:
    s = Store(env[1].database_url)
    yield s
    s.close()


def test_an_announcement_is_one_event_and_one_post_per_account_audited(env: Any, store: Store):
    _, config = env
    made = announce(
        config, store, TEXT, ["facebook-demo", "x-demo"], actor="otto", nonce="nonce-0001"
    )
    assert made.event_key == "announcement/nonce-0001"
    rows = [store.post_row(i) for i in made.post_ids]
    assert [(r.account, r.state, r.event_kind) for r in rows] == [
        ("facebook-demo", PostState.PENDING, "announcement"),
        ("x-demo", PostState.PENDING, "announcement"),
    ]
    for row in rows:
        assert row.text == TEXT
        assert row.dry_run is True  # the rehearsal database plans dry runs
        assert row.test_data is False
        assert row.wants_card is False
        assert row.priority == 2  # paced like a call
    trail = entries(store, limit=1, action="announce")[0]
    assert trail.actor == "otto"
    assert "facebook-demo, x-demo" in (trail.detail or "")
    # The same form sent twice adds nothing.
    again = announce(
        config, store, TEXT, ["facebook-demo", "x-demo"], actor="otto", nonce="nonce-0001"
    )
    assert again.post_ids == made.post_ids
    assert len(entries(store, limit=10, action="announce")) == 1


def test_an_announcement_is_sent_by_the_dispatcher_like_any_post(env: Any, store: Store):
    path, config = env
    made = announce(config, store, TEXT, ["facebook-demo"], actor="otto", nonce="nonce-send")
    clock = FeedClock()
    # The demo night is recorded in 2030: the announcement takes its last snapshot's time.
    feed_time = store.post_row(made.post_ids[0]).feed_time
    assert feed_time >= store.last_snapshot_ref()[1]
    clock.advance_to(feed_time + timedelta(hours=2))
    posts_file = path.parent / "posts.jsonl"
    dispatcher = Dispatcher(
        config,
        store,
        clock=clock,
        env=publisher_env(config, store, clock, posts_file),
        dry_run=True,
    )
    try:
        dispatcher.drain()
    finally:
        dispatcher.close()
    assert store.post_row(made.post_ids[0]).state == PostState.SENT
    written = [p for p in read_jsonl(posts_file) if p["event_kind"] == "announcement"]
    assert [p["text"] for p in written] == [TEXT]


def test_an_account_that_requires_approval_holds_the_announcement(tmp_path: Path, night_db: Path):
    _, config = make_env(tmp_path, night_db)
    accounts = [
        a.model_copy(update={"require_approval": True}) if a.platform == "x" else a
        for a in config.accounts
    ]
    config = config.with_overrides(accounts=accounts)
    store = Store(config.database_url)
    try:
        made = announce(config, store, TEXT, ["x-demo"], actor="otto", nonce="nonce-appr")
        row = store.post_row(made.post_ids[0])
        assert row.state == PostState.HELD
        assert row.hold_kind == HoldKind.APPROVAL
    finally:
        store.close()


@pytest.mark.parametrize(
    ("text", "accounts", "problem"),
    [
        ("  ", ["x-demo"], "empty"),
        (TEXT, [], "at least one account"),
        (TEXT, ["tiktok-demo"], "need an image"),
        ("word " * 60, ["x-demo"], "of 280 weighted characters"),
        ("x" * 201, ["youtube-demo"], "201 of 200 characters"),
        (TEXT, ["nobody"], "no account 'nobody'"),
        (TEXT + " tok-ann-SECRET-4242", ["x-demo"], "secret value"),
    ],
)
def test_announcements_that_cannot_go_are_refused_and_nothing_stored(
    env: Any, store: Store, text: str, accounts: list[str], problem: str
):
    register_secret("tok-ann-SECRET-4242")
    before = sum(count_by_state(store, PostFilter()).values())
    with pytest.raises(AnnouncementError, match=problem):
        announce(env[1], store, text, accounts, actor="otto", nonce="nonce-refused")
    assert sum(count_by_state(store, PostFilter()).values()) == before


def test_the_text_is_cleaned_and_measured_the_platforms_way(env: Any):
    assert clean_text("a\r\nb\u202e\x07 c\u200d") == "a\nb c\u200d"
    fits = {f.account: f for f in measure(env[1], "ស្វាគមន៍", ["x-demo", "facebook-demo"])}
    assert fits["x-demo"].count == 16  # Khmer counts double on X
    assert fits["facebook-demo"].count == 8


def test_before_any_snapshot_an_announcement_waits_for_the_feed(tmp_path: Path):
    from tests.console_support import config_text

    path = tmp_path / "c.toml"
    path.write_text(config_text())
    config = load_config(path)
    store = Store(config.database_url)
    try:
        with pytest.raises(AnnouncementError, match="no snapshot"):
            announce(config, store, TEXT, ["x-demo"], actor="otto", nonce="nonce-early")
    finally:
        store.close()


def test_announcements_are_not_templated_and_lint_ignores_them(env: Any):
    _, config = env
    assert EventKind.ANNOUNCEMENT not in TEMPLATED_KINDS
    assert not any(a.wants(EventKind.ANNOUNCEMENT) for a in config.accounts)
    report = lint_templates(config)
    assert not [p for p in report.problems if "announcement" in p]


def test_the_announce_page_measures_and_queues(env: Any, store: Store):
    path, config = env
    users = UserStore(path.parent / "console-users.json", hasher=FAST_HASHER)
    with TestClient(create_app(config, users=users), base_url="http://127.0.0.1") as client:
        token = login(client, "otto")
        page = client.get("/announce").text
        nonce = re.search(r'name="nonce" value="([^"]+)"', page).group(1)
        fits = client.post(
            "/announce/check",
            data={"text": "x" * 250, "accounts": ["x-demo", "youtube-demo"]},
            headers={"X-CSRF-Token": token},
        ).text
        assert "250 / 280" in fits
        assert "250 / 200 characters: 250 of 200 characters: too long" in fits
        refused = client.post(
            "/announce",
            data={"csrf": token, "nonce": nonce, "text": TEXT, "accounts": "tiktok-demo"},
        )
        assert refused.status_code == 422
        assert "need an image" in refused.text
        done = client.post(
            "/announce",
            data={
                "csrf": token,
                "nonce": nonce,
                "text": TEXT,
                "accounts": ["x-demo", "facebook-demo"],
            },
            follow_redirects=True,
        )
        assert "announcement queued" in done.text
        assert TEXT in done.text  # the timeline of announcements
    made = find_posts(store, PostFilter(kind="announcement"))
    assert sorted(r.account for r in made) == ["facebook-demo", "x-demo"]


# -- the queries the console added ----------------------------------------------------------------


def test_find_posts_pages_by_id_with_every_filter(store: Store):
    page1 = find_posts(store, PostFilter(platform="x"), limit=10)
    assert [r.platform for r in page1] == ["x"] * 10
    assert [r.id for r in page1] == sorted((r.id for r in page1), reverse=True)
    page2 = find_posts(store, PostFilter(platform="x"), before_id=page1[-1].id, limit=10)
    assert max(r.id for r in page2) < min(r.id for r in page1)
    called = find_posts(store, PostFilter(kind="called", contest="cc-D01", state="sent"))
    assert called
    assert {(r.event_kind, r.contest_id, r.state) for r in called} == {("called", "cc-D01", "sent")}
    counts = count_by_state(store, PostFilter(platform="x", state="held"))  # state ignored
    assert counts["sent"] > 0
    assert counts["held"] == 1


def test_change_marker_moves_with_posts_state_and_audit(store: Store):
    first = store.change_marker()
    assert store.change_marker() == first
    post = store.posts_in_state(PostState.SENT)[0]
    store.mark_failed(post.id, "changed")
    second = store.change_marker()
    assert second != first
    store.put_state("waiting:x-demo", {"reason": "pacing"})
    third = store.change_marker()
    assert third != second
    assert post_history(store, post.id) == []
    gated = store.held(HoldKind.GATE)[0]
    approve(store, [gated.id], actor="otto")
    assert store.change_marker() != third
    history = post_history(store, gated.id)
    assert [(h.actor, h.action) for h in history] == [("otto", "approve")]


def test_indexes_are_added_to_an_older_database(env: Any):
    _, config = env
    path = config.database_url.removeprefix("sqlite:///")
    conn = sqlite3.connect(path)
    conn.execute("DROP INDEX ix_posts_updated")
    conn.commit()
    conn.close()
    store = Store(config.database_url)
    store.ensure_indexes()
    store.close()
    conn = sqlite3.connect(path)
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    conn.close()
    assert {"ix_posts_updated", "ix_posts_platform", "ix_posts_contest"} <= names


def test_the_console_pages_and_queries_on_postgresql(
    tmp_path: Path, postgres_url: str, demo_files: list[Path]
):
    from broadcaster.core.clock import FeedClock
    from broadcaster.ingest.sources import make_fetched
    from broadcaster.runtime.cycle import Pipeline
    from tests.conftest import write_config

    accounts = "".join(
        f'[[accounts]]\nname = "{name}"\nplatform = "{name.split("-")[0]}"\ndry_run = true\n'
        for name in ("facebook-demo", "x-demo")
    )
    config = load_config(
        write_config(tmp_path / "c.toml", source="f", database=postgres_url, accounts=accounts)
    )
    store = Store(config.database_url)
    try:
        pipeline = Pipeline(config, store, clock=FeedClock(), dry_run=True)
        for path in demo_files[:9]:
            pipeline.ingest(make_fetched(path.read_bytes(), path.name), "t")
        store.ensure_indexes()
        marker = store.change_marker()
        made = announce(config, store, TEXT, ["x-demo"], actor="otto", nonce="nonce-pg-01")
        assert store.change_marker() != marker
        assert find_posts(store, PostFilter(kind="announcement"))[0].id == made.post_ids[0]
        assert count_by_state(store, PostFilter(platform="x"))["pending"] >= 1
        users = UserStore(tmp_path / "console-users.json", hasher=FAST_HASHER)
        users.add("otto", Role.OPERATOR, PASSWORD)
        with TestClient(create_app(config, store, users=users), base_url="http://127.0.0.1") as c:
            login(c, "otto")
            for page in ("/", "/posts", "/posts?platform=x&state=pending", "/accounts", "/audit"):
                assert c.get(page).status_code == 200, page
            assert TEXT in c.get(f"/posts/{made.post_ids[0]}").text
    finally:
        store.close()
