"""Shared by the console's tests: the demo night's database, a configuration and users for it,
and logging in through the real login form."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher

from broadcaster.console.users import Role, UserStore
from broadcaster.core.config import CardsConfig, Config
from broadcaster.rehearsal.replay import rehearse
from broadcaster.runtime.configuration import load_config
from tests.conftest import DEMO

# Cheap hashes for tests: the production cost (64 MiB, 3 passes) would only slow the suite.
FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
USERS = {
    "vera": Role.VIEWER,
    "otto": Role.OPERATOR,
    "edda": Role.EDITOR,
    "ada": Role.ADMIN,
}
PASSWORD = "a long test password"
ACCOUNTS = ("facebook-demo", "youtube-demo", "tiktok-demo", "x-demo")

_NIGHTS: dict[str, Path] = {}


def demo_night(folder: Path) -> Path:
    """The bundled fictional night rehearsed once (dry run, no cards) into `folder`; its
    correction is held by the plausibility gate, as on the night."""
    if "db" not in _NIGHTS:
        config = load_config(None)
        config = config.with_overrides(cards=CardsConfig(enabled=False))
        rehearse(config, DEMO, folder)
        _NIGHTS["db"] = folder / "state.db"
    return _NIGHTS["db"]


# Generous login limits by default: tests log in many times from one address.
RELAXED = "login_attempts = 50\nlogin_attempts_per_address = 500"


def config_text(*, console: str = RELAXED, templates: str = "", extra: str = "") -> str:
    accounts = "".join(
        f'[[accounts]]\nname = "{name}"\nplatform = "{name.split("-")[0]}"\ndry_run = true\n'
        for name in ACCOUNTS
    )
    return f"""
[election]
timezone = "Asia/Bangkok"

[feed]
source = "snapshots"
is_test = true

[database]
url = "sqlite:///state.db"

[cards]
enabled = false

[templates]
{templates}

[console]
{console}
{extra}
{accounts}
"""


def make_env(tmp: Path, night_db: Path, **options: Any) -> tuple[Path, Config]:
    """A configuration in `tmp` over a copy of the demo night's database, with one user of
    each role (password PASSWORD)."""
    shutil.copy(night_db, tmp / "state.db")
    path = tmp / "c.toml"
    path.write_text(config_text(**options), encoding="utf-8")
    users = UserStore(tmp / "console-users.json", hasher=FAST_HASHER)
    for name, role in USERS.items():
        users.add(name, role, PASSWORD)
    return path, load_config(path)


def form_token(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, html[:500]
    return match.group(1)


def login(client: Any, name: str, password: str = PASSWORD) -> str:
    """Log in through the form; returns the session's CSRF token."""
    page = client.get("/login")
    answer = client.post(
        "/login",
        data={"csrf": form_token(page.text), "name": name, "password": password, "next": "/"},
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text[:500]
    return session_token(client)


def session_token(client: Any) -> str:
    page = client.get("/accounts")
    match = re.search(r'<meta name="csrf-token" content="([^"]+)">', page.text)
    assert match, page.text[:500]
    return match.group(1)
