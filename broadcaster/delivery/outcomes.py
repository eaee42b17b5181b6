"""What a dispatch step did, and what looking a post up on its platform found."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from broadcaster.publishers.base import PublishedRef


@dataclass
class DispatchStats:
    """Counts of one or more dispatch steps."""

    sent: int = 0
    retried: int = 0
    failed: int = 0
    held: int = 0
    absorbed: int = 0  # new posts read into the queues while catching up with a burst

    def add(self, other: DispatchStats) -> None:
        self.sent += other.sent
        self.retried += other.retried
        self.failed += other.failed
        self.held += other.held
        self.absorbed += other.absorbed

    @property
    def progressed(self) -> bool:
        """Something was settled, or a burst's posts read in: a later step may find more to
        do."""
        return bool(self.sent + self.failed + self.held + self.absorbed)


class Found(StrEnum):
    """What a look-up for a post left in doubt found."""

    SENT = "sent"  # it is on the platform
    ABSENT = "absent"  # it is certainly not there: safe to send again
    LATER = "later"  # the platform is still processing it: ask again later
    UNKNOWABLE = "unknowable"  # the platform cannot look: an operator must
    FAILED = "failed"  # the look-up itself failed: try again on a later step


@dataclass(frozen=True, slots=True)
class Lookup:
    found: Found
    ref: PublishedRef | None = None  # where it is, when SENT
    detail: str = ""  # why, for the other outcomes
