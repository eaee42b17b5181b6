"""What operators do to the outbox and the accounts, through the database.

Every action is one small transaction on the same tables the daemon uses, so it works while the
daemon runs and takes effect on its next dispatch. Only transitions that are safe are allowed:
nothing that is being sent or has been sent can be held, approved, retried or cancelled.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update

from broadcaster.store import PostState, Store, events, posts

PAUSED = "paused:"
FAILURES = "failures:"


class OperatorError(Exception):
    """The action does not apply (unknown post, wrong state); the message says why."""


@dataclass(frozen=True, slots=True)
class Change:
    post_id: int
    before: str
    after: str


def _now() -> datetime:
    return datetime.now(UTC)


def list_posts(
    store: Store, *, state: str | None = None, platform: str | None = None, limit: int = 200
) -> list[Any]:
    query = select(posts).order_by(posts.c.id.desc()).limit(limit)
    if state:
        query = query.where(posts.c.state == state)
    if platform:
        query = query.where(posts.c.platform == platform)
    with store.engine.connect() as conn:
        return list(reversed(conn.execute(query).all()))


def show_post(store: Store, post_id: int) -> tuple[Any, Any]:
    with store.engine.connect() as conn:
        row = conn.execute(select(posts).where(posts.c.id == post_id)).first()
        if row is None:
            raise OperatorError(f"no post #{post_id}")
        event = conn.execute(select(events).where(events.c.id == row.event_id)).first()
    return row, event


def _transition(
    store: Store,
    ids: Sequence[int] | None,
    allowed: Sequence[str],
    target: str,
    values: dict[str, Any],
    what: str,
) -> list[Change]:
    """Move posts in `allowed` states to `target`; ids None means every post in those states."""
    changes: list[Change] = []
    with store.engine.begin() as conn:
        if ids is None:
            rows = conn.execute(
                select(posts.c.id, posts.c.state).where(posts.c.state.in_(allowed))
            ).all()
        else:
            rows = conn.execute(
                select(posts.c.id, posts.c.state).where(posts.c.id.in_(list(ids)))
            ).all()
            found = {r.id for r in rows}
            missing = [i for i in ids if i not in found]
            if missing:
                raise OperatorError(f"no post #{missing[0]}")
            wrong = [r for r in rows if r.state not in allowed]
            if wrong:
                raise OperatorError(
                    f"post #{wrong[0].id} is {wrong[0].state}; only {' or '.join(allowed)} "
                    f"posts can be {what}"
                )
        for row in rows:
            result = conn.execute(
                update(posts)
                .where(posts.c.id == row.id)
                .where(posts.c.state == row.state)  # unchanged since we looked
                .values(state=target, updated_at=_now(), **values)
            )
            if result.rowcount:
                changes.append(Change(row.id, row.state, target))
    return changes


def hold(store: Store, ids: Sequence[int] | None) -> list[Change]:
    return _transition(
        store,
        ids,
        [PostState.PENDING],
        PostState.HELD,
        {"hold_reason": "held by an operator"},
        "held",
    )


def approve(store: Store, ids: Sequence[int] | None) -> list[Change]:
    """Release held posts. A post held because its template failed has no text yet: it is
    released by fixing the template, not by approval."""
    targets = ids
    if ids is None:
        with store.engine.connect() as conn:
            targets = list(
                conn.execute(
                    select(posts.c.id)
                    .where(posts.c.state == PostState.HELD)
                    .where(posts.c.text.is_not(None))
                ).scalars()
            )
        if not targets:
            return []
    else:
        with store.engine.connect() as conn:
            untexted = conn.execute(
                select(posts.c.id, posts.c.hold_reason)
                .where(posts.c.id.in_(list(ids)))
                .where(posts.c.text.is_(None))
            ).first()
        if untexted is not None:
            raise OperatorError(
                f"post #{untexted.id} has no text yet ({untexted.hold_reason}); fix the template "
                "and it is rendered and released by itself"
            )
    return _transition(
        store,
        targets,
        [PostState.HELD],
        PostState.PENDING,
        {"hold_reason": None, "not_before": None},
        "approved",
    )


def retry(store: Store, ids: Sequence[int]) -> list[Change]:
    return _transition(
        store,
        ids,
        [PostState.FAILED],
        PostState.PENDING,
        {"attempts": 0, "not_before": None, "hold_reason": None},
        "retried",
    )


def cancel(store: Store, ids: Sequence[int]) -> list[Change]:
    return _transition(
        store,
        ids,
        [PostState.PENDING, PostState.HELD, PostState.FAILED],
        PostState.CANCELLED,
        {"hold_reason": "cancelled by an operator"},
        "cancelled",
    )


def mark_sent(store: Store, post_id: int, url: str | None = None) -> list[Change]:
    """Record a held post as published: an operator found it on the account (an in-doubt post
    the platform could not look up). It is never sent again."""
    return _transition(
        store,
        [post_id],
        [PostState.HELD],
        PostState.SENT,
        {
            "hold_reason": "found on the account by an operator",
            "platform_url": url,
            "platform_post_id": "operator",
            "sent_at": _now(),
        },
        "marked sent",
    )


def pause(store: Store, accounts: Sequence[str], reason: str = "paused by an operator") -> None:
    for account in accounts:
        store.put_state(
            PAUSED + account, {"reason": reason, "at": _now().isoformat(), "until": None}
        )


def resume(store: Store, accounts: Sequence[str]) -> None:
    for account in accounts:
        store.put_state(PAUSED + account, None)
        store.put_state(FAILURES + account, 0)
