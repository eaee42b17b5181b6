"""Schema 2: posts.test_data (the send-time test guard), posts.hold_kind and posts.gate_reason
(filled from schema 1's hold reasons), the audit table, and the console's indexes.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# The tables as this revision sees them (never the application's, which move on).
_snapshots = sa.table("snapshots", sa.column("id", sa.Integer), sa.column("shared", sa.JSON))
_events = sa.table("events", sa.column("id", sa.Integer), sa.column("snapshot_id", sa.Integer))
_posts = sa.table(
    "posts",
    sa.column("id", sa.Integer),
    sa.column("event_id", sa.Integer),
    sa.column("state", sa.String),
    sa.column("hold_reason", sa.Text),
    sa.column("hold_kind", sa.String),
    sa.column("gate_reason", sa.Text),
    sa.column("test_data", sa.Boolean),
)
_kv = sa.table("kv", sa.column("key", sa.String), sa.column("value", sa.JSON))

_INDEXES = {
    "ix_posts_updated": ["updated_at"],
    "ix_posts_platform": ["platform", "id"],
    "ix_posts_contest": ["contest_id", "id"],
    "ix_posts_outbox": ["account", "platform", "state"],
    "ix_posts_state_sent": ["state", "sent_at"],
}


def upgrade() -> None:
    op.add_column(
        "posts", sa.Column("test_data", sa.Boolean, nullable=False, server_default=sa.false())
    )
    op.add_column("posts", sa.Column("hold_kind", sa.String(16)))
    op.add_column("posts", sa.Column("gate_reason", sa.Text))
    op.create_table(
        "audit",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("at", sa.DateTime, nullable=False),
        sa.Column("actor", sa.String(100), nullable=False),
        sa.Column("action", sa.String(40), nullable=False),
        sa.Column("target", sa.Text, nullable=False),
        sa.Column("detail", sa.Text),
    )
    # Versions of schema 2 made these as the console needed them: some databases have them.
    for name, columns in _INDEXES.items():
        op.create_index(name, "posts", columns, if_not_exists=True)
    conn = op.get_bind()
    _fill_hold_kinds(conn)
    _mark_test_data(conn)
    conn.execute(sa.update(_kv).where(_kv.c.key == "schema_version").values(value=2))


def _fill_hold_kinds(conn: Any) -> None:
    held = conn.execute(
        sa.select(_posts.c.id, _posts.c.hold_reason).where(_posts.c.state == "held")
    ).all()
    for post_id, reason in held:
        kind, gate = legacy_hold(reason or "")
        conn.execute(
            sa.update(_posts).where(_posts.c.id == post_id).values(hold_kind=kind, gate_reason=gate)
        )


def _mark_test_data(conn: Any) -> None:
    """Posts of a test snapshot (IsTest) are test data, for the send-time guard."""
    test_snapshots = [
        sid
        for sid, shared in conn.execute(sa.select(_snapshots.c.id, _snapshots.c.shared))
        if isinstance(shared, dict) and (shared.get("election") or {}).get("is_test")
    ]
    for i in range(0, len(test_snapshots), 500):
        chunk = test_snapshots[i : i + 500]
        event_ids = sa.select(_events.c.id).where(_events.c.snapshot_id.in_(chunk))
        conn.execute(
            sa.update(_posts).where(_posts.c.event_id.in_(event_ids)).values(test_data=True)
        )


def legacy_hold(reason: str) -> tuple[str, str | None]:
    """A schema-1 hold reason's kind, and the gate's reason riding along on a template hold."""
    if reason.startswith("template: "):
        _, sep, gate = reason.rpartition(" | then ")
        return "template", gate if sep else None
    for prefix, kind in (
        ("implausible", "gate"),
        ("awaiting approval", "approval"),
        ("in doubt", "in_doubt"),
        ("card:", "card"),
    ):
        if reason.startswith(prefix):
            return kind, reason if kind == "gate" else None
    return "operator", None


def downgrade() -> None:
    for name in _INDEXES:
        op.drop_index(name, "posts", if_exists=True)
    op.drop_table("audit")
    with op.batch_alter_table("posts") as batch:
        batch.drop_column("gate_reason")
        batch.drop_column("hold_kind")
        batch.drop_column("test_data")
    conn = op.get_bind()
    conn.execute(sa.update(_kv).where(_kv.c.key == "schema_version").values(value=1))
