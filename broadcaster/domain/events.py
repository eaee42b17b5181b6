"""Events: what changed between two accepted snapshots, each with a deterministic key."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class EventKind(StrEnum):
    PROGRESS = "progress"  # a contest crossed a reporting threshold
    LEADER = "leader"  # the leader of a contest changed
    CALLED = "called"  # winner(s) declared, or seats allocated
    CORRECTED = "corrected"  # a called contest's figures or winner changed
    TALLY = "tally"  # the periodic national seat tally
    MAJORITY = "majority"  # a party or coalition reached a majority of seats
    OFFICIAL = "official"  # a contest called on provisional figures was declared official
    CERTIFIED = "certified"  # the whole election's results were certified
    POSTPONED = "postponed"  # a contest will not report tonight: postponed, suspended, withheld
    RECOUNT = "recount"  # a recount of a contest was announced
    TIE = "tie"  # a tie decides a contest: for the lead, or for its last seat
    CLOSE = "close"  # the count is nearly done and the margin too close to call
    SUMMARY = "summary"  # several pending posts of one kind merged when the budget is tight
    ANNOUNCEMENT = (
        "announcement"  # an operator's own post, as written (broadcaster/outbox/announce.py)
    )


# Lower is more urgent; the dispatcher sends in this order.
PRIORITY: dict[EventKind, int] = {
    EventKind.CORRECTED: 0,
    EventKind.MAJORITY: 1,
    EventKind.CALLED: 2,
    EventKind.TALLY: 3,
    EventKind.LEADER: 4,
    EventKind.PROGRESS: 5,
    # After the calls: at the night's end the calls still waiting are merged together, and a
    # contest made official or a seat that will not report tonight must not stand in the way.
    EventKind.OFFICIAL: 3,
    EventKind.CERTIFIED: 1,
    EventKind.POSTPONED: 3,
    EventKind.RECOUNT: 3,
    EventKind.TIE: 3,
    EventKind.CLOSE: 4,
    EventKind.SUMMARY: 2,
    EventKind.ANNOUNCEMENT: 2,  # paced like a call, never merged nor made stale
}

# Kinds the differ produces (a summary is made by the planner, from these).
FEED_KINDS = tuple(k for k in EventKind if k not in (EventKind.SUMMARY, EventKind.ANNOUNCEMENT))
# Kinds about one contest (the others are about the whole election).
CONTEST_KINDS = (
    EventKind.PROGRESS,
    EventKind.LEADER,
    EventKind.CALLED,
    EventKind.CORRECTED,
    EventKind.OFFICIAL,
    EventKind.POSTPONED,
    EventKind.RECOUNT,
    EventKind.TIE,
    EventKind.CLOSE,
)
# Kinds posted through a template (an announcement is posted as its operator wrote it).
TEMPLATED_KINDS = tuple(k for k in EventKind if k is not EventKind.ANNOUNCEMENT)


@dataclass(frozen=True, slots=True)
class Event:
    """One thing worth posting. `key` is unique for the whole night and stable across replays."""

    key: str
    kind: EventKind
    at: datetime  # the generated time of the snapshot that revealed it (feed time)
    contest_id: str | None = None
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def priority(self) -> int:
        return PRIORITY[self.kind]
