"""Schema 1: snapshots, events, the outbox (posts) and the kv state, as first released.

Revision ID: 0001
Revises:
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "snapshots",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("fingerprint", sa.String(64), nullable=False, unique=True),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("accepted", sa.Boolean, nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("generated_at", sa.DateTime),
        sa.Column("received_at", sa.DateTime, nullable=False),
        sa.Column("body", sa.LargeBinary),
        sa.Column("shared", sa.JSON),
    )
    op.create_table(
        "events",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("key", sa.String(255), nullable=False, unique=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("contest_id", sa.Text),
        sa.Column("at", sa.DateTime, nullable=False),
        sa.Column("snapshot_id", sa.Integer, sa.ForeignKey("snapshots.id"), nullable=False),
        sa.Column("data", sa.JSON, nullable=False),
        sa.Column("context", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    op.create_table(
        "posts",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("idempotency_key", sa.String(400), nullable=False, unique=True),
        sa.Column("event_id", sa.Integer, sa.ForeignKey("events.id"), nullable=False),
        sa.Column("event_key", sa.String(255), nullable=False),
        sa.Column("event_kind", sa.String(32), nullable=False),
        sa.Column("contest_id", sa.Text),
        sa.Column("account", sa.String(100), nullable=False),
        sa.Column("platform", sa.String(32), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("priority", sa.Integer, nullable=False),
        sa.Column("text", sa.Text),
        sa.Column("media", sa.JSON, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("last_error", sa.Text),
        sa.Column("hold_reason", sa.Text),
        sa.Column("platform_post_id", sa.Text),
        sa.Column("platform_url", sa.Text),
        sa.Column("feed_time", sa.DateTime, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
        sa.Column("not_before", sa.DateTime),
        sa.Column("sent_at", sa.DateTime),
        sa.Column("dry_run", sa.Boolean, nullable=False),
        sa.Column("title", sa.Text),
        sa.Column("thread_parent", sa.String(400)),
        sa.Column("wants_card", sa.Boolean, nullable=False),
        sa.Column("platform_checkpoint", sa.Text),
        sa.Column("superseded_by", sa.Integer),
        sa.Column("corrects", sa.Integer),
    )
    op.create_index("ix_posts_account_sent", "posts", ["account", "state", "sent_at"])
    op.create_index("ix_posts_due", "posts", ["state", "priority", "id"])
    kv = op.create_table(
        "kv",
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("value", sa.JSON, nullable=False),
    )
    op.bulk_insert(kv, [{"key": "schema_version", "value": 1}])


def downgrade() -> None:
    for table in ("kv", "posts", "events", "snapshots"):
        op.drop_table(table)
