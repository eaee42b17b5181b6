"""Is the feed being read? The daemon's record of its polls, and the problems it shows.

A poll is good when the feed answered and its snapshot was accepted, was unchanged, or had been
seen before; it failed when the feed was down, its snapshot was rejected, or the cycle failed.
An unchanged feed still serving a snapshot that was rejected keeps failing (a file or URL stuck
on a bad snapshot is not a feed being read). A poll skipped while backing off is neither.
The daemon keeps this record in memory for `/healthz` and in the database (state key
`feed_health`) for `broadcaster status`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from broadcaster.core.config import Problem, ServiceConfig

GOOD = frozenset({"accepted", "unchanged", "duplicate"})
NEUTRAL = frozenset({"waiting"})  # backing off: no request was made


@dataclass
class FeedHealth:
    started_at: float  # when the daemon started (epoch seconds): staleness counts from here
    last_poll: float | None = None
    last_good: float | None = None
    failures: int = 0  # failed polls in a row
    last_outcome: str | None = None
    last_error: str | None = None
    rejected: str | None = None  # why the snapshot the feed serves was rejected, if it was

    def record(self, outcome: str, error: str | None, now: float) -> None:
        self.last_poll = now
        if outcome in NEUTRAL:
            return
        if outcome == "accepted":
            self.rejected = None
        elif outcome == "rejected":
            self.rejected = error or "rejected"
        elif outcome in GOOD and self.rejected is not None:
            outcome, error = "rejected", self.rejected  # still serving the rejected snapshot
        self.last_outcome = outcome
        if outcome in GOOD:
            self.last_good = now
            self.failures = 0
            self.last_error = None
        else:
            self.failures += 1
            self.last_error = error

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> FeedHealth | None:
        if not isinstance(data, dict) or not isinstance(data.get("started_at"), int | float):
            return None
        fields = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in fields})


def _when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


def feed_problems(health: FeedHealth | None, service: ServiceConfig, now: float) -> list[Problem]:
    """Why the feed is not being read, by the `[service]` thresholds; empty when it is."""
    if health is None:
        return []
    problems: list[Problem] = []
    if health.failures >= service.degraded_after_failures:
        problems.append(
            Problem(
                "feed",
                f"the last {health.failures} polls failed ({health.last_outcome}: "
                f"{health.last_error or 'no detail'})",
            )
        )
    since = health.last_good if health.last_good is not None else health.started_at
    if now - since >= service.feed_stale_after:
        last = (
            f"last good poll {_when(health.last_good)}" if health.last_good else "none since start"
        )
        problems.append(
            Problem(
                "feed",
                f"no good poll for {round(now - since)} s (over [service] feed_stale_after = "
                f"{service.feed_stale_after:g} s; {last})",
            )
        )
    return problems
