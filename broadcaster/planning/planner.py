"""Which events become posts on which accounts, and, under each account's budget, when.

At ingest, every event becomes one intended post per account that wants its kind (`plan`). At
dispatch, `plan_account` decides for one account what goes out now:

- a pending post made stale by a newer one is superseded (a progress update overtaken by the
  call of the same contest, an older tally, an older lead change);
- corrections, majorities and the final tally go at once; the pace never spends the last two
  posts of the budget: one is kept for them, one for the calls still waiting when the final
  tally comes, which go just before it (merged if need be); after it nothing is paced;
- the remaining budget is spread over the expected length of the night, so that no platform goes
  silent at 9 pm with its budget spent: the sustainable pace fills a bucket holding up to 30
  minutes' worth of posts (so a quiet spell leaves room for a burst of calls) and posts wait for
  it; posts of one kind waiting together are merged into one summary ("5 more seats called:
  ...") when the pace is slower than a post a minute or when they would not fit the bucket;
  progress, lead changes and tallies leave half of it to calls;
- whatever the budget, the platform's own limits are never exceeded.

`plan_account` is pure: plain values in, a Plan out.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from broadcaster.core.config import AccountConfig
from broadcaster.domain.events import PRIORITY, Event, EventKind
from broadcaster.domain.quota import Window
from broadcaster.planning.budget import BudgetState

MIN_INTERVAL = timedelta(seconds=60)
PACE_WINDOW = timedelta(minutes=30)  # the pacing bucket holds this long's worth of posts
URGENT = (EventKind.CORRECTED, EventKind.MAJORITY, EventKind.CERTIFIED)
MERGEABLE = (EventKind.CALLED, EventKind.PROGRESS, EventKind.LEADER)
RESERVE = 2  # posts of the budget the pace never spends (see plan_account)


@dataclass(frozen=True, slots=True)
class PostIntent:
    event: Event
    account: AccountConfig

    @property
    def idempotency_key(self) -> str:
        return idempotency_key(self.event.key, self.account.platform, self.account.name)


def idempotency_key(event_key: str, platform: str, account: str) -> str:
    """Unique per (event, platform, account): the database refuses a second post with it."""
    return f"{event_key}|{platform}|{account}"


def plan(events: Iterable[Event], accounts: Sequence[AccountConfig]) -> list[PostIntent]:
    """One post per event per account that wants that kind of event, most urgent first."""
    return [
        PostIntent(event, account)
        for event in sorted(events, key=lambda e: e.priority)
        for account in accounts
        if account.wants(event.kind)
    ]


@dataclass(frozen=True, slots=True)
class Item:
    """A post as the planner sees it."""

    id: int
    kind: EventKind
    contest_id: str | None
    feed_time: datetime
    priority: int
    final: bool = False  # a final tally is never superseded


@dataclass
class Plan:
    supersede: list[tuple[int, str]] = field(default_factory=list)  # (post id, why)
    send: int | None = None  # send this post now
    merge: list[int] = field(default_factory=list)  # or merge these (one kind) into a summary
    wait_until: datetime | None = None  # nothing to send before this time (None: unknown)
    reason: str = ""


def stale(pending: Sequence[Item], sent: Sequence[Item]) -> list[tuple[int, str]]:
    """Pending posts that newer posts (pending or sent) make stale."""
    out: list[tuple[int, str]] = []
    decisive: dict[str, datetime] = {}
    for item in (*pending, *sent):
        if item.kind in (EventKind.CALLED, EventKind.CORRECTED) and item.contest_id:
            decisive[item.contest_id] = max(
                item.feed_time, decisive.get(item.contest_id, item.feed_time)
            )
    newest: dict[tuple[EventKind, str | None], datetime] = {}
    for item in pending:
        if item.kind in (EventKind.PROGRESS, EventKind.LEADER, EventKind.TALLY):
            key = (item.kind, item.contest_id)
            newest[key] = max(item.feed_time, newest.get(key, item.feed_time))
    for item in pending:
        if item.kind in (EventKind.PROGRESS, EventKind.LEADER, EventKind.TIE, EventKind.CLOSE):
            called = decisive.get(item.contest_id or "")
            if called is not None and called >= item.feed_time:
                out.append((item.id, "overtaken by the result of the same contest"))
                continue
        replaceable = item.kind in (EventKind.PROGRESS, EventKind.LEADER, EventKind.TALLY)
        if replaceable and not item.final and newest[(item.kind, item.contest_id)] > item.feed_time:
            out.append((item.id, f"overtaken by a newer {item.kind.value} post"))
    return out


def affordable(windows: Sequence[Window], budget: BudgetState, now: datetime, end: datetime) -> int:
    """Posts the account can still send between now and `end`: what is left in its longest
    window, plus what shorter windows will refill in the meantime (the tightest window wins)."""
    span = max(0.0, (end - now).total_seconds())
    best = 10**9
    for window in windows:
        if budget.longest is not None and window.seconds == budget.longest.seconds:
            left = budget.remaining
        else:
            left = window.posts
        refills = int(span // window.seconds) * window.posts if window.seconds < span else 0
        best = min(best, left + refills)
    return best


def plan_account(
    pending: Sequence[Item],
    sent: Sequence[Item],
    budget: BudgetState,
    windows: Sequence[Window],
    *,
    now: datetime,
    night_ends: datetime,
    recent_sends: Sequence[datetime] = (),
    naive: bool = False,
) -> Plan:
    """What one account should do now. `recent_sends`: when its posts of the last day went."""
    if naive:
        # One post per event, as soon as possible: the comparison policy of the benchmark.
        head = min(pending, key=lambda i: (i.priority, i.id), default=None)
        return Plan(send=head.id if head else None, reason="naive")
    superseded = stale(pending, sent)
    gone = {i for i, _ in superseded}
    live = sorted((p for p in pending if p.id not in gone), key=lambda i: (i.priority, i.id))
    result = Plan(supersede=superseded)
    if not live:
        result.reason = "nothing to send"
        return result
    if budget.next_slot > now:
        result.wait_until, result.reason = budget.next_slot, budget.blocked_reason or "budget"
        return result
    urgent = [p for p in live if p.kind in URGENT]
    if urgent:
        result.send, result.reason = urgent[0].id, "urgent"
        return result
    end = night_ends if night_ends > now + MIN_INTERVAL else now + timedelta(hours=1)
    left = affordable(windows, budget, now, end)
    final = [p for p in live if p.kind is EventKind.TALLY and p.final]
    if final or any(s.kind is EventKind.TALLY and s.final for s in sent):
        return _night_over(result, live, final, left - 1)
    # The last two posts are kept: one for a correction, a majority or the final tally, one
    # for the calls still waiting when the final tally comes.
    usable = left - RESERVE
    if usable <= 0:
        result.reason = (
            "the last two posts of the budget are kept for a correction, a majority, the final "
            "tally and the calls that come with it"
        )
        return result
    # The sustainable pace, as a bucket of posts that refills at that pace: a quiet hour fills
    # it, so a burst of calls can go at once, and once it is empty posts go one per interval.
    interval = (end - now) / usable
    capacity = max(1, int(PACE_WINDOW / interval))
    tokens = pace_tokens(recent_sends, now, interval, capacity)
    head = live[0]
    # Progress, lead changes and tallies leave half the bucket to calls.
    need = 1.0 if head.priority <= PRIORITY[EventKind.CALLED] else max(1.0, capacity / 2)
    if tokens < need:
        result.wait_until = now + (need - tokens) * interval
        result.reason = f"pacing: one post every {_minutes(interval)}, {capacity} at most at once"
        return result
    room = int(tokens - need) + 1
    same = [p.id for p in sorted(live, key=lambda i: (i.feed_time, i.id)) if p.kind is head.kind]
    # With a budget slower than a post a minute, posts of one kind waiting together become one
    # summary, so the bucket saves up for the next burst; with more, only when they'd overflow.
    crowded = len(same) > room or interval > MIN_INTERVAL
    if head.kind in MERGEABLE and len(same) > 1 and crowded:
        result.merge = same
        result.reason = f"budget is tight: {len(same)} {head.kind} posts merged"
        return result
    result.send = head.id
    result.reason = "ample budget" if room >= len(live) else "paced"
    return result


def _night_over(result: Plan, live: list[Item], final: list[Item], usable: int) -> Plan:
    """At the night's end there is nothing left to pace for: calls still waiting go before the
    final tally (merged if the budget is short), so no seat is left unannounced behind it.
    `usable`: the posts left but one (kept for the final tally, or a later correction)."""
    calls = [p for p in live if p.priority <= PRIORITY[EventKind.CALLED] and p not in final]
    if calls and usable > 0:
        same = [p.id for p in sorted(calls, key=lambda i: (i.feed_time, i.id))]
        kinds = {p.kind for p in calls}
        if len(same) > usable and len(kinds) == 1 and calls[0].kind in MERGEABLE:
            result.merge = same
            result.reason = f"night's end: {len(same)} {calls[0].kind} posts merged"
        else:
            result.send, result.reason = calls[0].id, "night's end"
        return result
    if final:
        result.send, result.reason = final[0].id, "urgent"
        return result
    if usable <= 0:
        result.reason = (
            "the last post of the budget is kept for a correction, a majority or the final tally"
        )
        return result
    result.send, result.reason = live[0].id, "night's end"
    return result


def pace_tokens(
    sends: Sequence[datetime], now: datetime, interval: timedelta, capacity: int
) -> float:
    """Posts the pacing bucket holds now: full before the first send, one taken per send (it
    may go below zero: urgent posts are not refused), refilled one per `interval`."""
    tokens = float(capacity)
    last: datetime | None = None
    for sent in sorted(sends):
        if last is not None:
            tokens = min(capacity, tokens + (sent - last) / interval)
        tokens -= 1
        last = sent
    if last is not None:
        tokens = min(capacity, tokens + (now - last) / interval)
    return tokens


def _minutes(span: timedelta) -> str:
    minutes = span.total_seconds() / 60
    return f"{minutes:.0f} min" if minutes < 120 else f"{minutes / 60:.1f} h"
