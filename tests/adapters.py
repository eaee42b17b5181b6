"""Helpers for the adapter tests: an account, an environment with stand-in secrets."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from broadcaster.core.clock import FeedClock
from broadcaster.core.config import AccountConfig
from broadcaster.core.secrets import Secrets, TokenStore
from broadcaster.publishers.base import MemoryState, Post, PublisherEnv

NOW = datetime(2030, 7, 28, 14, 0, tzinfo=UTC)


def account(platform: str, **settings: Any) -> AccountConfig:
    return AccountConfig.model_validate(
        {"name": f"{platform}-main", "platform": platform, "dry_run": False, **settings}
    )


class Checkpoints:
    def __init__(self) -> None:
        self.values: dict[int, str] = {}

    def __call__(self, outbox_id: int, value: str) -> None:
        self.values[outbox_id] = value


def env(
    tmp_path: Path, secrets: dict[str, str], tokens: dict[str, dict[str, Any]] | None = None
) -> PublisherEnv:
    store = TokenStore(tmp_path / "tokens.json")
    for name, values in (tokens or {}).items():
        store.put(name, values)
    return PublisherEnv(
        clock=FeedClock(NOW),
        posts_path=tmp_path / "posts.jsonl",
        secrets=Secrets(environ=secrets),
        tokens=store,
        state=MemoryState(),
        checkpoint=Checkpoints(),
    )


def post(
    text: str = "[TEST] Ana wins Northbay",
    *,
    media: tuple[str, ...] = (),
    attempt: int = 1,
    reply_to: str | None = None,
    title: str | None = None,
    checkpoint: str | None = None,
) -> Post:
    return Post(
        outbox_id=7,
        idempotency_key="contest/D01/called|x|x-main",
        account="main",
        platform="x",
        event_key="contest/D01/called",
        event_kind="called",
        contest_id="D01",
        text=text,
        created_at=NOW,
        media=media,
        attempt=attempt,
        title=title,
        reply_to=reply_to,
        checkpoint=checkpoint,
    )
