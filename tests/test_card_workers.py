"""Cards drawn ahead by worker processes (issue 13): the same file as one drawn at send time,
found by the send without drawing it again, and a worker's failure never worse than drawing
the card at send time."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.exc import NoResultFound

from broadcaster.core.clock import FeedClock
from broadcaster.delivery import cards
from broadcaster.delivery.cards import CardMaker
from broadcaster.domain.posts import PostState
from broadcaster.ingest.sources import make_fetched
from broadcaster.outbox.store import Store
from broadcaster.runtime.configuration import load_config
from broadcaster.runtime.cycle import Pipeline
from tests.conftest import write_config

FACEBOOK = '\n[[accounts]]\nname = "page"\nplatform = "facebook"\ndry_run = true\n'


@pytest.fixture
def outbox(tmp_path: Path, demo_files: list[Path]):
    config = load_config(
        write_config(tmp_path / "c.toml", source="f", accounts=FACEBOOK, cards=True)
    )
    store = Store(config.database_url)
    pipeline = Pipeline(
        config, store, clock=FeedClock(datetime(2030, 7, 28, tzinfo=UTC)), dry_run=True
    )
    for path in demo_files[:12]:
        pipeline.ingest(make_fetched(path.read_bytes(), path.name), "test")
    calls = [r for r in store.posts_in_state(PostState.PENDING) if r.event_kind == "called"]
    assert calls
    yield config, store, calls
    store.close()


def test_a_card_drawn_ahead_is_the_one_the_send_uses(outbox, tmp_path, monkeypatch) -> None:
    config, store, calls = outbox
    account = config.accounts[0]
    inline = CardMaker(config, store, tmp_path / "inline", workers=0)
    expected = [inline.card_for(row, account) for row in calls[:3]]
    ahead = CardMaker(config, store, tmp_path / "ahead", workers=1)
    try:
        for row in calls[:3]:
            ahead.prefetch(row.event_id, account)
        for future in list(ahead._drawing.values()):
            future.result(timeout=120)  # drawn by the worker, before any send asks
        drawn_here: list[Path] = []
        monkeypatch.setattr(cards, "render_card", lambda *a, **k: drawn_here.append(a[-1]))
        got = [ahead.card_for(row, account) for row in calls[:3]]
    finally:
        ahead.close()
    assert drawn_here == []  # the send found its card ready
    assert [p.name for p in got] == [p.name for p in expected]
    assert [p.read_bytes() for p in got] == [p.read_bytes() for p in expected]
    assert not list((tmp_path / "ahead").glob("*.part*"))


def test_a_worker_that_fails_leaves_the_send_to_draw_it(outbox, tmp_path) -> None:
    config, store, calls = outbox
    account = config.accounts[0]
    maker = CardMaker(config, store, tmp_path / "cards", workers=1)
    try:
        maker.prefetch(10**9, account)  # no such event: the worker's draw fails
        future = maker._drawing[(10**9, account.name)]
        with pytest.raises(NoResultFound):
            future.result(timeout=120)
        row = calls[0]
        fake = type("Row", (), {"event_id": 10**9})()
        with pytest.raises(NoResultFound):  # drawn here, failing as it would have
            maker.card_for(fake, account)
        assert maker.card_for(row, account).exists()  # the pool still serves
    finally:
        maker.close()
