"""Shared fixtures. Tests read the official sample feeds from ../shared/feeds/ and skip cleanly
where that folder is absent (a user's fresh clone)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_FEEDS = Path(os.environ.get("BROADCASTER_SHARED_FEEDS", ROOT.parent / "shared" / "feeds"))
DEMO = ROOT / "broadcaster" / "demo" / "snapshots"


def shared_feed(name: str) -> Path:
    path = SHARED_FEEDS / name
    if not path.is_file():
        pytest.skip(f"sample feed {name} not available (../shared/feeds absent)")
    return path


@pytest.fixture
def demo_files() -> list[Path]:
    return sorted(DEMO.glob("*.json"))


def broadcaster_cmd() -> list[str]:
    exe = shutil.which("broadcaster", path=str(Path(sys.executable).parent))
    return [exe] if exe else [sys.executable, "-m", "broadcaster"]


@pytest.fixture
def run_cli() -> Callable[..., subprocess.CompletedProcess[str]]:
    def run(*args: str, timeout: float = 120, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "COLUMNS": "120", "PYTHONUNBUFFERED": "1"}
        return subprocess.run(
            [*broadcaster_cmd(), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            check=False,
            **kwargs,
        )

    return run


def write_config(
    path: Path,
    *,
    source: str,
    extra: str = "",
    accounts: str | None = None,
    cards: bool = False,
    dispatch: str = "",
    gates: str = 'votes_decreased = "warn"',
) -> Path:
    """A small configuration file for tests (dry-run accounts on the four platforms). Cards
    are off unless asked for: drawing hundreds of images would only slow the suite down."""
    # Generous quotas: most tests are about what is posted, not when (test_delivery is).
    accounts = accounts or "".join(
        f'\n[[accounts]]\nname = "{p}-test"\nplatform = "{p}"\ndry_run = true\n'
        f"quota = [{{posts = 100000, seconds = 86400}}]\n"
        for p in ("facebook", "youtube", "tiktok", "x")
    )
    path.write_text(
        f"""
[election]
timezone = "Asia/Bangkok"

[feed]
source = {json.dumps(source)}
poll_interval = 0.2

[dispatch]
interval = 0.2
{dispatch}

[database]
url = "sqlite:///state.db"

[output]
posts = "posts.jsonl"

[cards]
enabled = {"true" if cards else "false"}

[gates]
# The demo night's correction lowers a count, which holds it by default (test_gates covers
# that); most tests are about what flows through, so by default the check only warns here.
{gates}
{extra}
{accounts}
""",
        encoding="utf-8",
    )
    return path


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
