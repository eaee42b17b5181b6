"""What `broadcaster status` reports, read from the database (works while the daemon runs)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from broadcaster.config import Config
from broadcaster.store import PostState, Store, posts, snapshots


def collect_status(config: Config) -> dict[str, Any]:
    """Feed and outbox state as plain data, for the table and for /healthz."""
    store = Store(config.database_url)
    try:
        with store.engine.connect() as conn:
            last = conn.execute(
                select(snapshots.c.name, snapshots.c.generated_at)
                .where(snapshots.c.accepted.is_(True))
                .order_by(snapshots.c.id.desc())
                .limit(1)
            ).first()
            rejections = conn.execute(
                select(snapshots.c.name, snapshots.c.received_at, snapshots.c.error)
                .where(snapshots.c.accepted.is_(False))
                .order_by(snapshots.c.id.desc())
                .limit(5)
            ).all()
            outbox_rows = conn.execute(
                select(posts.c.account, posts.c.platform, posts.c.state, func.count()).group_by(
                    posts.c.account, posts.c.platform, posts.c.state
                )
            ).all()
            held = conn.execute(
                select(posts.c.id, posts.c.account, posts.c.hold_reason)
                .where(posts.c.state == PostState.HELD)
                .order_by(posts.c.id)
                .limit(20)
            ).all()
        accepted, rejected = store.snapshot_counts()
        template_problems = store.get_state("template_problems", [])
    finally:
        store.close()
    tz = config.election.tz

    def local(moment: datetime) -> str:
        return moment.astimezone(tz).isoformat()

    outbox: dict[tuple[str, str], dict[str, int]] = {}
    for account, platform, state, n in outbox_rows:
        outbox.setdefault((account, platform), {})[state] = int(n)
    return {
        "database": config.database_url.split("://", 1)[0],
        "last_snapshot": {"name": last.name, "generated_at": local(last.generated_at)}
        if last
        else None,
        "accepted": accepted,
        "rejected": rejected,
        "recent_rejections": [
            {"name": r.name, "at": local(r.received_at), "error": r.error} for r in rejections
        ],
        "states": list(PostState.ALL),
        "outbox": outbox,
        "held": [{"id": h.id, "account": h.account, "reason": h.hold_reason} for h in held],
        "template_problems": template_problems,
    }
