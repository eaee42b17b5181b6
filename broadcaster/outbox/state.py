"""The small durable state stages hand each other between cycles and across restarts.

It lives in the database's key-value table, each key owned here with a typed accessor: no other
module names a key or parses a value. Accounts' states (a pause and why, the circuit breaker's
count, why nothing goes now, a platform's wait, the quota a platform revealed, its last
rate-limit headers) and the night's (when it started, template problems, plausibility
findings, the feed's health) are read and written through `State`.

`State` also serves publishers as their `PlatformState` (broadcaster/publishers/base.py): the
only things a platform adapter may record are a wait, a learned quota, rate-limit headers and
its own namespaced keys (a quota day count, a live broadcast's ids).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection

from broadcaster.domain.quota import Window
from broadcaster.outbox.store import Store

# Keys, each with the account's name after the colon where it is per account.
PAUSED = "paused:"
FAILURES = "failures:"
WAITING = "waiting:"
BLOCKED = "blocked:"
LEARNED = "learned_quota:"
RATE_LIMITS = "ratelimit:"
ADAPTER = "adapter:"  # a publisher's own keys: adapter:<key>
NIGHT_STARTED = "night_started"
TEMPLATE_PROBLEMS = "template_problems"
GATE_FINDINGS = "gate_findings"
FEED_HEALTH = "feed_health"
LIVE_STATUS = "live:status"

RECENT_FINDINGS = 100  # plausibility findings kept for `status`


@dataclass(frozen=True, slots=True)
class PauseRecord:
    """Why an account is paused, since when, by whom, and until when (a breaker's cool-down;
    None: until someone resumes it)."""

    reason: str
    at: datetime | None = None
    until: datetime | None = None
    by: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "reason": self.reason,
            "at": _iso(self.at),
            "until": _iso(self.until),
            "by": self.by,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PauseRecord:
        return cls(
            reason=str(data.get("reason") or "paused"),
            at=_time(data.get("at")),
            until=_time(data.get("until")),
            by=data.get("by"),
        )


@dataclass(frozen=True, slots=True)
class Waiting:
    """Why an account sends nothing now, and until when (None: until something changes)."""

    reason: str
    until: datetime | None = None


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def _time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value) if value else None


def _window(data: Any) -> Window | None:
    if not isinstance(data, dict):
        return None
    return Window(posts=int(data["posts"]), seconds=int(data["seconds"]))


class State:
    """Typed access to the key-value state of one database."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def _get(self, key: str, default: Any = None, conn: Connection | None = None) -> Any:
        return self.store.get_state(key, default, conn=conn)

    def _put(self, key: str, value: Any, conn: Connection | None = None) -> None:
        self.store.put_state(key, value, conn=conn)

    # -- pauses and the circuit breaker --

    def pause(self, account: str) -> PauseRecord | None:
        data = self._get(PAUSED + account)
        return PauseRecord.from_dict(data) if isinstance(data, dict) else None

    def pauses_and_blocks(
        self, accounts: Iterable[str]
    ) -> dict[str, tuple[PauseRecord | None, datetime | None]]:
        """Each account's pause and platform wait (`pause`, `blocked_until`), read in one
        statement: the dispatcher asks for every account's at each turn."""
        names = list(accounts)
        found = self.store.get_states([k + n for n in names for k in (PAUSED, BLOCKED)])
        out: dict[str, tuple[PauseRecord | None, datetime | None]] = {}
        for name in names:
            data = found.get(PAUSED + name)
            record = PauseRecord.from_dict(data) if isinstance(data, dict) else None
            out[name] = (record, _time(found.get(BLOCKED + name)))
        return out

    def set_pause(self, account: str, record: PauseRecord, conn: Connection | None = None) -> None:
        self._put(PAUSED + account, record.to_dict(), conn)

    def resume(self, account: str, conn: Connection | None = None) -> None:
        """Lift a pause and reset the breaker with it, so the next failure does not pause the
        account again at once."""
        self._put(PAUSED + account, None, conn)
        self._put(FAILURES + account, 0, conn)

    def failures(self, account: str) -> int:
        return int(self._get(FAILURES + account, 0) or 0)

    def set_failures(self, account: str, count: int) -> None:
        if count != self.failures(account):
            self._put(FAILURES + account, count)

    # -- waiting: why nothing goes now, a platform's wait --

    def waiting(self, account: str) -> Waiting | None:
        data = self._get(WAITING + account)
        if not isinstance(data, dict):
            return None
        return Waiting(str(data.get("reason") or "waiting"), _time(data.get("until")))

    def set_waiting(self, account: str, waiting: Waiting) -> None:
        """Record why the account waits; written only when it changed (a dispatch step runs
        every few seconds, and each write is a synced transaction)."""
        if waiting != self.waiting(account):
            self._put(WAITING + account, {"reason": waiting.reason, "until": _iso(waiting.until)})

    def limits(self, account: str) -> tuple[Window | None, datetime | None]:
        """`learned_quota` and `blocked_until` in one statement: the dispatcher reads both
        again after every call to the platform."""
        found = self.store.get_states([LEARNED + account, BLOCKED + account])
        return _window(found.get(LEARNED + account)), _time(found.get(BLOCKED + account))

    def blocked_until(self, account: str) -> datetime | None:
        return _time(self._get(BLOCKED + account))

    def block(self, account: str, until: datetime) -> None:
        """The platform said: nothing before `until` (an earlier, longer wait stands)."""
        current = self.blocked_until(account)
        if current is None or current < until:
            self._put(BLOCKED + account, until.isoformat())

    # -- what platforms reveal --

    def learned_quota(self, account: str) -> Window | None:
        return _window(self._get(LEARNED + account))

    def learn_quota(self, account: str, window: Window) -> None:
        """The platform's own cap for the account (X's daily cap by tier)."""
        if window != self.learned_quota(account):
            self._put(LEARNED + account, {"posts": window.posts, "seconds": window.seconds})

    def rate_limits(self, account: str) -> dict[str, Any]:
        return dict(self._get(RATE_LIMITS + account) or {})

    def note_rate_limits(self, account: str, headers: dict[str, Any]) -> None:
        """The platform's last rate-limit headers, for `status` and the console."""
        if headers != self.rate_limits(account):
            self._put(RATE_LIMITS + account, headers)

    def get_state(self, key: str, default: Any = None) -> Any:
        """A publisher's own value (its keys are namespaced apart from everything above)."""
        return self._get(ADAPTER + key, default)

    def put_state(self, key: str, value: Any) -> None:
        self._put(ADAPTER + key, value)

    # -- the night --

    def night_started(self) -> datetime | None:
        return _time(self._get(NIGHT_STARTED))

    def start_night(self, at: datetime) -> None:
        """The planner spreads each account's budget over the night from the first snapshot."""
        if self.night_started() is None:
            self._put(NIGHT_STARTED, at.isoformat())

    def template_problems(self) -> list[str]:
        return [str(p) for p in self._get(TEMPLATE_PROBLEMS, []) or []]

    def set_template_problems(self, problems: list[str]) -> None:
        if problems != self.template_problems():
            self._put(TEMPLATE_PROBLEMS, problems)

    def gate_findings(self, conn: Connection | None = None) -> list[dict[str, Any]]:
        return list(self._get(GATE_FINDINGS, [], conn) or [])

    def add_gate_findings(self, found: list[dict[str, Any]], conn: Connection) -> None:
        """Keep the newest findings, written with the snapshot that raised them."""
        kept = [*self.gate_findings(conn), *found][-RECENT_FINDINGS:]
        self._put(GATE_FINDINGS, kept, conn)

    def feed_health(self) -> dict[str, Any] | None:
        value = self._get(FEED_HEALTH)
        return value if isinstance(value, dict) else None

    def set_feed_health(self, value: dict[str, Any]) -> None:
        self._put(FEED_HEALTH, value)

    def live_status(self) -> dict[str, Any] | None:
        value = self._get(LIVE_STATUS)
        return value if isinstance(value, dict) else None

    def set_live_status(self, value: dict[str, Any]) -> None:
        self._put(LIVE_STATUS, value)

    # -- alerts to the operators (broadcaster/alerts): what was said, kept across restarts --

    def alert_records(self) -> dict[str, AlertRecord]:
        """What was last alerted about each thing, by `kind:subject`."""
        data = self._get(ALERTS_SENT)
        if not isinstance(data, dict):
            return {}
        out = {}
        for key, value in data.items():
            record = AlertRecord.from_dict(value)
            if record is not None:
                out[str(key)] = record
        return out

    def set_alert_records(self, records: dict[str, AlertRecord]) -> None:
        """Written only when something changed (the alerter runs every poll)."""
        if records != self.alert_records():
            self._put(ALERTS_SENT, {key: r.to_dict() for key, r in records.items()})

    def feed_mark(self) -> FeedMark | None:
        """The newest accepted snapshot the alerter has seen, and when it first saw it."""
        data = self._get(ALERTS_FEED)
        if not isinstance(data, dict) or not isinstance(data.get("snapshot_id"), int):
            return None
        seen = _time(data.get("seen_at"))
        return None if seen is None else FeedMark(int(data["snapshot_id"]), seen)

    def set_feed_mark(self, mark: FeedMark) -> None:
        if mark != self.feed_mark():
            self._put(ALERTS_FEED, {"snapshot_id": mark.snapshot_id, "seen_at": _iso(mark.at)})


ALERTS_SENT = "alerts:sent"
ALERTS_FEED = "alerts:feed"


@dataclass(frozen=True, slots=True)
class AlertRecord:
    """The last alert about one thing: the facts it reported (held post ids, a pause's reason),
    when it went out, the destinations that have it, and whether the thing still holds."""

    facts: tuple[str, ...]
    sent_at: datetime
    delivered: tuple[str, ...] = ()
    active: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {
            "facts": list(self.facts),
            "sent_at": self.sent_at.isoformat(),
            "delivered": list(self.delivered),
            "active": self.active,
        }

    @classmethod
    def from_dict(cls, data: Any) -> AlertRecord | None:
        if not isinstance(data, dict):
            return None
        try:
            sent_at = _time(data.get("sent_at"))
        except (TypeError, ValueError):
            return None
        if sent_at is None:
            return None
        return cls(
            facts=tuple(str(f) for f in data.get("facts") or ()),
            sent_at=sent_at,
            delivered=tuple(str(d) for d in data.get("delivered") or ()),
            active=bool(data.get("active", True)),
        )


@dataclass(frozen=True, slots=True)
class FeedMark:
    """The newest accepted snapshot's id, and when it was first seen (wall clock)."""

    snapshot_id: int
    at: datetime
