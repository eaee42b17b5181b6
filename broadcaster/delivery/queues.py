"""The dispatcher's in-memory queues: each account's pending posts and recent sends, kept in
step with the outbox at the cost of what changed, not of the backlog.

They are built from the database at start (and whenever `invalidate` is called, e.g. on a
takeover), then kept up to date from:
- the posts added since the last look (the pipeline's, an announcement's, a summary): one
  statement returns the newest post id, the newest audit entry and the number of held posts,
  and only posts above the last id seen are read. That is safe because posts become visible
  in id order: SQLite has one writer at a time, and on PostgreSQL every transaction that adds
  posts holds one lock until it ends (`store.POST_IDS_LOCK`);
- what the dispatcher itself does to a post (superseded, claimed, sent, retried, held): each
  post handled is read back once by its id, and the posts it held are expected in the held
  count;
- anything else makes them be built again: an operator's command or the console, and a post
  released after a template fix, are audited (a new audit entry); other holds change the
  held count.

New posts are taken in slices of at most `SLICE` per look: after a burst of tens of thousands,
each dispatch step reads one slice and plans nothing (`behind`) until all are in, so no step
waits for the whole burst and nothing is planned from half of it.

The database stays the truth: a post is read again, and must still be pending, before it is
claimed, and the claim itself only takes a pending post.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Collection
from datetime import datetime
from typing import Any

from broadcaster.domain.events import EventKind
from broadcaster.domain.posts import PostState
from broadcaster.ingest.differ import FINAL_TALLY
from broadcaster.outbox.store import Store
from broadcaster.planning.planner import Item
from broadcaster.planning.queue import AccountQueue

SLICE = 5000  # new posts read per look


def queued_item(
    row: Any,
    *,
    final: bool = False,
    event_id: int | None = None,
    times: dict[datetime, datetime] | None = None,
) -> Item:
    """A post as the planner sees it, from a row with its kind, contest, feed time and
    priority (`final`: its event says it is the final tally, never superseded). `times`:
    feed times already held, shared rather than kept once per post."""
    contest_id = row.contest_id
    feed_time = row.feed_time
    if times is not None:
        # A large night queues tens of thousands of posts of a few thousand contests and a
        # few dozen snapshots: each post holding its own copies of both cost a fifth of the
        # queues' memory. Equal times in other zones or folds are not the same time to share.
        if contest_id is not None:
            contest_id = sys.intern(contest_id)
        held = times.setdefault(feed_time, feed_time)
        if held.tzinfo is feed_time.tzinfo and held.fold == feed_time.fold:
            feed_time = held
    return Item(
        id=row.id,
        kind=EventKind(row.event_kind),
        contest_id=contest_id,
        feed_time=feed_time,
        priority=row.priority,
        final=final or row.event_key == FINAL_TALLY,
        event_id=event_id,
    )


class Queues:
    """The queue of every account the dispatcher serves (`accounts()`, asked at each look).
    `mode(account)`: the dry_run value of the posts this run may send for it (others are
    never queued)."""

    def __init__(
        self,
        store: Store,
        accounts: Callable[[], Collection[str]],
        mode: Callable[[str], bool],
    ) -> None:
        self.store = store
        self.accounts = accounts
        self.mode = mode
        self.queues: dict[str, AccountQueue] = {}
        self._marker: tuple[int, int, int] | None = None
        self._seen_id = 0
        self._stale = True
        self.rebuilds = 0  # how many times they were built (tests and benchmarks read it)
        self.want_cards: set[int] = set()  # queued posts that want a card (drawn ahead)
        self.outside_change = False  # set when someone else changed the outbox (pauses too)
        self._held_here = 0  # posts the dispatcher itself held since the last look
        self.behind = False  # new posts remain to be read: plan nothing yet
        self.absorbed = 0  # new posts read at the last look
        self._times: dict[datetime, datetime] = {}  # feed times the queued posts share

    def invalidate(self) -> None:
        """Build the queues again from the database at the next look."""
        self._stale = True

    def sync(self, now: datetime, since: datetime) -> None:
        """Catch up with the outbox; `since`: sends at or before it no longer count."""
        marker = self.store.outbox_marker()
        old = self._marker
        self._marker = marker
        # The held posts counted: those the dispatcher held itself are expected, not a change
        # made by someone else (which makes the queues be built again).
        if old is not None and (marker[1], marker[2]) != (old[1], old[2] + self._held_here):
            self.outside_change = True
            self._stale = True
        self._held_here = 0
        self.behind, self.absorbed = False, 0
        if self._stale or set(self.accounts()) != set(self.queues):
            self._rebuild(marker[0], now, since)
        elif marker[0] > self._seen_id:
            last = self._add_new(self._seen_id, now, limit=SLICE)
            self.behind = last is not None
            self._seen_id = last if last is not None else marker[0]
        for queue in self.queues.values():
            queue.advance(now, since)

    def _rebuild(self, newest: int, now: datetime, since: datetime) -> None:
        self.queues = {name: AccountQueue() for name in self.accounts()}
        self.want_cards = set()
        self._times = {}
        self._add_new(0, now)
        self.absorbed = 0
        for name, queue in self.queues.items():
            for row in self.store.sent_since(name, since):
                if row.sent_at is not None:
                    queue.add_sent(queued_item(row), row.sent_at)
        self._seen_id = newest
        self._stale = False
        self.rebuilds += 1

    def _add_new(self, after_id: int, now: datetime, limit: int | None = None) -> int | None:
        """Queue the pending posts above `after_id` (the first `limit`); the last id read when
        that limit was reached (more may follow), else None."""
        rows = self.store.queued_posts(after_id, limit)
        self.absorbed = len(rows)
        for row in rows:
            queue = self.queues.get(row.account)
            if queue is not None and bool(row.dry_run) == self.mode(row.account):
                item = queued_item(row, final=row.final, event_id=row.event_id, times=self._times)
                queue.add(item, row.not_before, now)
                if row.wants_card:
                    self.want_cards.add(row.id)
        return rows[-1].id if limit is not None and len(rows) == limit else None

    def held_here(self, count: int = 1) -> None:
        """The dispatcher held `count` posts itself (at send time): the held count they add
        is no one else's change."""
        self._held_here += count

    def settle(self, account: str, post_id: int, now: datetime, final: bool = False) -> None:
        """Read back what became of a post the dispatcher handled, and queue it accordingly
        (sent: counted; pending again: waiting for its time; anything else: gone)."""
        queue = self.queues.get(account)
        if queue is None:
            return
        queue.discard(post_id)
        row = self.store.post_outcome(post_id)
        if row is None:
            return
        if row.state == PostState.HELD:
            self.held_here()  # held in this step (refused, or its card failed)
        elif row.state == PostState.SENT and row.sent_at is not None:
            queue.add_sent(queued_item(row), row.sent_at)
        elif row.state == PostState.PENDING and row.thread_parent is None:
            queue.add(queued_item(row, final=final, event_id=row.event_id), row.not_before, now)
