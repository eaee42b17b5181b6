"""Telegram end to end against the emulator's Bot API: a whole rehearsal night in Khmer through
the real adapter (cards as captions, routine posts silent), a bot without rights, and alerts to
the operators' chat through the same adapter."""

from __future__ import annotations

import shutil
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest

from broadcaster.alerts.alerter import Alerter
from broadcaster.core.clock import FeedClock, WallClock
from broadcaster.core.config import AccountConfig
from broadcaster.core.secrets import Secrets
from broadcaster.outbox.state import State
from broadcaster.outbox.store import HoldKind, Store
from broadcaster.publishers.base import PublisherEnv, Reauthorize
from broadcaster.publishers.telegram import TelegramPublisher
from broadcaster.rehearsal.emulator import Emulator, EmulatorServer, Limits
from broadcaster.rehearsal.replay import rehearse
from broadcaster.runtime.configuration import load_config
from tests.adapters import post
from tests.conftest import DEMO, write_config
from tests.console_support import demo_night

TOKEN = "7000000002:alert-bot-token-value"


@pytest.fixture
def emulator():
    server = EmulatorServer(emulator=Emulator(Limits())).start()
    try:
        yield server
    finally:
        server.stop()


def test_a_khmer_night_reaches_the_channel_through_the_bot_api(tmp_path: Path):
    accounts = (
        '\n[[accounts]]\nname = "tg"\nplatform = "telegram"\ndry_run = true\nlanguage = "km"\n'
        'khmer_digits = true\nbot_token = "TG_TOKEN"\nchannel = "@nec_results"\n'
    )
    cfg = write_config(tmp_path / "c.toml", source="feed", accounts=accounts, cards=True)
    report = rehearse(load_config(cfg), DEMO, tmp_path / "out", emulator=True, tail=3600)
    assert report.emulator is not None
    posts = [p for p in report.emulator["posts"] if p["platform"] == "telegram"]
    assert posts, report.waiting
    assert {p["target"] for p in posts} == {"@emulated_results"}
    assert all("[TEST]" in p["text"] for p in posts)
    assert any("\u1780" <= ch <= "\u17ff" for ch in posts[0]["text"]), "Khmer, as text"
    assert any(p["media"] for p in posts), "cards went as photos"
    kinds = Counter(k for (platform, k), n in report.table.items() if platform == "telegram")
    assert kinds, report.table
    assert report.sent == len(posts)
    assert report.emulator["responses"].get("telegram 200", 0) >= len(posts)
    assert not [w for w in report.waiting if w[1] == "tg"], report.waiting


def test_a_bot_that_is_not_an_admin_pauses_with_the_remedy(tmp_path: Path, emulator):
    account = AccountConfig.model_validate(
        {
            "name": "tg",
            "platform": "telegram",
            "dry_run": False,
            "bot_token": "TG",
            "channel": "@results_not_admin",
            "api_base": emulator.url,
        }
    )
    env = PublisherEnv(
        clock=WallClock(), posts_path=tmp_path / "p.jsonl", secrets=Secrets(environ={"TG": TOKEN})
    )
    with pytest.raises(Reauthorize, match="bot is not a member of the channel chat") as refused:
        TelegramPublisher(account, env).publish(post())
    assert "`broadcaster auth telegram --account tg`" in str(refused.value)
    with pytest.raises(Reauthorize, match="'member' in channel"):
        TelegramPublisher.doctor(account, env)
    good = account.model_copy(update={"channel": "@nec_results"})
    assert TelegramPublisher.doctor(AccountConfig.model_validate(good.model_dump()), env) == (
        "bot @emulated_results_bot may post, edit, delete in channel '@nec_results (TEST)' "
        "(@nec_results)"
    )


def test_alerts_reach_the_operators_chat_through_the_same_adapter(
    tmp_path: Path, emulator, monkeypatch
):
    night = demo_night(tmp_path / "night")
    shutil.copy(night, tmp_path / "state.db")
    monkeypatch.setenv("ALERT_BOT", TOKEN)
    (tmp_path / "snapshots").mkdir()
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        f"""
[feed]
source = "snapshots"
is_test = true

[database]
url = "sqlite:///state.db"

[[alerts]]
name = "duty"
kind = "telegram"
bot_token = "ALERT_BOT"
chat = "-1009000000042"
api_base = "{emulator.url}"

[[accounts]]
name = "tg"
platform = "telegram"
dry_run = true
bot_token = "TG_TOKEN"
channel = "@nec_results"
""",
        encoding="utf-8",
    )
    config = load_config(cfg)
    store = Store(config.database_url)
    started = State(store).night_started()
    assert started is not None
    clock = FeedClock(started + timedelta(hours=1))
    alerts = Alerter(config, store, clock=clock, dry_run=True)
    try:
        emulator.emulator.add_faults("telegram:code=not_admin")  # the first try is refused
        assert alerts.run_once() == []
        clock.advance_to(clock.now() + timedelta(seconds=31))
        ((dest, alert),) = alerts.run_once()
        assert dest == "duty"
        (chat_post,) = [
            p for p in emulator.emulator.snapshot()["posts"] if p["target"] == "-1009000000042"
        ]
        held = store.held(HoldKind.GATE)
        assert chat_post["text"].startswith("broadcaster DRY RUN: posts held")
        assert f"#{held[0].id} " in chat_post["text"]
        assert "`broadcaster outbox approve ID`" in chat_post["text"]
        assert TOKEN not in chat_post["text"]
        assert alert.kind == "held"
        assert alerts.run_once() == []  # said once
    finally:
        alerts.close()
        store.close()


def test_golive_checks_the_alert_bot_in_a_private_chat(tmp_path: Path, emulator, monkeypatch):
    from broadcaster.runtime import golive

    monkeypatch.setenv("ALERT_BOT", TOKEN)
    (tmp_path / "snapshots").mkdir()
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        f"""
[feed]
source = "snapshots"

[[alerts]]
name = "duty"
kind = "telegram"
bot_token = "ALERT_BOT"
chat = "424242"
api_base = "{emulator.url}"

[[accounts]]
name = "x"
platform = "x"
""",
        encoding="utf-8",
    )
    (check,) = golive.alerts(load_config(cfg))
    assert check.ok, check.detail
    assert check.detail == "bot @emulated_results_bot may write to 'chat 424242 (TEST)' (424242)"
    assert emulator.emulator.snapshot()["posts"] == []  # checked, nothing sent
