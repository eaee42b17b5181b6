"""Alembic's migrations of the outbox's database (broadcaster/outbox/schema.py runs them)."""
