"""One account's outbox as the planner sees it, kept in memory between dispatch steps.

`plan_account` (planner.py) looks at every pending post of an account on every step, which
costs O(backlog) a step. `AccountQueue` holds the same posts, indexed so that a step costs only
what changed since the last one and what is due now: posts are added and removed as they are
enqueued, superseded, claimed, sent or retried; staleness is worked out again only for the
contests that changed; the most urgent post is the top of a heap. `AccountQueue.plan` makes
exactly the decisions `plan_account` makes for the same posts (tests compare them).

It is a cache: the database stays the truth for what is pending, claimed and sent. The
dispatcher builds it from the database at start and whenever the outbox changed behind its
back, and checks each post against the database before it is claimed.
"""

from __future__ import annotations

import bisect
import heapq
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from typing import overload

from broadcaster.domain.events import PRIORITY, EventKind
from broadcaster.domain.quota import Window
from broadcaster.planning.budget import BudgetState
from broadcaster.planning.planner import (
    MERGEABLE,
    MIN_INTERVAL,
    PACE_WINDOW,
    RESERVE,
    URGENT,
    Item,
    Plan,
    _minutes,
    affordable,
    pace_tokens,
    stale,
)

CALL_PRIORITY = PRIORITY[EventKind.CALLED]


class AccountQueue:
    """An account's pending posts (due now, or waiting for a time) and its recent sends."""

    def __init__(self) -> None:
        self.due: dict[int, Item] = {}  # pending and due, not yet found stale
        self._later: dict[int, tuple[Item, datetime]] = {}  # pending, due at a time
        self._later_heap: list[tuple[datetime, int]] = []
        self._heap: list[tuple[int, int]] = []  # (priority, id) of due posts; lazily cleaned
        self._by_kind: dict[EventKind, dict[int, Item]] = {}
        # Per kind, due posts by (feed time, id) and a heap of their ids, both cleaned lazily:
        # the order summaries take them in and the oldest, without sorting on every step.
        self._order: dict[EventKind, list[tuple[datetime, int]]] = {}
        self._ids: dict[EventKind, list[int]] = {}
        self._dropped: dict[EventKind, int] = {}
        self._finals: set[int] = set()  # due final tallies
        self._groups: dict[str | None, set[int]] = {}  # contest -> due post ids
        self._sent: dict[int, tuple[Item, datetime]] = {}
        self._sent_groups: dict[str | None, set[int]] = {}
        self._sent_times: list[tuple[datetime, int]] = []  # sorted by time
        self._times: list[datetime] | None = None  # recent_sends(), until the sends change
        self._sent_finals = 0
        self._dirty: set[str | None] = set()  # contests whose staleness must be looked at

    # -- what goes in and out --

    def add(self, item: Item, not_before: datetime | None, now: datetime) -> None:
        """A pending post (new, or back after a retry); idempotent."""
        self.discard(item.id)
        if not_before is not None and not_before > now:
            self._later[item.id] = (item, not_before)
            heapq.heappush(self._later_heap, (not_before, item.id))
            return
        self._admit(item)

    def _admit(self, item: Item) -> None:
        self.due[item.id] = item
        heapq.heappush(self._heap, (item.priority, item.id))
        self._by_kind.setdefault(item.kind, {})[item.id] = item
        order = self._order.setdefault(item.kind, [])
        entry = (item.feed_time, item.id)
        if not order or order[-1] < entry:
            order.append(entry)  # the usual case: newer posts come later
        else:
            bisect.insort(order, entry)
        heapq.heappush(self._ids.setdefault(item.kind, []), item.id)
        self._groups.setdefault(item.contest_id, set()).add(item.id)
        if item.kind is EventKind.TALLY and item.final:
            self._finals.add(item.id)
        self._dirty.add(item.contest_id)

    def discard(self, post_id: int) -> None:
        """The post is no longer pending here (claimed, superseded, held, gone)."""
        self._later.pop(post_id, None)  # its heap entry is skipped when it comes up
        item = self.due.pop(post_id, None)
        if item is None:
            return
        bucket = self._by_kind[item.kind]
        bucket.pop(post_id, None)
        dropped = self._dropped.get(item.kind, 0) + 1
        if dropped > len(bucket) + 64:  # mostly dead entries: rebuild them from the live ones
            self._order[item.kind] = sorted((i.feed_time, i.id) for i in bucket.values())
            self._ids[item.kind] = sorted(bucket)
            dropped = 0
        self._dropped[item.kind] = dropped
        group = self._groups.get(item.contest_id)
        if group is not None:
            group.discard(post_id)
            if not group:
                del self._groups[item.contest_id]
        self._finals.discard(post_id)

    def add_sent(self, item: Item, sent_at: datetime) -> None:
        """A post of the account went out (it counts against the budget, and may make pending
        posts of its contest stale)."""
        if item.id in self._sent:
            return
        self.discard(item.id)
        self._sent[item.id] = (item, sent_at)
        bisect.insort(self._sent_times, (sent_at, item.id))
        self._times = None
        self._sent_groups.setdefault(item.contest_id, set()).add(item.id)
        self._sent_finals += item.kind is EventKind.TALLY and item.final
        self._dirty.add(item.contest_id)

    def advance(self, now: datetime, since: datetime) -> None:
        """Admit posts whose time has come; forget sends at or before `since`."""
        while self._later_heap and self._later_heap[0][0] <= now:
            when, post_id = heapq.heappop(self._later_heap)
            entry = self._later.get(post_id)
            if entry is not None and entry[1] == when:
                del self._later[post_id]
                self._admit(entry[0])
        while self._sent_times and self._sent_times[0][0] <= since:
            _, post_id = self._sent_times.pop(0)
            self._times = None
            item, _ = self._sent.pop(post_id)
            group = self._sent_groups[item.contest_id]
            group.discard(post_id)
            if not group:
                del self._sent_groups[item.contest_id]
            self._sent_finals -= item.kind is EventKind.TALLY and item.final

    def recent_sends(self) -> list[datetime]:
        """When the sends still counted went, oldest first. Shared until they change: read
        it, never change it (asked at every step, while sends change a few times an hour)."""
        if self._times is None:
            self._times = [t for t, _ in self._sent_times]
        return self._times

    def __len__(self) -> int:
        return len(self.due) + len(self._later)

    # -- planning --

    def stale(self) -> list[tuple[int, str]]:
        """Due posts made stale by newer ones: `planner.stale`, looked at only for the contests
        that changed since the last call."""
        out: list[tuple[int, str]] = []
        for contest in self._dirty:
            pending = sorted(
                (self.due[i] for i in self._groups.get(contest, ())),
                key=lambda i: (i.priority, i.id),
            )
            if pending:
                sent = [self._sent[i][0] for i in self._sent_groups.get(contest, ())]
                out += stale(pending, sent)
        self._dirty.clear()
        return out

    def head(self) -> Item | None:
        """The most urgent due post, oldest first."""
        while self._heap:
            _, post_id = self._heap[0]
            item = self.due.get(post_id)
            if item is not None:
                return item
            heapq.heappop(self._heap)
        return None

    def second(self) -> Item | None:
        """The due post that comes after the head (a few heap operations)."""
        head = self.head()
        if head is None:
            return None
        taken: list[tuple[int, int]] = []
        found = None
        while self._heap and found is None:
            entry = heapq.heappop(self._heap)
            item = self.due.get(entry[1])
            if item is None:
                continue  # a post no longer due: its entry goes
            taken.append(entry)
            if item.id != head.id:
                found = item
        for entry in taken:
            heapq.heappush(self._heap, entry)
        return found

    def _live(self, kind: EventKind, post_id: int) -> bool:
        item = self.due.get(post_id)
        return item is not None and item.kind is kind

    def in_order(self, kind: EventKind) -> Iterator[int]:
        """Ids of the due posts of a kind by feed time, then id: the order summaries take."""
        seen: set[int] = set()
        for _, post_id in self._order.get(kind, ()):
            if post_id not in seen and self._live(kind, post_id):
                seen.add(post_id)
                yield post_id

    def newest(self, kind: EventKind) -> int | None:
        """The last of `in_order(kind)`."""
        for _, post_id in reversed(self._order.get(kind, ())):
            if self._live(kind, post_id):
                return post_id
        return None

    def oldest_id(self, kind: EventKind) -> int | None:
        """The lowest id among the due posts of a kind."""
        ids = self._ids.get(kind, [])
        while ids and not self._live(kind, ids[0]):
            heapq.heappop(ids)
        return ids[0] if ids else None

    def count(self, kind: EventKind) -> int:
        return len(self._by_kind.get(kind, ()))

    def plan(
        self,
        budget: BudgetState,
        windows: Sequence[Window],
        *,
        now: datetime,
        night_ends: datetime,
    ) -> Plan:
        """`plan_account` for the posts held here. Stale posts are taken out and listed in
        `Plan.supersede`."""
        superseded = self.stale()
        for post_id, _ in superseded:
            self.discard(post_id)
        result = Plan(supersede=superseded)
        head = self.head()
        if head is None:
            result.reason = "nothing to send"
            return result
        if budget.next_slot > now:
            result.wait_until, result.reason = budget.next_slot, budget.blocked_reason or "budget"
            return result
        if head.kind in URGENT:
            result.send, result.reason = head.id, "urgent"
            return result
        end = night_ends if night_ends > now + MIN_INTERVAL else now + timedelta(hours=1)
        left = affordable(windows, budget, now, end)
        if self._finals or self._sent_finals:
            return self._night_over(result, head, left - 1)
        usable = left - RESERVE
        if usable <= 0:
            result.reason = (
                "the last two posts of the budget are kept for a correction, a majority, the "
                "final tally and the calls that come with it"
            )
            return result
        return self._paced(result, head, now, (end - now) / usable)

    def _paced(self, result: Plan, head: Item, now: datetime, interval: timedelta) -> Plan:
        capacity = max(1, int(PACE_WINDOW / interval))
        tokens = pace_tokens(self.recent_sends(), now, interval, capacity)
        need = 1.0 if head.priority <= CALL_PRIORITY else max(1.0, capacity / 2)
        if tokens < need:
            result.wait_until = now + (need - tokens) * interval
            result.reason = (
                f"pacing: one post every {_minutes(interval)}, {capacity} at most at once"
            )
            return result
        room = int(tokens - need) + 1
        same = self.count(head.kind)
        crowded = same > room or interval > MIN_INTERVAL
        if head.kind in MERGEABLE and same > 1 and crowded:
            result.merge = OldestFirst(self, head.kind)
            result.reason = f"budget is tight: {same} {head.kind} posts merged"
            return result
        result.send = head.id
        result.reason = "ample budget" if room >= len(self.due) else "paced"
        return result

    def _night_over(self, result: Plan, head: Item, usable: int) -> Plan:
        """planner._night_over: calls still waiting go before the final tally."""
        # The calls still waiting: every due post of a call's priority (nothing more urgent
        # is due, or it would have gone first); a final tally is of a lower priority.
        counts = {
            k: len(items)
            for k, items in self._by_kind.items()
            if items and PRIORITY[k] <= CALL_PRIORITY
        }
        calls = sum(counts.values())
        if calls and usable > 0:
            first = min(i for i in (self.oldest_id(k) for k in counts) if i is not None)
            kind = self.due[first].kind
            if calls > usable and len(counts) == 1 and kind in MERGEABLE:
                result.merge = OldestFirst(self, kind)
                result.reason = f"night's end: {calls} {kind} posts merged"
            else:
                result.send, result.reason = first, "night's end"
            return result
        if self._finals:
            result.send, result.reason = min(self._finals), "urgent"
            return result
        if usable <= 0:
            result.reason = (
                "the last post of the budget is kept for a correction, a majority or the final "
                "tally"
            )
            return result
        result.send, result.reason = head.id, "night's end"
        return result


class OldestFirst(Sequence[int]):
    """The due posts of one kind to merge, by feed time then id, as a sequence read only as
    far as it is used: a summary takes the oldest that fit (and speaks as of the newest), so
    a merge never walks a backlog of thousands. Read it before the queue changes."""

    def __init__(self, queue: AccountQueue, kind: EventKind) -> None:
        self._walk = queue.in_order(kind)
        self._read: list[int] = []
        self._len = queue.count(kind)
        self._newest = queue.newest(kind)

    def __len__(self) -> int:
        return self._len

    def _read_to(self, n: int) -> None:
        for post_id in self._walk:
            self._read.append(post_id)
            if len(self._read) >= n:
                return

    @overload
    def __getitem__(self, index: int) -> int: ...

    @overload
    def __getitem__(self, index: slice) -> list[int]: ...

    def __getitem__(self, index: int | slice) -> int | list[int]:
        if isinstance(index, slice):
            self._read_to(index.indices(self._len)[1])
            return self._read[index]
        if index < 0:
            index += self._len
        if not 0 <= index < self._len:
            raise IndexError(index)
        if index == self._len - 1 and self._newest is not None:
            return self._newest
        self._read_to(index + 1)
        return self._read[index]
