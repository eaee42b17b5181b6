"""The database: snapshots, events and the outbox of posts, and what operators do to it."""
