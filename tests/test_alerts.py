"""Alerts to the operators, over the demo night's real database: what raises one, what it says
(what happened, which post or account, the command that resolves it, never a secret), each
destination over a real local server (SMTP with STARTTLS and a login, a webhook receiver, the
Telegram chat through the emulator in test_alerts_telegram.py), minimum intervals, and no
repeat across a restart."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from broadcaster.alerts.alerter import Alerter
from broadcaster.alerts.destinations import AlertNotSent, EmailDestination
from broadcaster.alerts.model import Alert, Context, standby_took_over
from broadcaster.core.clock import FeedClock
from broadcaster.core.config import CardsConfig, Config, ConfigError
from broadcaster.core.logs import register_secret
from broadcaster.core.secrets import Secrets
from broadcaster.outbox.state import PauseRecord, State, Waiting
from broadcaster.outbox.store import HoldKind, Store
from broadcaster.rehearsal.replay import rehearse
from broadcaster.runtime.configuration import load_config
from tests.alert_servers import SMTP_PASSWORD, SMTP_USER, smtp_server, webhook_server
from tests.conftest import DEMO, broadcaster_cmd, wait_for, write_config
from tests.console_support import demo_night


@pytest.fixture(scope="module")
def night(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return demo_night(tmp_path_factory.mktemp("night"))


@pytest.fixture(scope="module")
def half_night(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo night's first eight snapshots: counting still under way."""
    folder = tmp_path_factory.mktemp("half")
    (folder / "feed").mkdir()
    for path in sorted(DEMO.glob("*.json"))[:8]:
        shutil.copy(path, folder / "feed" / path.name)
    config = load_config(None).with_overrides(cards=CardsConfig(enabled=False))
    rehearse(config, folder / "feed", folder / "out")
    return folder / "out" / "state.db"


ACCOUNTS = "".join(
    f'\n[[accounts]]\nname = "{p}-demo"\nplatform = "{p}"\ndry_run = true\n'
    for p in ("facebook", "youtube", "tiktok", "x")
)


def write(tmp: Path, night: Path, alerts: str, alerting: str = "") -> Config:
    shutil.copy(night, tmp / "state.db")
    path = tmp / "c.toml"
    path.write_text(
        f"""
[election]
timezone = "Asia/Bangkok"
name = "Fictional General Election (TEST)"

[feed]
source = "snapshots"
is_test = true

[database]
url = "sqlite:///state.db"

[cards]
enabled = false

[alerting]
console_url = "https://console.example.org"
{alerting}
{alerts}
{ACCOUNTS}
""",
        encoding="utf-8",
    )
    (tmp / "snapshots").mkdir(exist_ok=True)
    return load_config(path)


def email_dest(server: Any, **extra: str) -> str:
    options = "".join(f"\n{k} = {v}" for k, v in extra.items())
    return f"""
[[alerts]]
name = "ops-mail"
kind = "email"
smtp_host = "127.0.0.1"
smtp_port = {server.port}
ca_file = "{server.ca_file}"
username = "ALERT_SMTP_USER"
password = "ALERT_SMTP_PASSWORD"
sender = "broadcaster@example.org"
to = ["duty@example.org", "lead@example.org"]{options}
"""


WEBHOOK = """
[[alerts]]
name = "ops-hook"
kind = "webhook"
url = "ALERT_WEBHOOK_URL"
headers = { Authorization = "ALERT_WEBHOOK_AUTH" }
"""


@pytest.fixture
def secrets(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    values = {
        "ALERT_SMTP_USER": SMTP_USER,
        "ALERT_SMTP_PASSWORD": SMTP_PASSWORD,
        "ALERT_WEBHOOK_AUTH": "Bearer webhook-secret-value-42",
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


def alerter(config: Config, clock: FeedClock) -> tuple[Alerter, Store]:
    store = Store(config.database_url)
    return Alerter(config, store, clock=clock, dry_run=True), store


def clock_at_night(config: Config, hours: float = 1.0) -> FeedClock:
    store = Store(config.database_url)
    try:
        started = State(store).night_started()
    finally:
        store.close()
    assert started is not None
    return FeedClock(started + timedelta(hours=hours))


def test_held_posts_reach_email_and_webhook_once_with_the_command(
    tmp_path, night, secrets, monkeypatch
):
    with smtp_server(tmp_path) as smtp, webhook_server() as hook:
        monkeypatch.setenv("ALERT_WEBHOOK_URL", hook.url)
        config = write(tmp_path, night, email_dest(smtp) + WEBHOOK)
        clock = clock_at_night(config)
        alerts, store = alerter(config, clock)
        try:
            sent = alerts.run_once()
            assert sorted(d for d, _ in sent) == ["ops-hook", "ops-mail"]
            (mail,) = smtp.mailbox.messages
            assert mail["To"] == "duty@example.org, lead@example.org"
            assert "4 posts held by a plausibility or feed-text gate" in mail["Subject"]
            assert "[broadcaster DRY RUN]" in mail["Subject"]
            body = mail.get_payload(decode=True).decode().replace("\r\n", "\n")
            held = store.held(HoldKind.GATE)
            assert f"#{held[0].id} " in body
            assert "`broadcaster outbox approve ID`" in body
            assert f"held: {' '.join(str(r.id) for r in held)}" in body
            assert f"Console: https://console.example.org/posts/{held[0].id}" in body
            assert "Fictional General Election (TEST)" in body
            assert smtp.mailbox.tls_at_login == [True]  # STARTTLS before the password
            (headers, payload) = hook.received[0]
            assert headers["Authorization"] == "Bearer webhook-secret-value-42"
            assert payload["kind"] == "held"
            assert payload["text"] == body.rstrip("\n")
            assert payload["console"] == f"https://console.example.org/posts/{held[0].id}"
            # Nothing new: nothing sent, now or after a restart (the records are in the database).
            assert alerts.run_once() == []
            again, store2 = alerter(config, clock)
            assert again.run_once() == []
            store2.close()
            assert len(smtp.mailbox.messages) == 1
            assert len(hook.received) == 1
        finally:
            alerts.close()
            store.close()


def test_a_new_fact_waits_for_the_interval(tmp_path, night, secrets, monkeypatch):
    with webhook_server() as hook:
        monkeypatch.setenv("ALERT_WEBHOOK_URL", hook.url)
        config = write(tmp_path, night, WEBHOOK, "held = { every = 600 }")
        clock = clock_at_night(config)
        alerts, store = alerter(config, clock)
        try:
            assert len(alerts.run_once()) == 1
            sent_row = store.held(HoldKind.GATE)[0]
            # Another post held for another reason (a template): a new subject, sent at once.
            other = next(r for r in store.posts_in_state("sent"))
            store.mark_held(other.id, HoldKind.TEMPLATE, "templates/en/x/called.j2:3: boom")
            (delivery,) = alerts.run_once()
            assert delivery[1].subject == "template"
            assert "fix the template" in delivery[1].resolve
            # Yet another gate-held post: news, but the gate alert went out less than 600 s ago.
            third = next(r for r in store.posts_in_state("sent") if r.id != other.id)
            store.mark_held(third.id, HoldKind.GATE, "check votes_decreased")
            clock.advance_to(clock.now() + timedelta(seconds=300))
            assert alerts.run_once() == []
            clock.advance_to(clock.now() + timedelta(seconds=301))
            (late,) = alerts.run_once()
            assert late[1].subject == "gate"
            assert f"#{third.id} " in "\n".join(late[1].details)
            assert f"#{sent_row.id} " in "\n".join(late[1].details)
        finally:
            alerts.close()
            store.close()


def test_a_failing_destination_is_retried_without_repeating_the_others(
    tmp_path, night, secrets, monkeypatch
):
    with smtp_server(tmp_path) as smtp, webhook_server() as hook:
        monkeypatch.setenv("ALERT_WEBHOOK_URL", hook.url)
        hook.statuses = [500]
        config = write(tmp_path, night, email_dest(smtp) + WEBHOOK)
        clock = clock_at_night(config)
        alerts, store = alerter(config, clock)
        try:
            assert [d for d, _ in alerts.run_once()] == ["ops-mail"]
            assert alerts.run_once() == []  # the webhook waits before it is tried again
            clock.advance_to(clock.now() + timedelta(seconds=31))
            assert [d for d, _ in alerts.run_once()] == ["ops-hook"]
            assert len(smtp.mailbox.messages) == 1
            assert len(hook.received) == 2  # the refused one, then the one it took
        finally:
            alerts.close()
            store.close()


def test_nobody_reached_means_still_news(tmp_path, night, secrets, monkeypatch):
    monkeypatch.setenv("ALERT_WEBHOOK_URL", "http://127.0.0.1:9/nothing-listens")
    config = write(tmp_path, night, WEBHOOK)
    clock = clock_at_night(config)
    alerts, store = alerter(config, clock)
    try:
        assert alerts.run_once() == []
        assert State(store).alert_records() == {}  # not recorded as said
    finally:
        alerts.close()
        store.close()


def only(config_alerts: list[tuple[str, Alert]], kind: str) -> list[Alert]:
    return [a for _, a in config_alerts if a.kind == kind]


def test_system_pauses_alert_with_the_remedy_operator_pauses_do_not(
    tmp_path, night, secrets, monkeypatch
):
    with webhook_server() as hook:
        monkeypatch.setenv("ALERT_WEBHOOK_URL", hook.url)
        config = write(tmp_path, night, WEBHOOK)
        clock = clock_at_night(config)
        alerts, store = alerter(config, clock)
        state = State(store)
        try:
            state.set_pause(
                "x-demo",
                PauseRecord(
                    "re-authorise the account: x post: HTTP 401; run `broadcaster auth x "
                    "--account x-demo` (it resumes the account)",
                    by="broadcaster",
                ),
            )
            state.set_pause("youtube-demo", PauseRecord("paused by an operator", by="vera"))
            (paused,) = only(alerts.run_once(), "paused")
            assert paused.subject == "x-demo"
            assert paused.resolve == "`broadcaster auth x --account x-demo`"
            assert paused.page == "/accounts"
            # Another cause is news once the interval has passed; the breaker pausing again
            # with a higher count is not.
            state.set_pause(
                "x-demo",
                PauseRecord(
                    "circuit breaker: 5 failures in a row; `broadcaster resume x-demo`",
                    by="broadcaster",
                    until=clock.now() + timedelta(seconds=900),
                ),
            )
            assert only(alerts.run_once(), "paused") == []  # news, within the 600 s
            clock.advance_to(clock.now() + timedelta(seconds=601))
            (breaker,) = only(alerts.run_once(), "paused")
            assert "tries again by itself" in breaker.summary
            state.set_pause(
                "x-demo",
                PauseRecord(
                    "circuit breaker: 6 failures in a row; `broadcaster resume x-demo`",
                    by="broadcaster",
                ),
            )
            clock.advance_to(clock.now() + timedelta(hours=1))
            assert only(alerts.run_once(), "paused") == []
        finally:
            alerts.close()
            store.close()


def test_posts_in_doubt_say_how_to_settle_them(tmp_path, night, secrets, monkeypatch):
    with webhook_server() as hook:
        monkeypatch.setenv("ALERT_WEBHOOK_URL", hook.url)
        config = write(tmp_path, night, WEBHOOK, "held = { enabled = false }")
        clock = clock_at_night(config)
        alerts, store = alerter(config, clock)
        try:
            row = next(r for r in store.posts_in_state("sent") if r.account == "tiktok-demo")
            store.mark_held(row.id, HoldKind.IN_DOUBT, "in doubt (timeout): tiktok cannot look")
            (doubt,) = [a for _, a in alerts.run_once()]
            assert doubt.kind == "in_doubt"
            assert f"#{row.id} tiktok-demo (tiktok)" in doubt.details[0]
            assert f"`broadcaster outbox mark-sent {row.id} --url URL`" in doubt.resolve
            assert f"`broadcaster outbox approve {row.id}`" in doubt.resolve
            assert hook.received[0][1]["console"].endswith(f"/posts/{row.id}")
        finally:
            alerts.close()
            store.close()


def test_the_feed_quiet_or_rejected(tmp_path, half_night, secrets, monkeypatch):
    with webhook_server() as hook:
        monkeypatch.setenv("ALERT_WEBHOOK_URL", hook.url)
        config = write(
            tmp_path,
            half_night,
            WEBHOOK,
            "held = { enabled = false }\nbudget = { enabled = false }\n"
            "feed_quiet = { minutes = 20 }\nfeed_rejected = { times = 3 }",
        )
        clock = clock_at_night(config)
        alerts, store = alerter(config, clock)
        state = State(store)
        try:
            assert alerts.run_once() == []  # the newest snapshot is seen from now on
            clock.advance_to(clock.now() + timedelta(minutes=19))
            assert alerts.run_once() == []
            state.set_feed_health(
                {
                    "started_at": 0,
                    "failures": 3,
                    "last_outcome": "rejected",
                    "last_error": "snapshot 14.json: contests[2].votes: expected a count",
                    "rejected": "snapshot 14.json: contests[2].votes: expected a count",
                }
            )
            clock.advance_to(clock.now() + timedelta(minutes=2))
            found = {a.kind: a for _, a in alerts.run_once()}
            assert set(found) == {"feed_quiet", "feed_rejected"}
            assert found["feed_quiet"].summary == "no new snapshot for 21 min"
            assert "last poll: rejected (snapshot 14.json" in found["feed_quiet"].details[0]
            assert "`broadcaster feed check snapshots`" in found["feed_rejected"].resolve
            assert found["feed_rejected"].summary.endswith("rejected 3 polls in a row")
        finally:
            alerts.close()
            store.close()


def test_a_certified_feed_falls_silent_without_an_alert(tmp_path, night, secrets, monkeypatch):
    monkeypatch.setenv("ALERT_WEBHOOK_URL", "http://127.0.0.1:9/unused")
    config = write(tmp_path, night, WEBHOOK, "held = { enabled = false }")
    clock = clock_at_night(config)
    alerts, store = alerter(config, clock)
    try:
        alerts.current(clock.now())
        clock.advance_to(clock.now() + timedelta(hours=3))
        assert [a.kind for a in alerts.current(clock.now())] == []
    finally:
        alerts.close()
        store.close()


def test_a_budget_spent_early(tmp_path, night, secrets, monkeypatch):
    with webhook_server() as hook:
        monkeypatch.setenv("ALERT_WEBHOOK_URL", hook.url)
        config = write(tmp_path, night, WEBHOOK, "held = { enabled = false }")
        clock = clock_at_night(config, hours=2)
        alerts, store = alerter(config, clock)
        state = State(store)
        try:
            held = store.held(HoldKind.GATE)[0]
            from broadcaster.outbox.operations import approve

            approve(store, [held.id], actor="test")  # a post due now for that account
            state.set_waiting(
                held.account,
                Waiting("100 posts per 24 h reached", clock.now() + timedelta(minutes=90)),
            )
            (budget,) = only(alerts.run_once(), "budget")
            assert budget.subject == held.account
            assert "wait 90 min for its budget" in budget.summary
            assert "`quota`" in budget.resolve
            clock.advance_to(clock.now() + timedelta(hours=10))  # the night is over: no news
            assert all(a.kind != "budget" for a in alerts.current(clock.now()))
        finally:
            alerts.close()
            store.close()


def test_live_destination_down_and_the_standby_hook(tmp_path, night, secrets, monkeypatch):
    with webhook_server() as hook:
        monkeypatch.setenv("ALERT_WEBHOOK_URL", hook.url)
        config = write(
            tmp_path,
            night,
            WEBHOOK + "\n[live]\nenabled = true\n",
            "held = { enabled = false }\nlive_down = { seconds = 60 }",
        )
        clock = FeedClock(clock_at_night(config).now())
        alerts, store = alerter(config, clock)
        state = State(store)
        now = clock.now().timestamp()
        try:
            state.set_live_status(
                {
                    "updated_at": now - 2,
                    "running": True,
                    "destinations": {
                        "yt": {"kind": "youtube", "state": "live", "since": now - 900},
                        "rtmp-backup": {
                            "kind": "rtmp",
                            "state": "reconnecting",
                            "since": now - 120,
                            "reason": "connection refused",
                        },
                        "fb": {"kind": "facebook", "state": "failed", "since": now - 10},
                    },
                }
            )
            alerts.push(standby_took_over("night-b", previous="night-a", epoch=7))
            found = {a.subject: a for _, a in alerts.run_once()}
            assert set(found) == {"rtmp-backup", "night-b"}  # fb: down 10 s only, yt: live
            assert found["rtmp-backup"].summary == (
                "live destination rtmp-backup (rtmp) reconnecting for 120 s"
            )
            assert found["night-b"].summary == "the standby night-b took over from night-a " + (
                "(lease epoch 7)"
            )
        finally:
            alerts.close()
            store.close()


def test_alerts_never_carry_a_secret(tmp_path, night, secrets, monkeypatch):
    with webhook_server() as hook:
        monkeypatch.setenv("ALERT_WEBHOOK_URL", hook.url)
        config = write(tmp_path, night, WEBHOOK, "held = { enabled = false }")
        clock = clock_at_night(config)
        alerts, store = alerter(config, clock)
        leaked = "EAAG-page-token-that-leaked-9f8e7d"
        register_secret(leaked)
        try:
            State(store).set_pause(
                "facebook-demo",
                PauseRecord(f"facebook post: error 190 ({leaked}) `broadcaster resume x`"),
            )
            alerts.run_once()
            (_, payload) = hook.received[0]
            assert leaked not in str(payload)
            assert "[redacted]" in payload["text"]
            for value in secrets.values():
                assert value not in str(payload)
        finally:
            alerts.close()
            store.close()


def test_email_never_goes_in_clear_to_a_relay_without_starttls(tmp_path, night, secrets):
    with smtp_server(tmp_path, starttls=False) as smtp:
        config = write(tmp_path, night, email_dest(smtp))
        dest = EmailDestination(config.alerts[0], Secrets(), smtp.ca_file)
        ctx = Context("Election", "LIVE")
        with pytest.raises(AlertNotSent, match="does not offer STARTTLS"):
            dest.send(Alert("held", "gate", "1 post held"), ctx)
        assert smtp.mailbox.messages == []
        assert smtp.mailbox.logins == []  # the password never crossed in clear


def test_email_check_logs_in_over_starttls(tmp_path, night, secrets):
    with smtp_server(tmp_path) as smtp:
        config = write(tmp_path, night, email_dest(smtp))
        dest = EmailDestination(config.alerts[0], Secrets(), smtp.ca_file)
        assert dest.check() == (
            f"SMTP 127.0.0.1:{smtp.port} answers over STARTTLS; alerts go to "
            "duty@example.org, lead@example.org"
        )
        assert smtp.mailbox.tls_at_login == [True]
        # A certificate from another CA is refused: no password to an impostor.
        other = EmailDestination(config.alerts[0], Secrets(), None)
        with pytest.raises(AlertNotSent, match="SSLCertVerificationError"):
            other.check()


@pytest.mark.parametrize(
    ("alerts", "words"),
    [
        (
            '[[alerts]]\nname = "leak"\nkind = "telegram"\nbot_token = "ALERT_BOT"\n'
            'chat = "-1001234567890"\n',
            "is an [[accounts]] destination",
        ),
        (
            '[[alerts]]\nname = "public"\nkind = "telegram"\nbot_token = "ALERT_BOT"\n'
            'chat = "@nec_results"\n',
            "alerts[0] (public).chat",
        ),
        (
            '[[alerts]]\nname = "clear"\nkind = "email"\nsmtp_host = "mail.example.org"\n'
            'sender = "a@example.org"\nto = ["b@example.org"]\nsecurity = "none"\n',
            "allowed only on loopback",
        ),
        ('[[alerts]]\nname = "hook"\nkind = "webhook"\n', "needs url"),
        (
            '[[alerts]]\nname = "hook"\nkind = "webhook"\nurl = "https://hooks.example/x"\n',
            "alerts[0] (hook).url",
        ),
        (
            '[[alerts]]\nname = "tg"\nkind = "telegram"\nbot_token = "B"\nchat = "-1"\n'
            'api_base = "http://relay.example.org"\n',
            "alerts[0] (tg).api_base",
        ),
    ],
)
def test_configuration_refuses_unsafe_destinations(tmp_path, night, alerts, words):
    telegram = (
        '\n[[accounts]]\nname = "tg-main"\nplatform = "telegram"\ndry_run = true\n'
        'bot_token = "TG_TOKEN"\nchannel = "-1001234567890"\n'
    )
    with pytest.raises(ConfigError) as refused:
        write(tmp_path, night, alerts + telegram)
    assert words in str(refused.value)


def test_alerts_test_command_tries_every_destination(tmp_path, night, secrets, cli):
    with smtp_server(tmp_path) as smtp, webhook_server() as hook:
        config = write(tmp_path, night, email_dest(smtp) + WEBHOOK)
        env = {**secrets, "ALERT_WEBHOOK_URL": hook.url}
        done = cli("alerts", "test", "--config", str(tmp_path / "c.toml"), env=env)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "sent ops-mail (email)" in done.stdout
        assert "sent ops-hook (webhook)" in done.stdout
        assert "a test alert" in smtp.mailbox.messages[0]["Subject"]
        assert hook.received[0][1]["kind"] == "test"
        hook_down = {**env, "ALERT_WEBHOOK_URL": "http://127.0.0.1:9/down"}
        failed = cli("alerts", "test", "--config", str(tmp_path / "c.toml"), env=hook_down)
        assert failed.returncode == 1
        assert "FAIL ops-hook (webhook): webhook ops-hook: ConnectionError" in failed.stdout
        assert config.alerts[0].name == "ops-mail"


def test_golive_checks_each_destination_without_sending(tmp_path, night, secrets, monkeypatch):
    from broadcaster.runtime import golive

    with smtp_server(tmp_path) as smtp:
        monkeypatch.delenv("ALERT_WEBHOOK_URL", raising=False)
        config = write(tmp_path, night, email_dest(smtp) + WEBHOOK)
        mail, hook = list(golive.alerts(config))
        assert mail.ok
        assert "answers over STARTTLS" in mail.detail
        assert not hook.ok
        assert "ALERT_WEBHOOK_URL is not set" in hook.detail
        assert smtp.mailbox.messages == []


def test_the_daemon_alerts_once_across_a_restart(tmp_path, secrets, monkeypatch):
    """`broadcaster run` checks alerts every cycle: the night's gate hold reaches the webhook
    once, and a restarted daemon does not say it again."""
    shutil.copytree(DEMO, tmp_path / "feed")
    with webhook_server() as hook:
        monkeypatch.setenv("ALERT_WEBHOOK_URL", hook.url)
        cfg = write_config(
            tmp_path / "c.toml",
            source="feed",
            gates='votes_decreased = "hold"',
            extra=WEBHOOK + "\n[alerting]\nfeed_quiet = { enabled = false }\n",
        )

        def run_daemon() -> subprocess.Popen[str]:
            log = (tmp_path / f"daemon-{len(list(tmp_path.glob('daemon-*')))}.log").open("w")
            return subprocess.Popen(
                [
                    *broadcaster_cmd(),
                    "--log-format",
                    "json",
                    "run",
                    "--config",
                    str(cfg),
                    "--dry-run",
                ],
                cwd=tmp_path,
                stdout=subprocess.DEVNULL,
                stderr=log,
                text=True,
                start_new_session=True,
            )

        def held_alerts() -> list[dict]:
            return [body for _, body in hook.received if body["kind"] == "held"]

        first = run_daemon()
        try:
            wait_for(lambda: len(held_alerts()) == 1, timeout=120)
            first.send_signal(signal.SIGTERM)
            assert first.wait(timeout=60) == 0
        finally:
            if first.poll() is None:
                os.killpg(first.pid, signal.SIGKILL)
                first.wait()
        (alert,) = held_alerts()
        assert "held by a plausibility or feed-text gate" in alert["summary"]
        assert alert["mode"] == "DRY RUN"
        second = run_daemon()
        try:
            logs = tmp_path / "daemon-1.log"
            wait_for(lambda: "starting: feed" in logs.read_text(), timeout=60)
            time.sleep(2)  # ten alert cycles at the test's 0.2 s poll interval
        finally:
            second.send_signal(signal.SIGTERM)
            try:
                second.wait(timeout=60)
            finally:
                if second.poll() is None:
                    os.killpg(second.pid, signal.SIGKILL)
                    second.wait()
        assert len(held_alerts()) == 1, json.dumps(held_alerts())[:500]


def test_pacing_is_no_budget_alert(tmp_path, night, secrets, monkeypatch):
    monkeypatch.setenv("ALERT_WEBHOOK_URL", "http://127.0.0.1:9/unused")
    config = write(tmp_path, night, WEBHOOK, "held = { enabled = false }")
    clock = clock_at_night(config, hours=2)
    alerts, store = alerter(config, clock)
    try:
        from broadcaster.outbox.operations import approve

        held = store.held(HoldKind.GATE)[0]
        approve(store, [held.id], actor="test")
        State(store).set_waiting(
            held.account,
            Waiting(
                "pacing: one post every 32 min, 1 at most at once", clock.now() + timedelta(hours=2)
            ),
        )
        assert alerts.current(clock.now()) == []
    finally:
        alerts.close()
        store.close()
