"""What a rehearsal says was still waiting at its end, and why: read from the outbox a few
columns at a time, each account's pacing read once."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import event, select, update

from broadcaster.domain.posts import PostState
from broadcaster.outbox.state import State, Waiting
from broadcaster.outbox.store import posts
from broadcaster.rehearsal.replay import RehearsalReport, _summarise
from broadcaster.runtime.configuration import load_config
from tests.ge15_night import ge15_plan, rehearse_quietly, write_ge15


def test_each_post_left_waiting_is_given_its_reason(tmp_path: Path) -> None:
    write_ge15(tmp_path / "night", ge15_plan(20))
    config = load_config(None)
    config = config.with_overrides(cards=config.cards.model_copy(update={"enabled": False}))
    store = rehearse_quietly(config, tmp_path / "night", tmp_path / "out")
    try:
        with store.engine.begin() as conn:
            ids = conn.execute(
                select(posts.c.id, posts.c.account)
                .where(posts.c.state == PostState.SENT, posts.c.account == "x-demo")
                .order_by(posts.c.id)
                .limit(6)
            ).all()
            assert len(ids) == 6
            due = datetime(2030, 1, 1, 20, 30, tzinfo=UTC)
            changes = [
                {"state": PostState.HELD, "hold_reason": "implausible: a count went down"},
                {"state": PostState.FAILED, "last_error": "HTTP 500 from the platform"},
                {"state": PostState.PENDING, "not_before": due},
                {"state": PostState.PENDING},
                {"state": PostState.PENDING, "account": "gone-account"},
                {"state": PostState.SENDING},
            ]
            for (post_id, _account), change in zip(ids, changes, strict=True):
                conn.execute(update(posts).where(posts.c.id == post_id).values(**change))
        until = datetime(2030, 1, 1, 21, 0, tzinfo=UTC)
        State(store).set_waiting("x-demo", Waiting("daily budget used up", until))
        report = RehearsalReport(out_dir=tmp_path / "out")
        statements: list[str] = []
        event.listen(store.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
        _summarise(store, report, {a.name for a in config.accounts})
    finally:
        store.close()
    slot = f"daily budget used up (next slot {until.isoformat()})"
    got = {post_id: (account, state, why) for post_id, account, state, why in report.waiting}
    assert got == {
        ids[0][0]: ("x-demo", PostState.HELD, "implausible: a count went down"),
        ids[1][0]: ("x-demo", PostState.FAILED, "HTTP 500 from the platform"),
        ids[2][0]: ("x-demo", PostState.PENDING, "due at 2030-01-01T20:30:00+00:00"),
        ids[3][0]: ("x-demo", PostState.PENDING, slot),
        ids[4][0]: ("gone-account", PostState.PENDING, "its account is not in this configuration"),
        ids[5][0]: ("x-demo", PostState.SENDING, slot),
    }
    # The count by state, then the posts of the four states in one statement each, only the
    # columns that say why (not their texts: tens of thousands wait at a large night's end),
    # and each account's pacing once.
    assert sum("FROM posts" in s for s in statements) == 5
    assert not [s for s in statements if "posts.text" in s]
    assert sum("FROM kv" in s for s in statements) == 1
