"""Which events become posts on which accounts."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from broadcaster.config import AccountConfig
from broadcaster.events import Event


@dataclass(frozen=True, slots=True)
class PostIntent:
    event: Event
    account: AccountConfig

    @property
    def idempotency_key(self) -> str:
        return idempotency_key(self.event.key, self.account.platform, self.account.name)


def idempotency_key(event_key: str, platform: str, account: str) -> str:
    """Unique per (event, platform, account): the database refuses a second post with it."""
    return f"{event_key}|{platform}|{account}"


def plan(events: Iterable[Event], accounts: Sequence[AccountConfig]) -> list[PostIntent]:
    """One post per event per account that wants that kind of event, most urgent first."""
    intents = [
        PostIntent(event, account)
        for event in sorted(events, key=lambda e: e.priority)
        for account in accounts
        if account.wants(event.kind)
    ]
    return intents
