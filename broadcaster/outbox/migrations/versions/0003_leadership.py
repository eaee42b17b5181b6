"""Schema 3: the leadership lease (one publishing instance, fenced by an epoch) and the
instances' roles, for several machines on one PostgreSQL database.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_kv = sa.table("kv", sa.column("key", sa.String), sa.column("value", sa.JSON))


def upgrade() -> None:
    op.create_table(
        "leadership",
        sa.Column("name", sa.String(40), primary_key=True),
        sa.Column("holder", sa.String(200)),
        sa.Column("epoch", sa.Integer, nullable=False),
        sa.Column("acquired_at", sa.DateTime),
        sa.Column("renewed_at", sa.DateTime),
        sa.Column("expires_at", sa.DateTime),
    )
    op.create_table(
        "instances",
        sa.Column("id", sa.String(200), primary_key=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("since", sa.DateTime, nullable=False),
        sa.Column("seen_at", sa.DateTime, nullable=False),
        sa.Column("epoch", sa.Integer),
    )
    # An older broadcaster reads this number and refuses the database (it knows no lease).
    op.get_bind().execute(sa.update(_kv).where(_kv.c.key == "schema_version").values(value=3))


def downgrade() -> None:
    op.drop_table("instances")
    op.drop_table("leadership")
    op.get_bind().execute(sa.update(_kv).where(_kv.c.key == "schema_version").values(value=2))
