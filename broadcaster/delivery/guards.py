"""Checks made on every post just before it is claimed, in every mode: nothing that must not go
out as it is gets past them, whatever happened since it was planned."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from broadcaster.content.compose import LEAK_REASON, TEST_MARKER
from broadcaster.core.config import AccountConfig
from broadcaster.core.logs import holds_secret
from broadcaster.domain.posts import HoldKind, PostState


@dataclass(frozen=True, slots=True)
class Refusal:
    state: str  # held (an operator may act) or cancelled (never)
    kind: HoldKind
    reason: str


def refusal(row: Any, account: AccountConfig, *, live: bool) -> Refusal | None:
    """Why this post must not go out as it is: test data bound for a real account (`live`), or
    a text carrying a secret value. None when it may go."""
    if row.test_data and live:
        if not account.allow_test_posts:
            return Refusal(
                PostState.CANCELLED,
                HoldKind.TEST_DATA,
                "test data: never posted to a real account (allow_test_posts is off)",
            )
        if row.thread_parent is None and not (row.text or "").startswith(TEST_MARKER):
            return Refusal(
                PostState.HELD,
                HoldKind.TEST_DATA,
                f"test data without the {TEST_MARKER} marker: never posted as real results; "
                "cancel it",
            )
    if holds_secret(row.text) or holds_secret(row.title):
        return Refusal(PostState.HELD, HoldKind.SECRET, LEAK_REASON)
    return None
