"""Short videos chosen for outbox rows (broadcaster/delivery/videos.py) on a real SQLite outbox
and pipeline, with a stand-in for the live channel's encoder (the real one is exercised in
test_live_shorts.py and test_shorts_e2e.py): which posts carry one, its file named by what it
shows and shared, the card when it fails, the ordinary post when the budget cannot carry it."""

from __future__ import annotations

import functools
import hashlib
from datetime import timedelta
from pathlib import Path

import pytest

from broadcaster.delivery.budgets import account_budget
from broadcaster.delivery.cards import CardMaker
from broadcaster.delivery.videos import VideoMaker
from broadcaster.domain.model import Snapshot
from broadcaster.publishers.dryrun import read_posts
from tests import test_delivery
from tests.conftest import write_config
from tests.test_delivery import Night, account

QUOTA = 150
FIRST_CALLS = 10  # the demo night's snapshots up to its first three calls


class FakeShort:
    def __init__(self, source: FakeShorts, key: str) -> None:
        self.source = source
        self.fingerprint = hashlib.sha256(key.encode()).hexdigest()

    def write(self, out: Path) -> None:
        if self.source.broken:
            raise RuntimeError("encoder exploded")
        self.source.written.append(self.fingerprint)
        out.write_bytes(b"\0\0\0\x18ftypmp42 fake")


class FakeShorts:
    def __init__(self, broken: bool = False) -> None:
        self.broken = broken
        self.written: list[str] = []

    def __call__(self, snapshot: Snapshot, contest: str | None, seconds: float, lang: str):
        return FakeShort(self, f"{snapshot.generated_at}|{contest}|{seconds}|{lang}")


@pytest.fixture(autouse=True)
def with_cards(monkeypatch):
    """Cards on (the harness turns them off), so the ordinary post carries its card."""
    monkeypatch.setattr(test_delivery, "write_config", functools.partial(write_config, cards=True))


def night(tmp_path: Path, accounts: str, shorts: FakeShorts, extra: str = "") -> Night:
    n = Night(tmp_path, accounts, extra=extra)
    folder = tmp_path / "cards"
    n.dispatcher.cards = CardMaker(n.config, n.store, folder, workers=0)  # no processes
    n.dispatcher.videos = VideoMaker(n.config, n.store, folder, shorts, n.clock)
    return n


def play(n: Night, files: list[Path]) -> None:
    """The snapshots, then an hour of feed time for what is still paced."""
    n.feed(files)
    for _ in range(12):
        n.clock.advance_to(n.clock.now() + timedelta(minutes=5))
        n.dispatcher.drain()


VIDEO = {
    "video": "true",
    "video_events": '["called"]',
    "events": '["called", "majority"]',
    "quota": "[{posts = 10000, seconds = 86400}]",
}


def test_chosen_posts_carry_one_video_per_picture_shared_by_accounts(tmp_path, demo_files):
    shorts = FakeShorts()
    accounts = account("tt", "tiktok", **VIDEO) + account("yt", "youtube", **VIDEO)
    n = night(tmp_path, accounts, shorts)
    play(n, demo_files[:FIRST_CALLS])
    records = read_posts(n.posts_path)
    called = [r for r in records if r["event_kind"] == "called"]
    assert len(called) == 6  # three seats on two accounts
    assert all(len(r["media"]) == 1 and r["media"][0].endswith(".mp4") for r in called)
    # One file per picture, drawn once, shared by both accounts' posts.
    assert len({r["media"][0] for r in called}) == 3
    assert len(shorts.written) == 3
    assert all(Path(r["media"][0]).exists() for r in called)


def test_posts_of_other_kinds_and_accounts_without_video_keep_their_card(tmp_path, demo_files):
    shorts = FakeShorts()
    plain = {"events": '["called"]', "quota": VIDEO["quota"]}
    n = night(tmp_path, account("tt", "tiktok", **plain), shorts)
    play(n, demo_files[:FIRST_CALLS])
    records = read_posts(n.posts_path)
    assert records
    assert all(r["media"][0].endswith(".jpg") for r in records)
    assert shorts.written == []


def test_a_video_that_fails_falls_back_to_the_card(tmp_path, demo_files):
    n = night(tmp_path, account("tt", "tiktok", **VIDEO), FakeShorts(broken=True))
    play(n, demo_files[:FIRST_CALLS])
    called = [r for r in read_posts(n.posts_path) if r["event_kind"] == "called"]
    assert len(called) == 3
    assert all(r["media"][0].endswith(".jpg") for r in called)


def test_a_short_the_budget_cannot_carry_goes_as_a_chat_message_and_costs_what_it_cost(
    tmp_path, demo_files
):
    tight = {**VIDEO, "quota": f"[{{posts = {QUOTA}, seconds = 86400}}]"}
    # The naive planner sends each call as it comes (the planned one would merge them into a
    # summary on a budget this small): what is left to decide is video or chat message.
    naive = '[planner]\nmode = "naive"'
    n = night(tmp_path, account("yt", "youtube", **tight), FakeShorts(), naive)
    play(n, demo_files[:FIRST_CALLS])
    called = [r for r in read_posts(n.posts_path) if r["event_kind"] == "called"]
    assert len(called) == 3
    videos = [r for r in called if r["media"]]
    # A Short costs 80 chat messages: the first fits (150 - 80 leaves room for the two
    # waiting), then 70 are left, too few for another, so the others go as chat messages.
    assert len(videos) == 1
    budget = account_budget(n.store, n.config.accounts[0], n.clock.now())
    sent = len(read_posts(n.posts_path))
    assert budget.remaining == QUOTA - 80 - (sent - 1)
