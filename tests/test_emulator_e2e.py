"""The daemon against the platform emulator, over real HTTP, through each real client library
(facebook-sdk, google-api-python-client, requests, tweepy), with faults injected; and no secret
anywhere it should not be."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest
import requests

from broadcaster.rehearsal.emulator import Emulator, EmulatorServer, Limits, parse_faults
from tests.conftest import DEMO, broadcaster_cmd

SECRETS = {
    "FB_PAGE_TOKEN": "fb-page-token-SECRET-1",
    "YT_CLIENT_ID": "yt-client-id-SECRET-2",
    "YT_CLIENT_SECRET": "yt-client-secret-SECRET-3",
    "TT_CLIENT_KEY": "tt-client-key-SECRET-4",
    "TT_CLIENT_SECRET": "tt-client-secret-SECRET-5",
    "X_CK": "x-consumer-key-SECRET-6",
    "X_CS": "x-consumer-secret-SECRET-7",
    "X_AT": "x-access-token-SECRET-8",
    "X_AS": "x-access-secret-SECRET-9",
}
TOKENS = {
    "yt": {"refresh_token": "yt-refresh-SECRET-10"},
    "tt": {
        "access_token": "tt-access-SECRET-11",
        "refresh_token": "tt-refresh-SECRET-12",
        "expires_at": time.time() + 86400,
    },
}


def config(tmp: Path, base: str) -> Path:
    (tmp / "tokens.json").write_text(json.dumps(TOKENS))
    os.chmod(tmp / "tokens.json", 0o600)
    cfg = tmp / "c.toml"
    cfg.write_text(f"""
[election]
timezone = "Asia/Bangkok"

[feed]
source = "feed"
poll_interval = 0.1

[dispatch]
interval = 0.2

[database]
url = "sqlite:///state.db"

[secrets]
tokens = "tokens.json"

[gates]
votes_decreased = "warn"  # the demo's correction lowers a count; see test_gates

[[accounts]]
name = "fb"
platform = "facebook"
dry_run = false
allow_test_posts = true  # the demo night is test data; the emulator is no real account
quota = [{{posts = 10000, seconds = 86400}}]
events = ["called", "corrected", "majority"]
page_id = "100000000000001"
page_token = "FB_PAGE_TOKEN"
api_base = "{base}"
timeout = 2

[[accounts]]
name = "yt"
platform = "youtube"
dry_run = false
allow_test_posts = true  # the demo night is test data; the emulator is no real account
quota = [{{posts = 10000, seconds = 86400}}]
events = ["called", "corrected", "majority"]
client_id = "YT_CLIENT_ID"
client_secret = "YT_CLIENT_SECRET"
api_base = "{base}"
timeout = 2

[[accounts]]
name = "tt"
platform = "tiktok"
dry_run = false
allow_test_posts = true  # the demo night is test data; the emulator is no real account
quota = [{{posts = 10000, seconds = 86400}}]
events = ["majority", "tally"]
client_key = "TT_CLIENT_KEY"
client_secret = "TT_CLIENT_SECRET"
privacy_level = "SELF_ONLY"
media_base_url = "{base}/_emulator/media"
media_dir = "public"
status_interval = 0.05
api_base = "{base}"
timeout = 2

[[accounts]]
name = "x"
platform = "x"
dry_run = false
allow_test_posts = true  # the demo night is test data; the emulator is no real account
quota = [{{posts = 10000, seconds = 86400}}]
events = ["called", "corrected", "majority"]
consumer_key = "X_CK"
consumer_secret = "X_CS"
access_token = "X_AT"
access_token_secret = "X_AS"
api_base = "{base}"
timeout = 2
""")
    return cfg


def db_rows(db: Path, sql: str) -> list[tuple]:
    conn = sqlite3.connect(db, timeout=30)
    try:
        return conn.execute(sql).fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        conn.close()


@pytest.fixture
def emulator():
    limits = Limits(x_daily=500, tiktok_daily=50, tiktok_init_per_min=100, facebook_per_hour=1000)
    with EmulatorServer(emulator=Emulator(limits)) as server:
        yield server


def test_daemon_through_the_emulator_with_faults(tmp_path: Path, emulator):
    replay = tmp_path / "feed"
    shutil.copytree(DEMO, replay)
    cfg = config(tmp_path, emulator.url)
    # Every platform drops a connection after accepting a post (close: FIN, reset: RST) and
    # leaves one unanswered (timeout): each post must be looked up, never sent twice.
    faults = (
        "x:429:1,x:reset:1,x:timeout:1,facebook:500:1,facebook:close:1,facebook:reset:1,"
        "youtube:close:1,youtube:reset:1,youtube:503:1,youtube:chat_ended:1,"
        "youtube:token_expired:1,tiktok:code=internal_error:1,tiktok:503:1,tiktok:token_expired:1"
    )
    requests.post(f"{emulator.url}/_emulator/faults", json={"spec": faults}, timeout=5)
    log_path = tmp_path / "daemon.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [
                *broadcaster_cmd(),
                "--log-format",
                "json",
                "--log-level",
                "DEBUG",
                "run",
                "--config",
                str(cfg),
            ],
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=log,
            env={**os.environ, **SECRETS},
        )
        try:
            db = tmp_path / "state.db"
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                done = db_rows(db, "select count(*) from snapshots")
                open_posts = db_rows(
                    db, "select count(*) from posts where state not in ('sent', 'superseded')"
                )
                total = db_rows(db, "select count(*) from posts")
                if done and done[0][0] >= 15 and total[0][0] and open_posts[0][0] == 0:
                    break
                time.sleep(0.3)
            else:
                states = db_rows(
                    db, "select account, state, last_error from posts where state != 'sent'"
                )
                raise AssertionError(f"not all posts were sent: {states}")
        finally:
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=30)
    assert code == 0, log_path.read_text()[-3000:]

    received = requests.get(f"{emulator.url}/_emulator/posts", timeout=5).json()
    assert not received["pending_faults"], "every injected fault was exercised"
    posts = received["posts"]
    by_platform = Counter(p["platform"] for p in posts)
    sent = dict(
        db_rows(db, "select platform, count(*) from posts where state = 'sent' group by platform")
    )
    assert by_platform == Counter(sent), (by_platform, sent)
    # Exactly once: no text twice on a platform (the timeouts were looked up, not re-sent).
    for platform in ("facebook", "youtube", "x", "tiktok"):
        texts = [p["text"] for p in posts if p["platform"] == platform]
        assert len(texts) == len(set(texts)), f"duplicate post on {platform}"
    ids = {p["id"] for p in posts}
    platform_ids = [
        r[0] for r in db_rows(db, "select platform_post_id from posts where state = 'sent'")
    ]
    for pid in platform_ids:
        assert pid.split(":")[-1] in ids or pid in ids
    # 15 seats called + 1 correction + 1 majority on facebook, youtube and x; tiktok: tallies.
    assert sent["facebook"] == sent["x"] == sent["youtube"] == 17
    assert all(
        p["media"] and p["media"][0].endswith(".jpg") for p in posts if p["platform"] == "tiktok"
    )
    assert all(p["title"] for p in posts if p["platform"] == "tiktok")

    # No secret in the logs, the database, the posts or the cards' folder names.
    secrets = [
        *SECRETS.values(),
        "tt-access-SECRET-11",
        "tt-refresh-SECRET-12",
        "yt-refresh-SECRET-10",
    ]
    refreshed = json.loads((tmp_path / "tokens.json").read_text())["tt"]
    secrets += [refreshed["access_token"], refreshed["refresh_token"]]
    assert refreshed["access_token"] != "tt-access-SECRET-11", "the TikTok token was refreshed"
    blobs = {
        "log": log_path.read_bytes(),
        "db": b"".join(p.read_bytes() for p in tmp_path.glob("state.db*")),
    }
    for name, blob in blobs.items():
        for secret in secrets:
            assert secret.encode() not in blob, f"{secret} found in the {name}"
    assert oct((tmp_path / "tokens.json").stat().st_mode & 0o777) == "0o600"


def test_emulator_binds_loopback_and_parses_faults():
    with EmulatorServer() as server:
        assert server.url.startswith("http://127.0.0.1:")
    assert [f.kind for f in parse_faults("x:429:2,tiktok:code=spam_risk_too_many_posts")["x"]] == [
        "429"
    ]
    parsed = parse_faults("youtube:429=30,x:503=0:2,tiktok:code=new_error@502,x:close,x:reset")
    assert (parsed["youtube"][0].kind, parsed["youtube"][0].wait) == ("429", 30.0)
    assert (parsed["x"][0].kind, parsed["x"][0].wait, parsed["x"][0].count) == ("503", 0.0, 2)
    assert (parsed["tiktok"][0].code, parsed["tiktok"][0].status) == ("new_error", 502)
    assert [f.kind for f in parsed["x"][1:]] == ["close", "reset"]
    assert parse_faults("facebook:random=0.2")["facebook"][0].wait == 0.2
    with pytest.raises(ValueError, match="unknown kind"):
        parse_faults("x:explode")
    with pytest.raises(ValueError, match="unknown kind"):
        parse_faults("x:close=3")
    with pytest.raises(ValueError, match="platform:kind"):
        parse_faults("myspace:429")
    with pytest.raises(ValueError, match="a number"):
        parse_faults("facebook:code=rateLimited")
    with pytest.raises(ValueError, match="probability"):
        parse_faults("x:random=2")
