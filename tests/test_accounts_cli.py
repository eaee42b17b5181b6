"""`broadcaster doctor` and `broadcaster auth` against the emulator; secrets files and the token
store are private; and a failed credential pauses one account, not the others."""

from __future__ import annotations

import json
import os
import re
import subprocess
import threading
import time
import urllib.request
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from broadcaster.core.secrets import SecretError, Secrets, TokenStore
from broadcaster.rehearsal.emulator import EmulatorServer
from tests.conftest import broadcaster_cmd, invoke

SECRETS = {
    "FB_PAGE_TOKEN": "fb-page-token-value",
    "FB_APP_SECRET": "fb-app-secret-value",
    "YT_ID": "yt-id-value",
    "YT_SECRET": "yt-secret-value",
    "TT_KEY": "tt-key-value",
    "TT_SECRET": "tt-secret-value",
    "X_CK": "x-ck-value",
    "X_CS": "x-cs-value",
    "X_AT": "x-at-value",
    "X_AS": "x-as-value",
}


def write_config(
    tmp: Path, base: str, tokens: dict | None = None, privacy: str = "SELF_ONLY"
) -> Path:
    (tmp / "tokens.json").write_text(json.dumps(tokens or {}))
    os.chmod(tmp / "tokens.json", 0o600)
    cfg = tmp / "c.toml"
    cfg.write_text(f"""
[feed]
source = "feed.json"
[database]
url = "sqlite:///state.db"
[[accounts]]
name = "fb"
platform = "facebook"
dry_run = false
page_id = "100000000000001"
page_token = "FB_PAGE_TOKEN"
app_id = "1234"
app_secret = "FB_APP_SECRET"
api_base = "{base}"
[[accounts]]
name = "yt"
platform = "youtube"
dry_run = false
client_id = "YT_ID"
client_secret = "YT_SECRET"
api_base = "{base}"
[[accounts]]
name = "tt"
platform = "tiktok"
dry_run = false
client_key = "TT_KEY"
client_secret = "TT_SECRET"
privacy_level = "{privacy}"
media_base_url = "{base}/m"
media_dir = "public"
api_base = "{base}"
[[accounts]]
name = "x"
platform = "x"
dry_run = false
consumer_key = "X_CK"
consumer_secret = "X_CS"
access_token = "X_AT"
access_token_secret = "X_AS"
api_base = "{base}"
[[accounts]]
name = "rehearsal"
platform = "x"
""")
    return cfg


def run(
    *args: str, cwd: Path, stdin: str = "", env: dict | None = None
) -> subprocess.CompletedProcess[str]:
    return invoke(*args, cwd=cwd, input=stdin, columns=200, env={**(env or SECRETS)})


def test_doctor_prints_one_line_per_account(tmp_path):
    tokens = {
        "yt": {"refresh_token": "r"},
        "tt": {"access_token": "a", "refresh_token": "b", "expires_at": time.time() + 9999},
    }
    with EmulatorServer() as emu:
        cfg = write_config(tmp_path, emu.url, tokens)
        result = run("doctor", "--config", str(cfg), cwd=tmp_path)
        assert result.returncode == 0, result.stdout + result.stderr
        lines = result.stdout.strip().splitlines()
        assert len(lines) == 5
        assert re.search(r"ok +fb \(facebook\): page 'Emulated Page \(TEST\)'", result.stdout)
        assert re.search(r"ok +yt \(youtube\): live chat chat-1 active", result.stdout)
        assert re.search(r"ok +tt \(tiktok\): creator @emulated_creator ready", result.stdout)
        assert re.search(r"ok +x \(x\): signed in as @emulated_test", result.stdout)
        assert "rehearsal (x): dry run" in result.stdout

        cfg = write_config(tmp_path, emu.url, tokens, privacy="MUTUAL_FOLLOW_FRIENDS")
        missing = {k: v for k, v in SECRETS.items() if k != "X_AS"}
        result = run("doctor", "--config", str(cfg), cwd=tmp_path, env=missing)
        assert result.returncode == 1
        assert "FAIL tt (tiktok)" in result.stdout
        assert "MUTUAL_FOLLOW_FRIENDS not allowed" in result.stdout
        assert "FAIL x (x): SecretError" in result.stdout
        assert "X_AS is not set" in result.stdout
        for value in SECRETS.values():
            assert value not in result.stdout + result.stderr


def test_auth_facebook_and_tiktok_store_tokens(tmp_path):
    with EmulatorServer() as emu:
        cfg = write_config(tmp_path, emu.url)
        result = run(
            "auth",
            "facebook",
            "--account",
            "fb",
            "--config",
            str(cfg),
            cwd=tmp_path,
            stdin="short-lived-user-token\n",
        )
        assert result.returncode == 0, result.stdout + result.stderr
        stored = json.loads((tmp_path / "tokens.json").read_text())
        assert stored["fb"]["page_token"].startswith("page-token-for-")
        result = run(
            "auth",
            "tiktok",
            "--account",
            "tt",
            "--config",
            str(cfg),
            cwd=tmp_path,
            stdin="https://results.example.org/callback\nthe-code\n",
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert "https://www.tiktok.com/v2/auth/authorize/?client_key=tt-key-value" in result.stdout
        stored = json.loads((tmp_path / "tokens.json").read_text())
        assert stored["tt"]["access_token"].startswith("act.emu")
        assert stored["fb"]["page_token"], "other accounts' tokens are kept"
        assert oct((tmp_path / "tokens.json").stat().st_mode & 0o777) == "0o600"


def test_auth_youtube_installed_app_flow(tmp_path, processes):
    with EmulatorServer() as emu:
        cfg = write_config(tmp_path, emu.url)
        proc = processes.start(
            [*broadcaster_cmd(), "auth", "youtube", "--account", "yt", "--config", str(cfg)],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, **SECRETS},
        )
        try:
            lines: list[str] = []

            def read() -> None:
                assert proc.stdout is not None
                lines.extend(iter(proc.stdout.readline, ""))

            reader = threading.Thread(target=read, daemon=True)
            reader.start()
            deadline = time.monotonic() + 30
            url = None
            while time.monotonic() < deadline and url is None:
                url = next(
                    (
                        line.strip()
                        for line in lines
                        if line.startswith("https://accounts.google.com")
                    ),
                    None,
                )
                time.sleep(0.1)
            assert url, lines
            query = parse_qs(urlsplit(url).query)
            assert query["scope"] == ["https://www.googleapis.com/auth/youtube.force-ssl"]
            assert query["access_type"] == ["offline"]
            # The browser approves: Google sends it back to the local redirect with a code.
            redirect = f"{query['redirect_uri'][0]}?code=approved-code&state={query['state'][0]}"
            with urllib.request.urlopen(redirect, timeout=10) as resp:  # noqa: S310 - our local server
                assert resp.status == 200
            assert proc.wait(timeout=30) == 0, lines
        finally:
            processes.kill_all()  # a failed step must not leave it waiting
        stored = json.loads((tmp_path / "tokens.json").read_text())
        assert stored["yt"]["refresh_token"].startswith("1//emu")


def test_secrets_file_must_be_private(tmp_path):
    path = tmp_path / "secrets.toml"
    path.write_text('FB_PAGE_TOKEN = "from-the-file"\n')
    os.chmod(path, 0o644)
    with pytest.raises(SecretError, match=r"readable by others \(mode 644\); run: chmod 600"):
        Secrets(path, environ={}).get("FB_PAGE_TOKEN")
    os.chmod(path, 0o600)
    assert Secrets(path, environ={}).get("FB_PAGE_TOKEN") == "from-the-file"
    assert Secrets(path, environ={"FB_PAGE_TOKEN": "from-env"}).get("FB_PAGE_TOKEN") == "from-env"
    with pytest.raises(SecretError) as info:
        Secrets(path, environ={}).get("NOPE")
    assert "NOPE is not set" in str(info.value)


def test_token_store_writes_atomically_and_privately(tmp_path):
    store = TokenStore(tmp_path / "t.json")
    store.put("a", {"access_token": "one"})
    store.put("b", {"access_token": "two"})
    assert store.get("a") == {"access_token": "one"}
    assert oct((tmp_path / "t.json").stat().st_mode & 0o777) == "0o600"
    assert not list(tmp_path.glob(".tokens-*")), "no temporary file left behind"
