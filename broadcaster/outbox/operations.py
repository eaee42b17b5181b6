"""What operators do to the outbox and the accounts, through the database.

Every action is one small transaction on the same tables the daemon uses, so it works while the
daemon runs and takes effect on its next dispatch, and it is recorded in the audit trail (who,
when, what) in that same transaction. Only transitions that are safe are allowed: nothing that is
being sent or has been sent can be held, approved, retried or cancelled.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, func, select, update

from broadcaster.core.logs import holds_secret
from broadcaster.outbox import audit
from broadcaster.outbox.state import PauseRecord, State
from broadcaster.outbox.store import HoldKind, PostState, Store, events, posts
from broadcaster.outbox.store import audit as audit_table


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
    *,
    actor: str,
    action: str,
    every: Any = None,
) -> list[Change]:
    """Move posts in `allowed` states to `target`; ids None means every post in those states
    (narrowed by the `every` condition). Each change is audited with the reason it replaces."""
    changes: list[Change] = []
    columns = (posts.c.id, posts.c.state, posts.c.hold_reason, posts.c.gate_reason)
    with store.engine.begin() as conn:
        if ids is None:
            query = select(*columns).where(posts.c.state.in_(allowed))
            if every is not None:
                query = query.where(every)
            rows = conn.execute(query).all()
        else:
            rows = conn.execute(select(*columns).where(posts.c.id.in_(list(ids)))).all()
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
        now = _now()
        for row in rows:
            result = conn.execute(
                update(posts)
                .where(posts.c.id == row.id)
                .where(posts.c.state == row.state)  # unchanged since we looked
                .values(state=target, updated_at=now, **values)
            )
            if result.rowcount:
                changes.append(Change(row.id, row.state, target))
                was = row.hold_reason or row.gate_reason
                detail = f"{row.state} -> {target}" + (f"; was: {was}" if was else "")
                audit.record(conn, actor, action, f"post #{row.id}", detail, at=now)
    return changes


def hold(store: Store, ids: Sequence[int] | None, *, actor: str) -> list[Change]:
    return _transition(
        store,
        ids,
        [PostState.PENDING],
        PostState.HELD,
        {"hold_reason": f"held by an operator ({actor})", "hold_kind": HoldKind.OPERATOR},
        "held",
        actor=actor,
        action="hold",
    )


def approve(
    store: Store, ids: Sequence[int] | None, *, actor: str, include_gated: bool = False
) -> list[Change]:
    """Release held posts. A post held because its template failed has no text yet: it is
    released by fixing the template, not by approval. `ids` None (approve --all) leaves the
    posts a plausibility or feed-text gate holds unless `include_gated`: each of those needs a
    person who has read its finding."""
    # A post an operator held before it was rendered (a burst's, rendered when it is sent)
    # is released like any other; one held for its template has no text to approve.
    operator_held = posts.c.hold_kind == HoldKind.OPERATOR
    if ids is None:
        every: ColumnElement[bool] = posts.c.text.is_not(None) | operator_held
        if not include_gated:
            every = every & (posts.c.hold_kind.is_(None) | (posts.c.hold_kind != HoldKind.GATE))
        return _transition(
            store,
            None,
            [PostState.HELD],
            PostState.PENDING,
            {"hold_reason": None, "hold_kind": None, "not_before": None},
            "approved",
            actor=actor,
            action="approve",
            every=every,
        )
    with store.engine.connect() as conn:
        untexted = conn.execute(
            select(posts.c.id, posts.c.hold_reason)
            .where(posts.c.id.in_(list(ids)))
            .where(posts.c.text.is_(None))
            .where(posts.c.hold_kind.is_(None) | ~operator_held)
        ).first()
    if untexted is not None:
        raise OperatorError(
            f"post #{untexted.id} has no text yet ({untexted.hold_reason}); fix the template "
            "and it is rendered and released by itself"
        )
    return _transition(
        store,
        ids,
        [PostState.HELD],
        PostState.PENDING,
        {"hold_reason": None, "hold_kind": None, "not_before": None},
        "approved",
        actor=actor,
        action="approve",
    )


def gated_held(store: Store) -> int:
    """How many held posts wait for a person to read a gate's finding."""
    return store.count_held(HoldKind.GATE)


def retry(store: Store, ids: Sequence[int], *, actor: str) -> list[Change]:
    return _transition(
        store,
        ids,
        [PostState.FAILED],
        PostState.PENDING,
        {"attempts": 0, "not_before": None, "hold_reason": None, "hold_kind": None},
        "retried",
        actor=actor,
        action="retry",
    )


def cancel(store: Store, ids: Sequence[int], *, actor: str) -> list[Change]:
    return _transition(
        store,
        ids,
        [PostState.PENDING, PostState.HELD, PostState.FAILED],
        PostState.CANCELLED,
        {"hold_reason": f"cancelled by an operator ({actor})"},
        "cancelled",
        actor=actor,
        action="cancel",
    )


def mark_sent(store: Store, post_id: int, url: str | None = None, *, actor: str) -> list[Change]:
    """Record a held post as published: an operator found it on the account (an in-doubt post
    the platform could not look up). It is never sent again."""
    return _transition(
        store,
        [post_id],
        [PostState.HELD],
        PostState.SENT,
        {
            "hold_reason": f"found on the account by an operator ({actor})",
            "hold_kind": None,
            "platform_url": url,
            "platform_post_id": "operator",
            "sent_at": _now(),
        },
        "marked sent",
        actor=actor,
        action="mark-sent",
    )


def pause(
    store: Store, accounts: Sequence[str], reason: str = "paused by an operator", *, actor: str
) -> None:
    now = _now()
    state = State(store)
    with store.transaction() as conn:
        for account in accounts:
            state.set_pause(account, PauseRecord(reason, at=now, by=actor), conn)
            audit.record(conn, actor, "pause", f"account {account}", reason, at=now)


def resume(store: Store, accounts: Sequence[str], *, actor: str, why: str = "resumed") -> None:
    """Lift a pause and reset the circuit breaker with it, so the next failure does not pause
    the account again at once. The one way to resume: the CLI, `auth` and the console use it."""
    now = _now()
    state = State(store)
    with store.transaction() as conn:
        for account in accounts:
            state.resume(account, conn)
            audit.record(conn, actor, "resume", f"account {account}", why, at=now)


# -- what the operator console reads and does besides the CLI's actions --


@dataclass(frozen=True, slots=True)
class PostFilter:
    """Which posts a timeline shows; None means any."""

    state: str | None = None
    platform: str | None = None
    account: str | None = None
    contest: str | None = None
    kind: str | None = None

    def where(self, query: Any, *, with_state: bool = True) -> Any:
        for column, value in (
            (posts.c.state, self.state if with_state else None),
            (posts.c.platform, self.platform),
            (posts.c.account, self.account),
            (posts.c.contest_id, self.contest),
            (posts.c.event_kind, self.kind),
        ):
            if value:
                query = query.where(column == value)
        return query


def find_posts(
    store: Store, where: PostFilter, *, before_id: int | None = None, limit: int = 50
) -> list[Any]:
    """A page of posts, newest first: `before_id` pages back (keyset, so page 2,000 of a
    100,000-post night costs what page 1 does)."""
    query = where.where(select(posts).order_by(posts.c.id.desc()).limit(limit))
    if before_id is not None:
        query = query.where(posts.c.id < before_id)
    with store.engine.connect() as conn:
        return list(conn.execute(query).all())


def count_by_state(store: Store, where: PostFilter) -> dict[str, int]:
    """How many posts match `where` in each state (its own state ignored)."""
    query = where.where(
        select(posts.c.state, func.count()).group_by(posts.c.state), with_state=False
    )
    with store.engine.connect() as conn:
        return {state: int(n) for state, n in conn.execute(query).all()}


def post_history(store: Store, post_id: int, limit: int = 50) -> list[audit.AuditEntry]:
    """The audit trail of one post, newest first."""
    query = (
        select(audit_table)
        .where(audit_table.c.target == f"post #{post_id}")
        .order_by(audit_table.c.id.desc())
        .limit(limit)
    )
    with store.engine.connect() as conn:
        return [
            audit.AuditEntry(r.id, r.at, r.actor, r.action, r.target, r.detail)
            for r in conn.execute(query)
        ]


def edit_text(
    store: Store, post_id: int, text: str, *, title: str | None = None, actor: str
) -> Change:
    """Replace a held post's text (it stays held: approving it is a separate step). A text
    carrying a secret value is refused, never stored; a post held for its template has no text
    to edit (fix the template)."""
    text = text.replace("\r\n", "\n").strip()
    if not text:
        raise OperatorError("the text is empty")
    if holds_secret(text) or holds_secret(title):
        raise OperatorError(
            "the new text contains a secret value (a token or key this configuration uses); "
            "it was not saved"
        )
    now = _now()
    with store.engine.begin() as conn:
        row = conn.execute(
            select(posts.c.state, posts.c.text, posts.c.hold_kind).where(posts.c.id == post_id)
        ).first()
        if row is None:
            raise OperatorError(f"no post #{post_id}")
        if row.state != PostState.HELD:
            raise OperatorError(f"post #{post_id} is {row.state}; only held posts can be edited")
        if row.hold_kind == HoldKind.TEMPLATE:
            raise OperatorError(
                f"post #{post_id} has no text yet: fix its template, and it is rendered again"
            )
        if row.text is None:
            raise OperatorError(
                f"post #{post_id} is a post of a burst, written just before it is sent: approve "
                "it to send it as its template writes it, or cancel it"
            )
        changed = conn.execute(
            update(posts)
            .where(posts.c.id == post_id)
            .where(posts.c.state == PostState.HELD)
            .values(text=text, title=title, updated_at=now)
        ).rowcount
        if not changed:
            raise OperatorError(f"post #{post_id} changed meanwhile; look again")
        audit.record(
            conn, actor, "edit", f"post #{post_id}", f"text was: {row.text}\nnow: {text}", at=now
        )
    return Change(post_id, PostState.HELD, PostState.HELD)
