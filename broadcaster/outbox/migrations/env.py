"""Alembic's environment: migrations run on the connection broadcaster hands over
(broadcaster/outbox/schema.py), or on `sqlalchemy.url` when Alembic's own command is used."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine
from sqlalchemy.engine import Connection

from broadcaster.outbox.store import metadata

config = context.config
connection = config.attributes.get("connection")


def _run(conn: Connection) -> None:
    context.configure(connection=conn, target_metadata=metadata, transaction_per_migration=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("broadcaster's migrations run online only: `broadcaster db upgrade`")
if connection is not None:
    _run(connection)
else:
    engine = create_engine(config.get_main_option("sqlalchemy.url") or "")
    try:
        with engine.connect() as own:
            _run(own)
            own.commit()
    finally:
        engine.dispose()
