"""The audit trail: who did what to the outbox and the accounts, and when.

Every operator action (a CLI command, the console) is recorded in the same transaction as the
change it makes, so the trail can never claim an action that did not happen, nor miss one.
"""

from __future__ import annotations

import getpass
import os
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.engine import Connection

from broadcaster.core.logs import redact
from broadcaster.outbox.store import audit

if TYPE_CHECKING:
    from broadcaster.outbox.store import Store

ACTOR_ENV = "BROADCASTER_OPERATOR"
MAX_ACTOR = 100


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    at: datetime
    actor: str
    action: str
    target: str
    detail: str | None


def current_actor(explicit: str | None = None) -> str:
    """Who is acting: `--as NAME`, else $BROADCASTER_OPERATOR, else the operating-system user."""
    name = explicit or os.environ.get(ACTOR_ENV)
    if not name:
        try:
            name = getpass.getuser()
        except (KeyError, OSError):  # no passwd entry (a container's arbitrary uid)
            name = f"uid {os.getuid()}"
    # A name is shown in terminals and the console: no control or format characters.
    clean = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C").strip()
    return clean[:MAX_ACTOR] or "unknown"


def record(
    conn: Connection,
    actor: str,
    action: str,
    target: str,
    detail: str | None = None,
    *,
    at: datetime | None = None,
) -> None:
    """Add one line to the trail, inside the caller's transaction."""
    conn.execute(
        audit.insert().values(
            at=at or datetime.now(UTC),
            actor=actor[:MAX_ACTOR],
            action=action,
            target=target,
            detail=redact(detail) if detail else None,
        )
    )


def entries(
    store: Store,
    *,
    limit: int = 100,
    before_id: int | None = None,
    actor: str | None = None,
    action: str | None = None,
) -> list[AuditEntry]:
    """The newest entries first (`before_id` pages back through older ones)."""
    query = select(audit).order_by(audit.c.id.desc()).limit(limit)
    if before_id is not None:
        query = query.where(audit.c.id < before_id)
    if actor is not None:
        query = query.where(audit.c.actor == actor)
    if action is not None:
        query = query.where(audit.c.action == action)
    with store.engine.connect() as conn:
        return [
            AuditEntry(r.id, r.at, r.actor, r.action, r.target, r.detail)
            for r in conn.execute(query)
        ]
