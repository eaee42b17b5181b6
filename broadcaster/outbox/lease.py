"""Who publishes: a lease row in the database, held by one instance at a time.

The active instance renews the lease every few seconds; a standby takes it over once it has
run out, adding one to its epoch. Every claim of a post and every write after a platform call
checks, in its own transaction, that this instance still holds the lease at the epoch it took
(`Lease.check`, the fence): an instance that was paused or cut off past its lease and comes
back cannot claim or record anything, because its epoch is no longer the lease's. On
PostgreSQL the check reads the lease row FOR SHARE, so a takeover (which updates the row) waits
for a claim in progress to commit, and a claim after the takeover sees the new epoch. Every
transaction that locks the row has the server end it after a short silence
(`store.limit_idle`): a process frozen while holding it cannot stop a takeover for longer.

Only ordinary transactions are used (no session state, no session-level advisory lock), so a
connection pooler in transaction mode (PgBouncer's `pool_mode = transaction`) does not break it.

Time: the lease's expiry is judged by the database's clock (PostgreSQL's now()), so the
machines' clocks need not agree; each instance also keeps a local deadline on its monotonic
clock and stops claiming well before it (`margin`), so that a platform call started under the
lease finishes before a standby can take over.

SQLite is for one machine: `SQLiteInstanceLock` refuses a second instance on the same file.
"""

from __future__ import annotations

import fcntl
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.engine import Connection

from broadcaster.outbox.store import (
    Store,
    _insert_ignore,
    _upsert_base,
    instances,
    leadership,
    limit_idle,
)

log = logging.getLogger(__name__)

LEASE = "daemon"  # the lease row's name: one publishing daemon per database


class LeaseLost(Exception):
    """This instance no longer holds the lease (or is about to lose it): it must not claim a
    post or record an outcome."""


class InstanceRefused(Exception):
    """Another instance already runs on this SQLite database; the message says which."""


@dataclass(frozen=True, slots=True)
class LeaseView:
    """The lease as stored: who holds it, at which epoch, since and until when."""

    holder: str | None
    epoch: int
    acquired_at: datetime | None
    renewed_at: datetime | None
    expires_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "holder": display_name(self.holder),
            "epoch": self.epoch,
            "since": _iso(self.acquired_at),
            "renewed_at": _iso(self.renewed_at),
            "expires_at": _iso(self.expires_at),
        }


def default_instance() -> str:
    """This process's name when the configuration gives none: host and process id."""
    return f"{socket.gethostname()}:{os.getpid()}"


def display_name(holder: str | None) -> str | None:
    """An instance's name without the random part that makes each process's id unique."""
    return None if holder is None else holder.split("#", 1)[0]


def db_now(conn: Connection) -> datetime:
    """The database's clock (PostgreSQL), so that machines' clocks need not agree; SQLite
    serves one machine, whose clock it is."""
    if conn.dialect.name == "postgresql":
        value = conn.execute(select(func.now())).scalar_one()
        return value.astimezone(UTC)
    return datetime.now(UTC)


def read_lease(conn: Connection) -> LeaseView | None:
    row = conn.execute(select(leadership).where(leadership.c.name == LEASE)).first()
    if row is None:
        return None
    return LeaseView(row.holder, int(row.epoch), row.acquired_at, row.renewed_at, row.expires_at)


class Lease:
    """This instance's side of the lease. `tick()` takes or renews it; `check()` is the fence
    the store runs inside claims and outcome writes (Store.fence)."""

    def __init__(
        self,
        store: Store,
        name: str,
        *,
        seconds: float,
        margin: float | None = None,
        exclusive: bool = False,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.name = name
        # Unique to this process even when two share a configured name: a holder can never
        # mistake another process's lease for its own.
        self.holder = f"{name}#{secrets.token_hex(4)}"
        self.seconds = seconds
        self.margin = seconds / 2 if margin is None else margin
        # SQLite under SQLiteInstanceLock: no other instance can exist, so a lease left by a
        # killed predecessor is taken at once rather than waited out.
        self.exclusive = exclusive
        self.monotonic = monotonic
        self.epoch: int | None = None
        # (the previous holder's name, the new epoch) when this instance last took the lease
        # from another one (not at a first start, nor a restart on SQLite's one machine).
        self.taken_from: tuple[str, int] | None = None
        self._deadline = 0.0
        self._lock = threading.Lock()

    # -- taking and keeping it --

    def tick(self) -> bool:
        """Take the lease if it is free or has run out, renew it if this instance holds it;
        True when this instance leads afterwards. Raises on a database error (the local
        deadline then decides how long this instance may still act)."""
        started = self.monotonic()
        with self.store.engine.begin() as conn:
            # The row is locked until this commits: a process frozen before then must not
            # keep every standby from taking over.
            limit_idle(conn)
            now = db_now(conn)
            row = self._locked_row(conn)
            mine = row.holder == self.holder
            free = row.holder is None or row.expires_at is None or row.expires_at <= now
            if mine or free or self.exclusive:
                epoch = int(row.epoch) if mine else int(row.epoch) + 1
                values: dict[str, Any] = {
                    "holder": self.holder,
                    "epoch": epoch,
                    "renewed_at": now,
                    "expires_at": now + timedelta(seconds=self.seconds),
                }
                if not mine:
                    values["acquired_at"] = now
                conn.execute(update(leadership).where(leadership.c.name == LEASE).values(**values))
            else:
                epoch = None
            before = display_name(row.holder) if epoch is not None and not mine else None
        with self._lock:
            if before is not None and epoch is not None and not self.exclusive:
                self.taken_from = (before, epoch)
            if epoch is not None and self.epoch is not None and epoch != self.epoch:
                # Lost and taken back meanwhile: a new epoch all the same.
                log.warning("lease: epoch %d replaced by %d", self.epoch, epoch)
            self.epoch = epoch
            self._deadline = started + self.seconds if epoch is not None else 0.0
        return epoch is not None

    def _locked_row(self, conn: Connection) -> Any:
        query = select(leadership).where(leadership.c.name == LEASE).with_for_update()
        row = conn.execute(query).first()
        if row is None:
            conn.execute(_insert_ignore(conn, leadership, "name").values(name=LEASE, epoch=0))
            row = conn.execute(query).one()
        return row

    def release(self) -> None:
        """Give the lease up now (a clean stop): a standby takes over at its next check
        instead of waiting for the lease to run out."""
        with self._lock:
            epoch, self.epoch, self._deadline = self.epoch, None, 0.0
        if epoch is None:
            return
        with self.store.engine.begin() as conn:
            limit_idle(conn)  # the row is locked until this commits
            conn.execute(
                update(leadership)
                .where(leadership.c.name == LEASE)
                .where(leadership.c.holder == self.holder)
                .where(leadership.c.epoch == epoch)
                .values(expires_at=db_now(conn))
            )

    def drop(self) -> None:
        """Stop acting as leader at once (the lease could not be renewed in time)."""
        with self._lock:
            self.epoch, self._deadline = None, 0.0

    # -- what this instance may do --

    def remaining(self) -> float:
        """Seconds of lease left by this instance's own clock (0 when not leading)."""
        with self._lock:
            if self.epoch is None:
                return 0.0
            return max(0.0, self._deadline - self.monotonic())

    def leading(self) -> bool:
        return self.remaining() > 0

    def may_claim(self) -> bool:
        """Leading with enough lease left for a platform call to finish under it."""
        return self.remaining() > self.margin

    def check(self, conn: Connection, claiming: bool) -> None:
        """The fence, inside the caller's transaction: raise LeaseLost unless the lease row
        still names this instance at its epoch (and, to claim, has time left by both clocks)."""
        epoch = self.epoch
        if epoch is None:
            raise LeaseLost("this instance does not hold the lease")
        if claiming and not self.may_claim():
            raise LeaseLost(f"less than {self.margin:g} s of lease left: not claiming")
        # FOR SHARE: a takeover's update of the row waits until this transaction ends, so the
        # server must end it should this process freeze before it commits.
        limit_idle(conn)
        row = conn.execute(
            select(leadership.c.holder, leadership.c.epoch, leadership.c.expires_at)
            .where(leadership.c.name == LEASE)
            .with_for_update(read=True)
        ).first()
        if row is None or row.holder != self.holder or row.epoch != epoch:
            holder = None if row is None else display_name(row.holder)
            now_epoch = None if row is None else row.epoch
            raise LeaseLost(
                f"the lease is held by {holder} at epoch {now_epoch}, not by this instance at "
                f"epoch {epoch}"
            )
        if claiming and (row.expires_at is None or row.expires_at <= db_now(conn)):
            raise LeaseLost("the lease has run out")

    # -- for status and /healthz --

    def report(self, role: str, since: datetime) -> None:
        """Record this instance's role in the instances table (and forget instances not seen
        for a day)."""
        with self.store.engine.begin() as conn:
            now = db_now(conn)
            values = {"role": role, "since": since, "seen_at": now, "epoch": self.epoch}
            statement = _upsert_base(conn, instances).values(id=self.name, **values)
            conn.execute(statement.on_conflict_do_update(index_elements=["id"], set_=values))
            conn.execute(delete(instances).where(instances.c.seen_at < now - timedelta(days=1)))


def leadership_report(store: Store, lease_seconds: float) -> dict[str, Any]:
    """The lease and the instances seen lately (within three leases), for status."""
    with store.engine.connect() as conn:
        now = db_now(conn)
        view = read_lease(conn)
        rows = conn.execute(
            select(instances)
            .where(instances.c.seen_at >= now - timedelta(seconds=3 * lease_seconds))
            .order_by(instances.c.id)
        ).all()
    leader = None
    if view is not None and view.holder is not None and (view.expires_at or now) > now:
        leader = view.to_dict()
    return {
        "leader": leader,
        "epoch": view.epoch if view else 0,
        "instances": [
            {
                "id": r.id,
                "role": r.role,
                "since": _iso(r.since),
                "seen_at": _iso(r.seen_at),
                "epoch": r.epoch,
            }
            for r in rows
        ],
    }


class SQLiteInstanceLock:
    """One daemon per SQLite file: an OS lock on `<file>.lock`, released by the kernel when
    the process ends however it ends (so a killed daemon's restart is never refused)."""

    def __init__(self, database: Path) -> None:
        self.path = database.with_name(database.name + ".lock")
        self._fd: int | None = None

    def acquire(self) -> SQLiteInstanceLock:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 200).decode("utf-8", "replace").strip() or "another process"
            os.close(fd)
            raise InstanceRefused(
                f"another broadcaster daemon ({holder}) is already running on the SQLite "
                f"database {self.path.with_suffix('')}; SQLite is for one machine and one "
                "daemon. Stop the other one first, or run several instances on PostgreSQL "
                "(docs/operations.md, 'Running two machines')"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the lock
            self._fd = None


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()
