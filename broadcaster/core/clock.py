"""Time as the pipeline sees it: the wall clock on the night, the feed's clock in a rehearsal."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware."""
        ...


class WallClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class FeedClock:
    """Follows the generated times of the snapshots being replayed, so a fast replay behaves
    exactly like the night it records. It never goes backwards."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(1970, 1, 1, tzinfo=UTC)

    def now(self) -> datetime:
        return self._now

    def advance_to(self, moment: datetime) -> None:
        if moment > self._now:
            self._now = moment
