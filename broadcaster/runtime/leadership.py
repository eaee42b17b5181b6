"""The daemon's role: active (holds the lease, polls and publishes) or standby (ready, waiting
for the lease). A thread of its own renews the lease, so that no slow poll or platform call in
the scheduler's jobs can make this instance miss a renewal.

An instance that cannot reach the database keeps acting only while its lease lasts by its own
clock (less the claiming margin, outbox/lease.py), then stands by: it never publishes on a lease
it cannot show it still holds.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from broadcaster.outbox.lease import Lease

log = logging.getLogger(__name__)

ACTIVE = "active"
STANDBY = "standby"
STARTING = "starting"


@dataclass(frozen=True, slots=True)
class Role:
    role: str
    since: datetime
    epoch: int | None


class Leadership:
    def __init__(
        self,
        lease: Lease,
        *,
        renew_seconds: float,
        stop: threading.Event,
        on_active: Callable[[], None] | None = None,
    ) -> None:
        self.lease = lease
        self.on_active = on_active
        self.renew_seconds = renew_seconds
        self.stop = stop
        self.database_error: str | None = None
        self._role = Role(STARTING, datetime.now(UTC), None)
        self._thread = threading.Thread(target=self._loop, name="leadership", daemon=True)
        self._changed = threading.Condition()

    @property
    def instance(self) -> str:
        return self.lease.name

    @property
    def role(self) -> Role:
        return self._role

    def active_epoch(self) -> int | None:
        """The epoch this instance leads at, or None when it must not poll or publish."""
        role = self._role
        if role.role != ACTIVE or not self.lease.leading():
            return None
        return role.epoch

    # -- the loop --

    def start(self) -> Leadership:
        self.tick()  # the first answer before the scheduler starts: active or standby
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self.stop.wait(self.renew_seconds):
            self.tick()

    def tick(self) -> None:
        """Take or renew the lease once, and record the role that follows."""
        try:
            leading = self.lease.tick()
            self.database_error = None
        except Exception as exc:  # the database is unreachable: act on the local deadline
            self.database_error = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
            log.warning("lease not renewed: %s", self.database_error)
            leading = self.lease.leading()
            if not leading:
                self.lease.drop()
        self._set(ACTIVE if leading else STANDBY)
        if self.database_error is None:
            try:
                self.lease.report(self._role.role, self._role.since)
            except Exception as exc:
                log.debug("role not recorded: %s", exc)

    def _set(self, role: str) -> None:
        epoch = self.lease.epoch if role == ACTIVE else None
        old = self._role
        if old.role == role and old.epoch == epoch:
            return
        self._role = Role(role, datetime.now(UTC), epoch)
        if role == ACTIVE:
            log.warning("this instance (%s) is now ACTIVE at epoch %s", self.instance, epoch)
            if self.on_active is not None:
                self.on_active()
        else:
            log.warning("this instance (%s) is now STANDBY", self.instance)
        with self._changed:
            self._changed.notify_all()

    def wait_for_change(self, timeout: float) -> None:
        with self._changed:
            self._changed.wait(timeout)

    def close(self) -> None:
        """After the scheduler's jobs have stopped: give the lease up for a standby."""
        self._thread.join(timeout=self.renew_seconds + 5)
        try:
            self.lease.release()
        except Exception as exc:
            log.warning("lease not released (a standby takes over when it runs out): %s", exc)

    # -- for /healthz --

    def describe(self) -> dict[str, Any]:
        role = self._role
        return {
            "role": role.role,
            "instance": self.instance,
            "since": role.since.isoformat(),
            "epoch": role.epoch,
            "lease_left_seconds": round(self.lease.remaining(), 1),
            "database_error": self.database_error,
        }
