"""The database: accepted snapshots, events, and the outbox, through SQLAlchemy 2 Core.

It is the single source of truth. A snapshot, its events and their posts are written in one
transaction, so after a crash either all of them exist or none do. Uniqueness of event keys and
post idempotency keys is enforced by the database itself, so nothing can be posted twice.
"""

from __future__ import annotations

import functools
import json
import os
import sqlite3
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    bindparam,
    create_engine,
    event,
    func,
    select,
    text,
    update,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.types import TypeDecorator

from broadcaster.core.logs import redact
from broadcaster.domain.events import Event, EventKind
from broadcaster.domain.posts import HoldKind, NewPost, PostState
from broadcaster.outbox.bulk import insert_many
from broadcaster.publishers.base import Post

if TYPE_CHECKING:
    from broadcaster.domain.model import Snapshot

# 1: the first schema. 2: posts.test_data (the send-time test guard), posts.hold_kind and
# posts.gate_reason, and the audit table. 3: the leadership lease and the instances. Each is an
# Alembic revision (broadcaster/outbox/migrations); this number, kept in kv, also stops an older
# broadcaster from opening a newer database.
SCHEMA_VERSION = 3


class UTCDateTime(TypeDecorator[datetime]):
    """Stored as naive UTC (portable between SQLite and PostgreSQL), returned timezone-aware."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


metadata = MetaData()

snapshots = Table(
    "snapshots",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("fingerprint", String(64), nullable=False, unique=True),
    Column("source", Text, nullable=False),
    Column("name", Text, nullable=False),
    Column("accepted", Boolean, nullable=False),
    Column("error", Text),
    Column("generated_at", UTCDateTime),
    Column("received_at", UTCDateTime, nullable=False),
    Column("body", LargeBinary),  # zlib-compressed normalised JSON; kept for recent ones only
    Column("shared", JSON),  # the election and national tally, as templates see them
)

events = Table(
    "events",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("key", String(255), nullable=False, unique=True),
    Column("kind", String(32), nullable=False),
    Column("contest_id", Text),
    Column("at", UTCDateTime, nullable=False),
    Column("snapshot_id", Integer, ForeignKey("snapshots.id"), nullable=False),
    Column("data", JSON, nullable=False),
    Column("context", JSON, nullable=False),  # the contest as of the event, for templates
    Column("created_at", UTCDateTime, nullable=False),
)

posts = Table(
    "posts",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("idempotency_key", String(400), nullable=False, unique=True),
    Column("event_id", Integer, ForeignKey("events.id"), nullable=False),
    Column("event_key", String(255), nullable=False),
    Column("event_kind", String(32), nullable=False),
    Column("contest_id", Text),
    Column("account", String(100), nullable=False),
    Column("platform", String(32), nullable=False),
    Column("state", String(16), nullable=False),
    Column("priority", Integer, nullable=False),
    Column("text", Text),
    Column("media", JSON, nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("last_error", Text),
    Column("hold_reason", Text),
    Column("platform_post_id", Text),
    Column("platform_url", Text),
    Column("feed_time", UTCDateTime, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("not_before", UTCDateTime),
    Column("sent_at", UTCDateTime),
    Column("dry_run", Boolean, nullable=False),
    Column("title", Text),
    Column("thread_parent", String(400)),  # the previous part of a thread, posted first
    Column("wants_card", Boolean, nullable=False, default=False),
    Column("platform_checkpoint", Text),  # an interim id (TikTok publish_id) for look-ups
    Column("superseded_by", Integer),  # the post (a summary, or a newer one) that replaced it
    Column("corrects", Integer),  # for a correction: the earlier post it corrects
    # The snapshot behind the post was test data: checked again at send time, in every mode.
    Column("test_data", Boolean, nullable=False, default=False),
    Column("hold_kind", String(16)),  # why a held post waits, as a HoldKind
    # A plausibility gate's reason for this post's event: kept when the post is held for
    # something else first (a template problem), so fixing that never releases it unchecked.
    Column("gate_reason", Text),
)
Index("ix_posts_account_sent", posts.c.account, posts.c.state, posts.c.sent_at)
Index("ix_posts_due", posts.c.state, posts.c.priority, posts.c.id)
# The console: "did anything change?" twice a second, its timeline's filters, and the status
# counts (by account, platform and state; sends of the last hour) from indexes alone.
Index("ix_posts_updated", posts.c.updated_at)
Index("ix_posts_platform", posts.c.platform, posts.c.id)
Index("ix_posts_contest", posts.c.contest_id, posts.c.id)
Index("ix_posts_outbox", posts.c.account, posts.c.platform, posts.c.state)
Index("ix_posts_state_sent", posts.c.state, posts.c.sent_at)

kv = Table(
    "kv",
    metadata,
    Column("key", String(200), primary_key=True),
    Column("value", JSON, nullable=False),
)

# Who did what to the outbox and the accounts, and when: operators' commands and the console.
audit = Table(
    "audit",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("at", UTCDateTime, nullable=False),
    Column("actor", String(100), nullable=False),
    Column("action", String(40), nullable=False),
    Column("target", Text, nullable=False),
    Column("detail", Text),
)

# Who may publish (outbox/lease.py): one row, the lease. Its epoch grows by one at each change
# of holder and is checked in the transaction of every claim and every "sent" (the fencing).
leadership = Table(
    "leadership",
    metadata,
    Column("name", String(40), primary_key=True),
    Column("holder", String(200)),
    Column("epoch", Integer, nullable=False),
    Column("acquired_at", UTCDateTime),
    Column("renewed_at", UTCDateTime),
    Column("expires_at", UTCDateTime),
)

# Every instance's last word (role and since when), for `status` and /healthz.
instances = Table(
    "instances",
    metadata,
    Column("id", String(200), primary_key=True),
    Column("role", String(16), nullable=False),
    Column("since", UTCDateTime, nullable=False),
    Column("seen_at", UTCDateTime, nullable=False),
    Column("epoch", Integer),
)


class _Abort(Exception):
    """Roll a transaction back on purpose."""


SYSTEM_ACTOR = "broadcaster"  # the audit trail's actor for what the software does itself
MODE_KEY = "database_mode"


class DatabaseMode(StrEnum):
    """What a database holds: a rehearsal's posts (dry run) or the real night's. A database
    never changes mode: a rehearsal's events count as posted, so a live run on it would skip
    them, and a dry run on the night's database would mark real events as posted unposted."""

    REHEARSAL = "rehearsal"
    LIVE = "live"


class ModeMismatch(Exception):
    """A rehearsal's database used for the night, or the night's used for a dry run. The
    message says what to do instead."""


def require_mode(store: Store, mode: DatabaseMode) -> None:
    """Claim `mode` for the database, or raise ModeMismatch if it is the other one's."""
    have = store.claim_mode(mode)
    if have == mode:
        return
    where = store.url.split("://", 1)[0] + " database " + _where(store.url)
    if mode is DatabaseMode.LIVE:
        raise ModeMismatch(
            f"{where} belongs to a rehearsal (dry run): its events count as already posted, so "
            "a live run on it would silently skip them, and its posts were never meant for a "
            "real account. For the night, set [database] url to a new, empty database (keep "
            "this one as the rehearsal's record), then check everything with `broadcaster "
            "golive --config FILE` (docs/operations.md, 'From rehearsal to the night')"
        )
    raise ModeMismatch(
        f"{where} belongs to the live night: a dry run on it would mark real events as posted "
        "without posting them. Rehearse with another [database] url (or `broadcaster rehearse`, "
        "which keeps its own state in its output folder)"
    )


def _where(url: str) -> str:
    """The database's location without credentials, for messages."""
    rest = url.split("://", 1)[-1]
    return rest.rsplit("@", 1)[-1] if "@" in rest else rest


@dataclass(frozen=True, slots=True)
class StoredEvent:
    id: int
    event: Event
    context: dict[str, Any]  # the event's own (contest)
    shared: dict[str, Any]  # its snapshot's (election, tally)
    snapshot_id: int  # the snapshot that revealed it


@dataclass(frozen=True, slots=True)
class _Queued:
    """A pending post as `Store.queued_posts` returns it."""

    id: int
    account: str
    dry_run: bool
    event_id: int
    event_key: str
    event_kind: str
    contest_id: str | None
    feed_time: datetime
    priority: int
    not_before: datetime | None
    wants_card: bool
    final: bool = False


def post_from_row(row: Any, attempt: int | None = None, *, reply_to: str | None = None) -> Post:
    """An outbox row as its publisher sees it."""
    return Post(
        outbox_id=row.id,
        idempotency_key=row.idempotency_key,
        account=row.account,
        platform=row.platform,
        event_key=row.event_key,
        event_kind=row.event_kind,
        contest_id=row.contest_id,
        text=row.text or "",
        created_at=row.created_at,
        media=tuple(row.media or ()),
        attempt=attempt if attempt is not None else row.attempts,
        title=row.title,
        reply_to=reply_to,
        checkpoint=row.platform_checkpoint,
    )


def _compact(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


PACKED_AT_ONCE = 500  # contests serialised per piece of a stored snapshot


def pack_snapshot(snapshot: Snapshot) -> bytes:
    """The snapshot as stored: its `to_dict()` as compact JSON, compressed. Its contests are
    serialised a few hundred at a time: a 20,000-seat snapshot's whole dict, its text and its
    bytes were 100 MB or more at once, the largest moment of a large night's memory."""
    from broadcaster.domain.model import contest_to_list

    head = _compact(replace(snapshot, contests=()).to_dict())
    # The contests are to_dict's last member, so the text goes on where its "[]}" stands.
    if not head.endswith('"contests":[]}'):
        raise AssertionError("Snapshot.to_dict no longer ends with its contests")
    packer = zlib.compressobj(1)
    parts = [packer.compress(head[:-2].encode())]
    contests = snapshot.contests
    for i in range(0, len(contests), PACKED_AT_ONCE):
        piece = _compact([contest_to_list(c) for c in contests[i : i + PACKED_AT_ONCE]])
        parts.append(packer.compress(("," if i else "").encode() + piece[1:-1].encode()))
    parts.append(packer.compress(b"]}"))
    parts.append(packer.flush())
    return b"".join(parts)


def unpack(blob: bytes) -> Any:
    return json.loads(zlib.decompress(blob))


def _now() -> datetime:
    return datetime.now(UTC)


class Store:
    """All database access goes through here."""

    def __init__(
        self, url: str, *, keep_bodies: int = 3, file_mode: int = 0o600, durable: bool = True
    ) -> None:
        """`durable=False` (a rehearsal's throwaway database): SQLite syncs the disk at its
        checkpoints, not at every commit. A crash of the process still loses nothing; only a
        crash of the machine may lose the last commits, which a rehearsal can simply replay."""
        self.url = url
        self.keep_bodies = keep_bodies
        server = not url.startswith("sqlite")
        if not server:
            from broadcaster.outbox.schema import require_sqlite_folder  # it imports this module

            file = require_sqlite_folder(url)
            if file is not None:
                _create_private(file, file_mode)
        # A database server may drop idle connections (a restart, a proxy's timeout) during a
        # twelve-hour night: each connection is checked as it leaves the pool.
        self.engine: Engine = create_engine(url, future=True, pool_pre_ping=server)
        if self.engine.dialect.name == "sqlite":
            synchronous = "FULL" if durable else "NORMAL"
            event.listen(
                self.engine,
                "connect",
                functools.partial(_sqlite_pragmas, synchronous=synchronous),
            )
        # Set by the daemon (outbox/lease.py): checks, inside a transaction, that this instance
        # still holds the lease; raises LeaseLost otherwise. None: not fenced (commands).
        self.fence: Callable[[Connection, bool], None] | None = None
        from broadcaster.outbox.schema import prepare  # it reads this module's tables

        try:
            prepare(self.engine, _where(url))
        except Exception:
            self.engine.dispose()
            raise

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        with self.engine.begin() as conn:
            yield conn

    def fenced(self, conn: Connection, *, claiming: bool = False) -> None:
        """In `conn`'s transaction: raise LeaseLost unless this instance still leads (with
        time left to call a platform, when `claiming`). Nothing when no fence is set."""
        if self.fence is not None:
            self.fence(conn, claiming)

    # -- key/value state --

    def _kv_put(self, conn: Connection, key: str, value: Any) -> None:
        # One statement (an upsert), so the daemon and an operator's command writing the same
        # key at once cannot both find it missing and both insert it.
        conn.execute(_kv_upsert(conn.dialect.name), {"key": key, "value": _redacted(value)})

    def put_state(self, key: str, value: Any, conn: Connection | None = None) -> None:
        """Set a state key: in its own transaction, or in `conn`'s."""
        if conn is not None:
            self._kv_put(conn, key, value)
            return
        with self.engine.begin() as own:
            self._kv_put(own, key, value)

    def get_state(self, key: str, default: Any = None, conn: Connection | None = None) -> Any:
        """A state key's value: in `conn`'s transaction when given (a second connection there
        would not see its writes), else in a connection of its own."""
        statement = _statements().get_state
        if conn is not None:
            value = conn.execute(statement, {"key": key}).scalar()
        else:
            with self.engine.connect() as own:
                value = own.execute(statement, {"key": key}).scalar()
        return default if value is None else value

    def get_states(self, keys: Sequence[str]) -> dict[str, Any]:
        """The values of several state keys in one statement (missing keys are left out)."""
        if not keys:
            return {}
        with self.engine.connect() as conn:
            rows = conn.execute(_statements().get_states, {"keys": list(keys)}).all()
        return {key: value for key, value in rows if value is not None}

    # -- snapshots --

    def fingerprint_known(self, fingerprint: str) -> bool:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(snapshots.c.id).where(snapshots.c.fingerprint == fingerprint)
            ).first()
        return row is not None

    def last_accepted(self) -> tuple[Snapshot, str] | None:
        """The latest accepted snapshot and its source name, for resuming after a restart."""
        with self.engine.connect() as conn:
            row = conn.execute(latest_accepted(snapshots.c.body, snapshots.c.name)).first()
        if row is None or row.body is None:
            return None
        # Imported here: the snapshot's dataclasses cost every command that opens the database
        # about 15 ms to define, and only resuming reads a snapshot back.
        from broadcaster.domain.model import Snapshot

        return Snapshot.from_dict(unpack(row.body)), row.name

    def record_rejected(
        self, fingerprint: str, source: str, name: str, error: str, at: datetime
    ) -> None:
        with self.engine.begin() as conn:
            exists = conn.execute(
                select(snapshots.c.id).where(snapshots.c.fingerprint == fingerprint)
            ).first()
            if exists is None:
                conn.execute(
                    snapshots.insert().values(
                        fingerprint=fingerprint,
                        source=source,
                        name=name,
                        accepted=False,
                        error=redact(error),
                        received_at=at,
                    )
                )

    def existing_event_keys(self, keys: Iterable[str]) -> set[str]:
        found: set[str] = set()
        key_list = list(keys)
        with self.engine.connect() as conn:
            for i in range(0, len(key_list), 500):
                chunk = key_list[i : i + 500]
                found.update(
                    conn.execute(select(events.c.key).where(events.c.key.in_(chunk))).scalars()
                )
        return found

    # The three writes of an accepted snapshot, made inside one `transaction()` by the pipeline
    # (events and posts in chunks of a bounded size per statement).

    def insert_snapshot(
        self,
        conn: Connection,
        *,
        fingerprint: str,
        source: str,
        name: str,
        snapshot: Snapshot,
        received_at: datetime,
        shared: dict[str, Any],
    ) -> int:
        body = pack_snapshot(snapshot)  # before the lock: a large night's takes a while
        # Its events and posts follow in this transaction: the post-ids lock (and with it the
        # server's idle limit) is taken before its first row, so a process frozen anywhere in
        # the transaction holds nothing (this row, old bodies pruned) for longer than the limit.
        _posts_in_id_order(conn)
        snapshot_id = conn.execute(
            snapshots.insert().values(
                fingerprint=fingerprint,
                source=source,
                name=name,
                accepted=True,
                generated_at=snapshot.generated_at,
                received_at=received_at,
                body=body,
                shared=shared,
            )
        ).inserted_primary_key
        assert snapshot_id is not None
        self._prune_bodies(conn, snapshot_id[0])
        return int(snapshot_id[0])

    def insert_events(
        self, conn: Connection, snapshot_id: int, items: Sequence[tuple[Event, dict[str, Any]]]
    ) -> dict[str, int]:
        """Insert events (an existing key is left alone); returns key -> id for all of them."""
        if not items:
            return {}
        now = _now()
        rows = [
            {
                "key": ev.key,
                "kind": ev.kind.value,
                "contest_id": ev.contest_id,
                "at": ev.at,
                "snapshot_id": snapshot_id,
                "data": ev.data,
                "context": ctx,
                "created_at": now,
            }
            for ev, ctx in items
        ]
        _posts_in_id_order(conn)  # its posts follow, in the same transaction
        insert_many(conn, _insert_ignore(conn, events, "key"), events, rows)
        # The ids are read back below: a plain statement after the many-row insert (_after_many).
        keys = [ev.key for ev, _ in items]
        ids: dict[str, int] = {}
        for i in range(0, len(keys), 500):
            ids.update(
                conn.execute(
                    select(events.c.key, events.c.id).where(events.c.key.in_(keys[i : i + 500]))
                ).all()
            )
        return ids

    def insert_posts(
        self,
        conn: Connection,
        new_posts: Sequence[NewPost],
        event_ids: dict[str, int],
        by_key: dict[str, Event],
        *,
        test_data: bool,
    ) -> int:
        """Insert rendered posts; an existing idempotency key is left alone. Returns rows added.
        `test_data`: they come from a test snapshot (checked again before each send)."""
        if not new_posts:
            return 0
        _posts_in_id_order(conn)
        now = _now()
        rows = []
        for p in new_posts:
            ev = by_key[p.event_key]
            rows.append(
                {
                    "idempotency_key": p.idempotency_key,
                    "event_id": event_ids[p.event_key],
                    "event_key": p.event_key,
                    "event_kind": ev.kind.value,
                    "contest_id": ev.contest_id,
                    "account": p.account,
                    "platform": p.platform,
                    "state": p.state,
                    "priority": ev.priority,
                    "text": p.text,
                    "media": tuple(p.media),  # JSON as a list; a tuple is converted once
                    "attempts": 0,
                    "hold_reason": p.hold_reason,
                    "hold_kind": p.hold_kind,
                    "gate_reason": p.gate_reason,
                    "feed_time": ev.at,
                    "created_at": now,
                    "updated_at": now,
                    "dry_run": p.dry_run,
                    "title": p.title,
                    "thread_parent": p.thread_parent,
                    "wants_card": p.wants_card,
                    "test_data": test_data,
                }
            )
        added = insert_many(conn, _insert_ignore(conn, posts, "idempotency_key"), posts, rows)
        _after_many(conn)
        return added

    def _prune_bodies(self, conn: Connection, newest_id: int) -> None:
        # Old normalised bodies are only needed to resume; keep a few for inspection.
        conn.execute(
            update(snapshots)
            .where(snapshots.c.id <= newest_id - self.keep_bodies)
            .where(snapshots.c.body.is_not(None))
            .values(body=None)
        )

    # -- events --

    def announced_outcomes(self) -> dict[str, tuple[str, ...]]:
        """Contest id -> the outcome last announced by a called or corrected event."""
        out: dict[str, tuple[str, ...]] = {}
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(events.c.contest_id, events.c.data)
                .where(events.c.kind.in_([EventKind.CALLED.value, EventKind.CORRECTED.value]))
                .order_by(events.c.id)
            )
            for contest_id, data in rows:
                out[contest_id] = tuple(data.get("winners", ()))
        return out

    def last_event(self, kind: EventKind) -> tuple[Event, dict[str, Any]] | None:
        with self.engine.connect() as conn:
            row = conn.execute(
                select(events)
                .where(events.c.kind == kind.value)
                .order_by(events.c.id.desc())
                .limit(1)
            ).first()
        if row is None:
            return None
        return _event_from_row(row), row.data

    def held(self, kind: HoldKind) -> list[Any]:
        """Held posts of one kind, oldest first."""
        with self.engine.connect() as conn:
            return list(
                conn.execute(
                    select(posts)
                    .where(posts.c.state == PostState.HELD)
                    .where(posts.c.hold_kind == kind)
                    .order_by(posts.c.id)
                ).all()
            )

    def event_with_context(self, event_id: int) -> StoredEvent:
        statements = _statements()
        with self.engine.connect() as conn:
            row = conn.execute(statements.events_by_id, {"ids": [event_id]}).one()
            shared = conn.execute(statements.shared_by_id, {"ids": [row.snapshot_id]}).one()[1]
        return StoredEvent(row.id, _event_from_row(row), row.context, shared, row.snapshot_id)

    def event_key_exists(self, key: str) -> bool:
        return bool(self.existing_event_keys([key]))

    # -- outbox --

    def due_posts(
        self, now: datetime, limit: int, accounts: Iterable[str] | None = None
    ) -> list[Any]:
        query = (
            select(posts)
            .where(posts.c.state == PostState.PENDING)
            .where((posts.c.not_before.is_(None)) | (posts.c.not_before <= now))
            .order_by(posts.c.priority, posts.c.id)
            .limit(limit)
        )
        if accounts is not None:
            query = query.where(posts.c.account.in_(list(accounts)))
        with self.engine.connect() as conn:
            return list(conn.execute(query).all())

    def posts_in_state(self, state: str, limit: int | None = None) -> list[Any]:
        query = _statements().posts_in_state
        if limit is not None:
            query = query.limit(limit)
        with self.engine.connect() as conn:
            return list(conn.execute(query, {"state": state}).all())

    def why_waiting(self, state: str) -> Iterator[Any]:
        """The posts in `state`, by id: only what says why each waits (id, account,
        hold_reason, last_error, not_before), read as they are iterated. A large night ends
        with tens of thousands of posts waiting; their whole rows were 20 MB at once."""
        query = (
            select(
                posts.c.id,
                posts.c.account,
                posts.c.hold_reason,
                posts.c.last_error,
                posts.c.not_before,
            )
            .where(posts.c.state == state)
            .order_by(posts.c.id)
        )
        with self.engine.connect() as conn:
            yield from conn.execute(query)

    def claim(self, post_id: int, now: datetime) -> int | None:
        """Mark a pending post `sending` and commit before any platform call. Returns the attempt
        number, or None when another worker got there first."""
        with self.engine.begin() as conn:
            self.fenced(conn, claiming=True)
            statements = _statements()
            params = {"post_id": post_id, "now": now}
            if conn.dialect.update_returning:  # PostgreSQL, SQLite 3.35 and newer
                row = conn.execute(statements.claim_returning, params).first()
                return None if row is None else int(row.attempts)
            if conn.execute(statements.claim, params).rowcount != 1:
                return None
            return int(conn.execute(statements.attempts, params).scalar_one())

    def mark_sent(self, post_id: int, platform_id: str, url: str | None, sent_at: datetime) -> None:
        with self.engine.begin() as conn:
            self.fenced(conn)
            conn.execute(
                _statements().mark_sent,
                {
                    "post_id": post_id,
                    "platform_id": platform_id,
                    "url": url,
                    "sent_at": sent_at,
                    "now": _now(),
                },
            )

    def mark_retry(self, post_id: int, error: str, not_before: datetime) -> None:
        with self.engine.begin() as conn:
            self.fenced(conn)  # an old leader must not reopen a post its successor settled
            conn.execute(
                update(posts)
                .where(posts.c.id == post_id)
                .values(
                    state=PostState.PENDING,
                    last_error=redact(error),
                    not_before=not_before,
                    updated_at=_now(),
                )
            )

    def mark_failed(self, post_id: int, error: str) -> None:
        with self.engine.begin() as conn:
            self.fenced(conn)
            conn.execute(
                update(posts)
                .where(posts.c.id == post_id)
                .values(state=PostState.FAILED, last_error=redact(error), updated_at=_now())
            )

    def post_by_key(self, idempotency_key: str) -> Any:
        with self.engine.connect() as conn:
            return conn.execute(
                select(posts).where(posts.c.idempotency_key == idempotency_key)
            ).first()

    def replace_held(self, post_id: int, rows: Sequence[NewPost]) -> None:
        """Swap a held post for its re-rendered version (the first row takes its place; further
        thread parts are added)."""
        self._replace_unrendered(post_id, rows, deferred=False)

    def fill_deferred(self, post_id: int, rows: Sequence[NewPost]) -> bool:
        """Swap a pending post stored unrendered for its rendered version, as replace_held
        does; False when it is no longer a pending post without text."""
        return self._replace_unrendered(post_id, rows, deferred=True)

    def _replace_unrendered(self, post_id: int, rows: Sequence[NewPost], *, deferred: bool) -> bool:
        first, *rest = rows
        statements = _statements()
        with self.engine.begin() as conn:
            # The post's row is locked until this commits, and a claim of it waits (holding the
            # lease row): a process frozen here must not hold them for long.
            limit_idle(conn)
            if rest:
                _posts_in_id_order(conn)  # before the row's lock: the order all writers take
            if deferred:
                self.fenced(conn)  # the dispatcher's write: only under the lease
            result = conn.execute(
                statements.fill_deferred if deferred else statements.replace_held,
                {
                    "post_id": post_id,
                    "new_state": first.state,
                    "new_text": first.text,
                    "new_title": first.title,
                    "new_hold_reason": first.hold_reason,
                    "new_hold_kind": first.hold_kind,
                    "new_gate_reason": first.gate_reason,
                    "new_wants_card": first.wants_card,
                    "now": _now(),
                },
            )
            if result.rowcount != 1:
                return False  # acted on meanwhile: held, sent, superseded, rendered
            if not deferred and first.state != PostState.HELD:
                # In the trail, like an operator's release. It is also what tells the
                # dispatcher (which sees posts above the last id it read, the held count and
                # the newest audit entry) that an old post is pending again: the held count
                # alone can miss it when another post is held at the same time.
                from broadcaster.outbox.audit import record  # it imports this module

                record(
                    conn,
                    SYSTEM_ACTOR,
                    "release" if first.state == PostState.PENDING else "cancel",
                    f"post #{post_id}",
                    "rendered again after a template fix",
                )
            if rest:
                row = conn.execute(
                    select(posts.c.event_id, posts.c.test_data).where(posts.c.id == post_id)
                ).one()
                event = _event_from_row(
                    conn.execute(select(events).where(events.c.id == row.event_id)).one()
                )
                self.insert_posts(
                    conn,
                    rest,
                    {event.key: row.event_id},
                    {event.key: event},
                    test_data=row.test_data,
                )
        return True

    def set_checkpoint(self, post_id: int, value: str) -> None:
        """Record an interim platform id at once, in its own transaction."""
        with self.engine.begin() as conn:
            conn.execute(
                update(posts).where(posts.c.id == post_id).values(platform_checkpoint=value)
            )

    # -- what the planner needs --

    def pending_for(self, account: str, now: datetime, *, dry_run: bool) -> list[Any]:
        """Pending posts of an account that are due and were planned in mode `dry_run`,
        thread continuations excluded."""
        with self.engine.connect() as conn:
            return list(
                conn.execute(
                    select(posts, events.c.data.label("event_data"))
                    .join(events, events.c.id == posts.c.event_id)
                    .where(posts.c.account == account)
                    .where(posts.c.state == PostState.PENDING)
                    .where(posts.c.dry_run.is_(dry_run))
                    .where(posts.c.thread_parent.is_(None))
                    .where((posts.c.not_before.is_(None)) | (posts.c.not_before <= now))
                    .order_by(posts.c.priority, posts.c.id)
                ).all()
            )

    def count_held(self, kind: HoldKind) -> int:
        """Held posts of one kind (e.g. the plausibility gates')."""
        with self.engine.connect() as conn:
            return int(
                conn.execute(
                    select(func.count())
                    .select_from(posts)
                    .where(posts.c.state == PostState.HELD)
                    .where(posts.c.hold_kind == kind)
                ).scalar_one()
            )

    def next_not_before(self, after: datetime) -> datetime | None:
        """The earliest time after `after` at which a pending post becomes due, if any."""
        with self.engine.connect() as conn:
            return conn.execute(_statements().next_not_before, {"after": after}).scalar()

    def thread_parts_due(self, now: datetime) -> list[Any]:
        """Pending continuations of threads (their previous part decides when they go)."""
        with self.engine.connect() as conn:
            return list(conn.execute(_statements().thread_parts_due, {"now": now}).all())

    def sent_since(self, account: str, since: datetime) -> list[Any]:
        with self.engine.connect() as conn:
            return list(
                conn.execute(
                    select(
                        posts.c.id,
                        posts.c.event_key,
                        posts.c.event_kind,
                        posts.c.contest_id,
                        posts.c.feed_time,
                        posts.c.priority,
                        posts.c.sent_at,
                    )
                    .where(posts.c.account == account)
                    .where(posts.c.state == PostState.SENT)
                    .where(posts.c.sent_at > since)
                ).all()
            )

    def last_sent_at(self, account: str) -> datetime | None:
        with self.engine.connect() as conn:
            return conn.execute(
                select(func.max(posts.c.sent_at))
                .where(posts.c.account == account)
                .where(posts.c.state == PostState.SENT)
            ).scalar()

    def supersede(self, ids: Sequence[int], reason: str, by: int | None = None) -> int:
        """Retire pending posts (never one already sending or sent). Returns how many."""
        if not ids:
            return 0
        with self.engine.begin() as conn:
            result = conn.execute(
                update(posts)
                .where(posts.c.id.in_(list(ids)))
                .where(posts.c.state == PostState.PENDING)
                .values(
                    state=PostState.SUPERSEDED,
                    hold_reason=reason,
                    superseded_by=by,
                    updated_at=_now(),
                )
            )
            return int(result.rowcount or 0)

    def supersede_many(self, retired: Sequence[tuple[int, str]]) -> int:
        """Retire pending posts, each with its reason, in one transaction (a dispatch step may
        find thousands stale at once: one synced commit, not one each). Returns how many."""
        by_reason: dict[str, list[int]] = {}
        for post_id, reason in retired:
            by_reason.setdefault(reason, []).append(post_id)
        done = 0
        now = _now()
        statement = _statements().retire
        with self.engine.begin() as conn:
            for reason, ids in by_reason.items():
                for i in range(0, len(ids), 500):
                    params = {"ids": ids[i : i + 500], "reason": reason, "now": now}
                    done += int(conn.execute(statement, params).rowcount or 0)
        return done

    # -- the dispatcher's in-memory queues (broadcaster/delivery/queues.py) --

    def outbox_marker(self) -> tuple[int, int, int]:
        """(newest post id, newest audit entry id, held posts), in one statement: what tells
        the dispatcher that posts were added, or that someone else (an operator, the console)
        changed the outbox, since it last looked."""
        with self.engine.connect() as conn:
            row = conn.execute(_statements().outbox_marker).one()
        return int(row[0] or 0), int(row[1] or 0), int(row[2] or 0)

    def queued_posts(self, after_id: int = 0, limit: int | None = None) -> list[Any]:
        """Pending posts with an id above `after_id`, thread continuations excluded, with what
        the planner needs (no text, no event data) and `final`: a final tally. With an
        `after_id`, the posts above it are read by id (the few added since the dispatcher last
        looked), not the whole backlog through the state index. `limit`: the first so many."""
        statements = _statements()
        with self.engine.connect() as conn:
            if limit is None:
                query = statements.queued_after if after_id else statements.queued
            else:
                query = statements.queued_after_few if after_id else statements.queued_few
            rows = conn.execute(query, {"after_id": after_id, "limit": limit}).all()
            tallies = sorted({r.event_id for r in rows if r.event_kind == EventKind.TALLY.value})
            finals: set[int] = set()
            for i in range(0, len(tallies), 500):
                finals.update(
                    event_id
                    for event_id, data in conn.execute(
                        statements.event_data, {"ids": tallies[i : i + 500]}
                    )
                    if isinstance(data, dict) and data.get("final")
                )
        return [_Queued(**r._mapping, final=r.event_id in finals) for r in rows]

    def post_outcome(self, post_id: int) -> Any:
        """What became of a post the dispatcher just handled: its state, when it went or may
        go, and what the planner needs to count it."""
        with self.engine.connect() as conn:
            return conn.execute(_statements().post_outcome, {"post_id": post_id}).first()

    def events_with_context_many(self, event_ids: Sequence[int]) -> dict[int, StoredEvent]:
        """`event_with_context` for many events in a few statements (a summary's merge)."""
        out: dict[int, StoredEvent] = {}
        shared: dict[int, dict[str, Any]] = {}
        ids = list(dict.fromkeys(event_ids))
        statements = _statements()
        with self.engine.connect() as conn:
            for i in range(0, len(ids), 500):
                rows = conn.execute(statements.events_by_id, {"ids": ids[i : i + 500]}).all()
                wanted = sorted({r.snapshot_id for r in rows} - set(shared))
                if wanted:
                    shared.update(conn.execute(statements.shared_by_id, {"ids": wanted}).all())
                for row in rows:
                    out[row.id] = StoredEvent(
                        row.id,
                        _event_from_row(row),
                        row.context,
                        shared[row.snapshot_id],
                        row.snapshot_id,
                    )
        return out

    def add_summary(
        self,
        *,
        event: Event,
        context: dict[str, Any],
        snapshot_id: int,
        post: NewPost,
        merged: Sequence[int],
    ) -> int | None:
        """Create a summary event and its post, and retire the merged posts it replaces, in one
        transaction. None when a merged post was taken meanwhile (nothing is changed then)."""
        now = _now()
        try:
            with self.engine.begin() as conn:
                _posts_in_id_order(conn)
                conn.execute(
                    _insert_ignore(conn, events, "key"),
                    [
                        {
                            "key": event.key,
                            "kind": event.kind.value,
                            "contest_id": None,
                            "at": event.at,
                            "snapshot_id": snapshot_id,
                            "data": event.data,
                            "context": context,
                            "created_at": now,
                        }
                    ],
                )
                statements = _statements()
                event_id = conn.execute(statements.event_id, {"key": event.key}).scalar_one()
                # A summary of test posts is test data too.
                test_data = bool(
                    conn.execute(statements.test_posts, {"ids": list(merged)}).scalar_one()
                )
                self.insert_posts(
                    conn, [post], {event.key: event_id}, {event.key: event}, test_data=test_data
                )
                post_id = conn.execute(
                    statements.post_id, {"key": post.idempotency_key}
                ).scalar_one()
                params = {
                    "ids": list(merged),
                    "reason": "merged into a summary",
                    "by": post_id,
                    "now": now,
                }
                retired = conn.execute(statements.merge_into, params).rowcount
                if retired != len(merged):
                    raise _Abort
                return int(post_id)
        except _Abort:
            return None

    def post_row(self, post_id: int) -> Any:
        with self.engine.connect() as conn:
            return conn.execute(_statements().post_row, {"post_id": post_id}).first()

    def earlier_post(self, account: str, contest_id: str | None, *, before_id: int) -> Any:
        """The latest sent call or correction of a contest on an account, before a post."""
        if contest_id is None:
            return None
        with self.engine.connect() as conn:
            return conn.execute(
                select(posts)
                .where(posts.c.account == account)
                .where(posts.c.contest_id == contest_id)
                .where(posts.c.event_kind.in_([EventKind.CALLED.value, EventKind.CORRECTED.value]))
                .where(posts.c.state == PostState.SENT)
                .where(posts.c.id < before_id)
                .order_by(posts.c.id.desc())
                .limit(1)
            ).first()

    def set_corrects(self, post_id: int, corrected_id: int) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(posts).where(posts.c.id == post_id).values(corrects=corrected_id))

    def set_media(self, post_id: int, media: Sequence[str]) -> None:
        with self.engine.begin() as conn:
            conn.execute(update(posts).where(posts.c.id == post_id).values(media=list(media)))

    def mark_held(self, post_id: int, kind: HoldKind, reason: str) -> None:
        with self.engine.begin() as conn:
            self.fenced(conn)  # the dispatcher's write: only under the lease
            conn.execute(
                update(posts)
                .where(posts.c.id == post_id)
                .values(
                    state=PostState.HELD,
                    hold_kind=kind,
                    hold_reason=redact(reason),
                    updated_at=_now(),
                )
            )

    def refuse(self, post_id: int, state: str, kind: HoldKind, reason: str) -> None:
        """Stop a post that must not go out as it is (held or cancelled), masking any secret
        in its stored text and title so the database never keeps one. The dispatcher's
        write: only under the lease."""
        with self.engine.begin() as conn:
            self.fenced(conn)
            row = conn.execute(
                select(posts.c.text, posts.c.title).where(posts.c.id == post_id)
            ).one()
            conn.execute(
                update(posts)
                .where(posts.c.id == post_id)
                .where(posts.c.state.in_([PostState.PENDING, PostState.HELD]))
                .values(
                    state=state,
                    hold_kind=kind if state == PostState.HELD else None,
                    hold_reason=redact(reason),
                    text=None if row.text is None else redact(row.text),
                    title=None if row.title is None else redact(row.title),
                    updated_at=_now(),
                )
            )

    # -- the database's mode: a rehearsal's, or the night's --

    def mode(self) -> str | None:
        """ "rehearsal" or "live", once claimed; a database from before modes were recorded is
        judged by its posts (any live post makes it live)."""
        recorded = self.get_state(MODE_KEY)
        if recorded is not None:
            return str(recorded)
        with self.engine.connect() as conn:
            live = conn.execute(select(posts.c.id).where(posts.c.dry_run.is_(False)).limit(1))
            if live.first() is not None:
                return DatabaseMode.LIVE
            if conn.execute(select(posts.c.id).limit(1)).first() is not None:
                return DatabaseMode.REHEARSAL
        return None

    def claim_mode(self, mode: str) -> str:
        """Record `mode` for a database that has none yet; returns the database's mode (which
        may be the other one: the caller refuses to go on then)."""
        existing = self.mode()
        if existing is not None:
            if self.get_state(MODE_KEY) is None:
                self.put_state(MODE_KEY, existing)
            return existing
        with self.engine.begin() as conn:
            conn.execute(_insert_ignore(conn, kv, "key").values(key=MODE_KEY, value=mode))
            return str(conn.execute(select(kv.c.value).where(kv.c.key == MODE_KEY)).scalar_one())

    def count_posts(self) -> dict[tuple[str, str, str], int]:
        """(platform, event kind, state) -> number of posts."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(posts.c.platform, posts.c.event_kind, posts.c.state, func.count()).group_by(
                    posts.c.platform, posts.c.event_kind, posts.c.state
                )
            ).all()
        return {(r[0], r[1], r[2]): int(r[3]) for r in rows}

    def snapshot_counts(self) -> tuple[int, int]:
        """(accepted, rejected) snapshots so far."""
        with self.engine.connect() as conn:
            rows: dict[bool, int] = dict(
                conn.execute(
                    select(snapshots.c.accepted, func.count()).group_by(snapshots.c.accepted)
                ).all()
            )
        return int(rows.get(True, 0)), int(rows.get(False, 0))

    # -- what the operator console reads (broadcaster/console) --

    def ensure_indexes(self) -> None:
        """Create the outbox's indexes a database made by an older version lacks (tables are
        created when missing, but indexes only with their table)."""
        for index in posts.indexes:
            index.create(self.engine, checkfirst=True)

    def change_marker(self) -> tuple[Any, ...]:
        """A value that differs whenever a snapshot, event, post, audit entry or state key
        changed: four index look-ups and the small state table, cheap enough to ask twice a
        second."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(
                    select(func.max(snapshots.c.id)).scalar_subquery(),
                    select(func.max(events.c.id)).scalar_subquery(),
                    select(func.max(audit.c.id)).scalar_subquery(),
                    select(func.max(posts.c.updated_at)).scalar_subquery(),
                    select(func.max(posts.c.id)).scalar_subquery(),
                )
            ).one()
            state = conn.execute(select(kv.c.key, kv.c.value).order_by(kv.c.key)).all()
        blob = json.dumps([[k, v] for k, v in state], sort_keys=True, default=str)
        return (*row, zlib.crc32(blob.encode()), len(blob))

    def last_snapshot_id(self) -> int | None:
        """The newest accepted snapshot's id, or None before the first."""
        ref = self.last_snapshot_ref()
        return None if ref is None else ref[0]

    def last_snapshot_ref(self) -> tuple[int, datetime] | None:
        """The newest accepted snapshot's id and feed time, or None before the first."""
        with self.engine.connect() as conn:
            row = conn.execute(latest_accepted(snapshots.c.id, snapshots.c.generated_at)).first()
        return None if row is None else (int(row.id), row.generated_at)

    def planned_dry_run(self, account: str) -> bool | None:
        """Whether the account's newest post was planned as a dry run; None before its first."""
        with self.engine.connect() as conn:
            value = conn.execute(
                select(posts.c.dry_run)
                .where(posts.c.account == account)
                .order_by(posts.c.id.desc())
                .limit(1)
            ).scalar()
        return None if value is None else bool(value)


def _redacted(value: Any) -> Any:
    """A state value with every registered secret masked (pause reasons quote platforms'
    errors, which may echo a token)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _redacted(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redacted(v) for v in value]
    return value


def _upsert_base(conn: Connection, table: Table) -> Any:
    """The dialect's INSERT, which knows ON CONFLICT (SQLite and PostgreSQL). The same object
    for the same dialect and table: extend it (every method returns a copy), never change it."""
    return _dialect_insert(conn.dialect.name, table)


@functools.cache
def _dialect_insert(dialect: str, table: Table) -> Any:
    # Imported here: each dialect's module costs a tenth of a second to load, and a command
    # uses one database.
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table)


def _planned() -> tuple[Any, ...]:
    """A post's columns the planner needs (delivery/queues.py's `queued_item` reads them)."""
    c = posts.c
    return (c.event_id, c.event_key, c.event_kind, c.contest_id, c.feed_time, c.priority)


@dataclass(frozen=True, slots=True)
class _Statements:
    """The statements the dispatcher runs at every step, in merges and in recovery, built
    once: building a statement costs SQLAlchemy more than SQLite takes to run it (about 90 us
    against 25). tests/test_dispatch_cost.py checks that steps build none."""

    get_state: Any
    get_states: Any
    outbox_marker: Any
    post_outcome: Any
    post_row: Any
    claim: Any
    claim_returning: Any  # the claim and the attempt number in one statement
    attempts: Any
    mark_sent: Any
    # Below: what dispatch steps, merges and recovery run often enough to matter.
    posts_in_state: Any
    next_not_before: Any
    thread_parts_due: Any
    queued: Any  # the pending posts to plan: at start, all of them
    queued_after: Any  # ... and then those above an id, by id
    queued_few: Any  # ... the first so many (`limit`)
    queued_after_few: Any
    event_data: Any
    events_by_id: Any
    shared_by_id: Any
    event_id: Any
    post_id: Any
    test_posts: Any  # how many of some posts are test data
    retire: Any  # pending posts superseded, with a reason
    merge_into: Any  # ... by a summary
    # A post's text rendered when it is due, or again after a template fix; each only while
    # the post is still as it was read: an operator's hold (or a claim) between a read and
    # the write must never be overwritten.
    fill_deferred: Any
    replace_held: Any


@functools.cache
def _statements() -> _Statements:
    post_id: Any = bindparam("post_id", type_=Integer)
    ids: Any = bindparam("ids", expanding=True, type_=Integer)
    now: Any = bindparam("now", type_=posts.c.updated_at.type)
    few: Any = bindparam("limit", type_=BigInteger)  # as `.limit(n)` types a large n
    queued = (
        select(
            posts.c.id,
            posts.c.account,
            posts.c.dry_run,
            *_planned(),
            posts.c.not_before,
            posts.c.wants_card,
        )
        .where(posts.c.thread_parent.is_(None))
        .where(posts.c.id > bindparam("after_id", type_=Integer))
        .order_by(posts.c.id)
    )
    retire = (
        update(posts)
        .where(posts.c.id.in_(ids))
        .where(_by_id_still(PostState.PENDING))
        .values(
            state=PostState.SUPERSEDED,
            hold_reason=bindparam("reason", type_=posts.c.hold_reason.type),
            updated_at=now,
        )
    )
    rendered = (
        update(posts)
        .where(posts.c.id == post_id)
        .values(
            {
                name: bindparam(f"new_{name}", type_=posts.c[name].type)
                for name in (
                    "state",
                    "text",
                    "title",
                    "hold_reason",
                    "hold_kind",
                    "gate_reason",
                    "wants_card",
                )
            }
            | {"updated_at": now}
        )
    )
    claim = (
        update(posts)
        .where(posts.c.id == post_id)
        .where(posts.c.state == PostState.PENDING)
        .values(
            state=PostState.SENDING,
            attempts=posts.c.attempts + 1,
            updated_at=bindparam("now", type_=posts.c.updated_at.type),
        )
    )
    return _Statements(
        get_state=select(kv.c.value).where(kv.c.key == bindparam("key")),
        get_states=select(kv.c.key, kv.c.value).where(
            kv.c.key.in_(bindparam("keys", expanding=True))
        ),
        outbox_marker=select(
            select(func.max(posts.c.id)).scalar_subquery(),
            select(func.max(audit.c.id)).scalar_subquery(),
            select(func.count())
            .select_from(posts)
            .where(posts.c.state == PostState.HELD)
            .scalar_subquery(),
        ),
        post_outcome=select(
            posts.c.id,
            posts.c.state,
            posts.c.not_before,
            posts.c.sent_at,
            posts.c.thread_parent,
            *_planned(),
        ).where(posts.c.id == post_id),
        post_row=select(posts, events.c.snapshot_id)
        .join(events, events.c.id == posts.c.event_id)
        .where(posts.c.id == post_id),
        claim=claim,
        claim_returning=claim.returning(posts.c.attempts),
        attempts=select(posts.c.attempts).where(posts.c.id == post_id),
        mark_sent=update(posts)
        .where(posts.c.id == post_id)
        .values(
            state=PostState.SENT,
            platform_post_id=bindparam("platform_id", type_=posts.c.platform_post_id.type),
            platform_url=bindparam("url", type_=posts.c.platform_url.type),
            sent_at=bindparam("sent_at", type_=posts.c.sent_at.type),
            updated_at=bindparam("now", type_=posts.c.updated_at.type),
            last_error=None,
        ),
        posts_in_state=select(posts)
        .where(posts.c.state == bindparam("state", type_=posts.c.state.type))
        .order_by(posts.c.id),
        next_not_before=select(func.min(posts.c.not_before))
        .where(posts.c.state == PostState.PENDING)
        .where(posts.c.not_before > bindparam("after", type_=posts.c.not_before.type)),
        thread_parts_due=select(posts)
        .where(posts.c.state == PostState.PENDING)
        .where(posts.c.thread_parent.is_not(None))
        .where(posts.c.not_before.is_(None) | (posts.c.not_before <= now))
        .order_by(posts.c.id),
        queued=queued.where(posts.c.state == PostState.PENDING),
        queued_after=queued.where(_by_id_still(PostState.PENDING)),
        queued_few=queued.where(posts.c.state == PostState.PENDING).limit(few),
        queued_after_few=queued.where(_by_id_still(PostState.PENDING)).limit(few),
        event_data=select(events.c.id, events.c.data).where(events.c.id.in_(ids)),
        events_by_id=select(events).where(events.c.id.in_(ids)),
        shared_by_id=select(snapshots.c.id, snapshots.c.shared).where(snapshots.c.id.in_(ids)),
        event_id=select(events.c.id).where(
            events.c.key == bindparam("key", type_=events.c.key.type)
        ),
        post_id=select(posts.c.id).where(
            posts.c.idempotency_key == bindparam("key", type_=posts.c.idempotency_key.type)
        ),
        test_posts=select(func.count())
        .select_from(posts)
        .where(posts.c.id.in_(ids))
        .where(posts.c.test_data.is_(True)),
        retire=retire,
        merge_into=retire.values(superseded_by=bindparam("by", type_=posts.c.superseded_by.type)),
        fill_deferred=rendered.where(posts.c.state == PostState.PENDING).where(
            posts.c.text.is_(None)
        ),
        replace_held=rendered.where(posts.c.state == PostState.HELD),
    )


@functools.cache
def _kv_upsert(dialect: str) -> Any:
    """A state key set to a value (parameters `key`, `value`), inserted or replaced."""
    insert = _dialect_insert(dialect, kv).values(
        key=bindparam("key", type_=kv.c.key.type), value=bindparam("value", type_=kv.c.value.type)
    )
    return insert.on_conflict_do_update(
        index_elements=["key"], set_={"value": insert.excluded.value}
    )


def _by_id_still(state: str) -> Any:
    """`posts.state == state` written so that the database finds the rows by their ids (a
    list, a range) and checks the state after: compared plainly, SQLite walks every post in
    that state through the state index, which at a backlog of thousands costs far more."""
    return func.coalesce(posts.c.state, "") == state


def latest_accepted(*columns: Any) -> Any:
    """SELECT `columns` of the newest accepted snapshot (no row before the first)."""
    return (
        select(*columns)
        .where(snapshots.c.accepted.is_(True))
        .order_by(snapshots.c.id.desc())
        .limit(1)
    )


# PostgreSQL hands out ids when rows are inserted, not when they commit, so without this a post
# could become visible after others with higher ids, and a reader of "the posts above the last
# id I saw" (the dispatcher's queues) would miss it. Every transaction that adds posts takes
# this lock first and keeps it until it ends: posts then become visible in id order.
POST_IDS_LOCK = 0x706F7374
# A transaction holding that lock (or the lease row's) whose process stops answering (frozen,
# a paused VM) is ended by the server after this long without a statement, so a successor
# does not wait on it until its connection dies (never, for a stopped process). No such
# transaction works between its statements for long (an ingest renders its posts before it
# opens its transaction), so this is a few lease lengths, not the ten minutes an ingest that
# rendered inside its transaction needed; a stricter setting of the server's is kept.
IDLE_IN_TRANSACTION_MS = 30_000


def _done_here(conn: Connection, what: str) -> bool:
    """Whether `what` (a setting, a lock) was done in the transaction or savepoint `conn` is
    in now: what a rolled-back savepoint undid is done again."""
    current = conn.get_nested_transaction() or conn.get_transaction()
    return current is not None and conn.info.get(what) is current


def _mark_done(conn: Connection, what: str) -> None:
    """`what` is done in the transaction or savepoint `conn` is in (begun by the statement
    that did it, if not before)."""
    conn.info[what] = conn.get_nested_transaction() or conn.get_transaction()


def limit_idle(conn: Connection) -> None:
    """On PostgreSQL, from now to the end of `conn`'s transaction: the server ends it after
    IDLE_IN_TRANSACTION_MS without a statement. For a transaction that takes a lock another
    instance's work waits for (adding posts, the lease row); nothing on SQLite."""
    if conn.dialect.name != "postgresql":
        return
    if _done_here(conn, "idle_limited"):
        return
    conn.execute(
        text(
            "SELECT set_config('idle_in_transaction_session_timeout', :limit, true)"
            " FROM pg_settings WHERE name = 'idle_in_transaction_session_timeout'"
            " AND (setting::bigint = 0 OR setting::bigint > :ms)"
        ),
        {"limit": f"{IDLE_IN_TRANSACTION_MS}ms", "ms": IDLE_IN_TRANSACTION_MS},
    )
    _mark_done(conn, "idle_limited")


def _posts_in_id_order(conn: Connection) -> None:
    """On PostgreSQL, before a transaction adds posts (see POST_IDS_LOCK); nothing on SQLite,
    whose writers are one at a time anyway."""
    if conn.dialect.name != "postgresql":
        return
    if _done_here(conn, "post_ids_lock"):
        return
    limit_idle(conn)
    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": POST_IDS_LOCK})
    _mark_done(conn, "post_ids_lock")


def _after_many(conn: Connection) -> None:
    """After an insert of many rows under POST_IDS_LOCK: one plain statement. psycopg sends
    such an insert as a pipeline that ends with a flush request, and reading that request
    stops the server's idle timer, which nothing then starts again: a process frozen just
    after such an insert (the usual end of an ingest's chunk) would never be ended."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT 1"))


def _insert_ignore(conn: Connection, table: Table, key: str) -> Any:
    """INSERT that skips rows whose unique `key` already exists (built once per dialect,
    table and key, as `_upsert_base`)."""
    return _dialect_insert_ignore(conn.dialect.name, table, key)


@functools.cache
def _dialect_insert_ignore(dialect: str, table: Table, key: str) -> Any:
    return _dialect_insert(dialect, table).on_conflict_do_nothing(index_elements=[key])


def _event_from_row(row: Any) -> Event:
    return Event(
        key=row.key,
        kind=EventKind(row.kind),
        at=row.at,
        contest_id=row.contest_id,
        data=row.data,
    )


def _create_private(path: Path, mode: int) -> None:
    """Create a new SQLite file readable by its owner only (its -wal and -shm files take the
    same mode): the outbox holds the night's posts and operators' notes."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        return
    except OSError as exc:  # no right to create it there, a read-only or special folder
        from broadcaster.outbox.schema import DatabaseUnusable  # it imports this module

        raise DatabaseUnusable(
            f"{path}: the SQLite database cannot be created there ({exc.strerror or exc})"
        ) from None
    os.close(fd)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any, *, synchronous: str) -> None:
    cur = dbapi_conn.cursor()
    # First, so that the statements below (and everything after) wait for a busy database.
    cur.execute("PRAGMA busy_timeout=30000")
    # WAL lets the CLI read and act on the outbox while the daemon writes. A database stays in
    # WAL once switched; the switch itself needs the file to itself and answers "locked" at once
    # (the busy timeout does not apply) while another process opens a new database beside it.
    if cur.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
        deadline = time.monotonic() + 30
        while True:
            try:
                cur.execute("PRAGMA journal_mode=WAL")
                break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
    cur.execute(f"PRAGMA synchronous={synchronous}")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()
