"""A post as the pipeline hands it to the outbox: its state, why it is held, and its text."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class PostState(StrEnum):
    """Where a post is in the outbox: pending -> (held) -> sending -> sent, or failed,
    cancelled, or superseded by a newer post about the same thing."""

    PENDING = "pending"
    HELD = "held"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    CANCELLED = "cancelled"
    SUPERSEDED = "superseded"


ALL_STATES: tuple[PostState, ...] = tuple(PostState)


class HoldKind(StrEnum):
    """Why a held post waits; the human reason is in `hold_reason`."""

    TEMPLATE = "template"  # its template failed: released by fixing the template
    GATE = "gate"  # a plausibility or feed-text gate: needs an operator who names the finding
    APPROVAL = "approval"  # the account requires approval of every post
    IN_DOUBT = "in_doubt"  # it may be on the platform: check, then mark sent or approve
    OPERATOR = "operator"  # held by an operator
    CARD = "card"  # its result card could not be drawn (the platform needs one)
    SECRET = "secret"  # noqa: S105 - its text contains a secret value: never sent
    TEST_DATA = "test_data"  # test data bound for a real account
    ACCOUNT = "account"  # its account is no longer configured


@dataclass(frozen=True, slots=True)
class NewPost:
    """A post about to enter the outbox. `text` is None for a row held before it could be
    rendered, a cancelled one, or a pending one whose text is rendered when it is sent."""

    idempotency_key: str
    event_key: str
    account: str
    platform: str
    text: str | None
    media: tuple[str, ...]
    dry_run: bool
    state: str = PostState.PENDING
    hold_reason: str | None = None
    title: str | None = None
    thread_parent: str | None = None  # idempotency key of the previous part of a thread
    wants_card: bool = False
    hold_kind: HoldKind | None = None
    gate_reason: str | None = None
