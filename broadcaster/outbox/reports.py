"""Read-only reports over the outbox's tables, for `status`, /healthz, /metrics and the live
channel. They answer questions; they never change a row (the store and operations do that).

Kept apart from the store so the code that decides what is sent stays small, and so every
SQL the reporting side runs is in one place, where its indexes can be checked.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Text, cast, func, select

from broadcaster.domain.posts import PostState
from broadcaster.outbox.store import Store, events, latest_accepted, posts, snapshots


@dataclass(frozen=True, slots=True)
class SnapshotMark:
    """The last accepted snapshot, as `status` shows it."""

    name: str
    generated_at: datetime
    received_at: datetime


@dataclass(frozen=True, slots=True)
class Rejection:
    name: str
    received_at: datetime
    error: str | None


@dataclass(frozen=True, slots=True)
class HeldPost:
    id: int
    account: str
    reason: str | None


@dataclass(frozen=True, slots=True)
class NightReport:
    """What `status` reads from the tables in one go."""

    last: SnapshotMark | None
    rejections: list[Rejection]
    # (account, platform) -> {state: posts}
    outbox: dict[tuple[str, str], dict[str, int]]
    held: list[HeldPost]
    events: int


def night_report(store: Store, *, rejections: int = 5, held: int = 20) -> NightReport:
    """The last accepted snapshot, the latest `rejections` rejected ones, posts by account
    and state, the first `held` held posts and the number of events, read in one connection."""
    with store.engine.connect() as conn:
        last = conn.execute(
            latest_accepted(snapshots.c.name, snapshots.c.generated_at, snapshots.c.received_at)
        ).first()
        rejected = conn.execute(
            select(snapshots.c.name, snapshots.c.received_at, snapshots.c.error)
            .where(snapshots.c.accepted.is_(False))
            .order_by(snapshots.c.id.desc())
            .limit(rejections)
        ).all()
        counts = conn.execute(
            select(posts.c.account, posts.c.platform, posts.c.state, func.count()).group_by(
                posts.c.account, posts.c.platform, posts.c.state
            )
        ).all()
        held_rows = conn.execute(
            select(posts.c.id, posts.c.account, posts.c.hold_reason)
            .where(posts.c.state == PostState.HELD)
            .order_by(posts.c.id)
            .limit(held)
        ).all()
        event_count = conn.execute(select(func.count()).select_from(events)).scalar_one()
    outbox: dict[tuple[str, str], dict[str, int]] = {}
    for account, platform, state, n in counts:
        outbox.setdefault((account, platform), {})[state] = int(n)
    return NightReport(
        last=SnapshotMark(last.name, last.generated_at, last.received_at) if last else None,
        rejections=[Rejection(r.name, r.received_at, r.error) for r in rejected],
        outbox=outbox,
        held=[HeldPost(h.id, h.account, h.hold_reason) for h in held_rows],
        events=int(event_count),
    )


def sent_latencies(store: Store, since: datetime | None = None) -> dict[str, list[float]]:
    """Seconds from each sent post's snapshot (its feed time) to its sending, by platform;
    only posts sent after `since` when given."""
    query = (
        select(posts.c.platform, posts.c.sent_at, posts.c.feed_time)
        .where(posts.c.state == PostState.SENT)
        .where(posts.c.sent_at.is_not(None))
    )
    if since is not None:
        query = query.where(posts.c.sent_at > since)
    with store.engine.connect() as conn:
        rows = conn.execute(query).all()
    latencies: dict[str, list[float]] = {}
    for platform, sent_at, feed_time in rows:
        latencies.setdefault(platform, []).append(max(0.0, (sent_at - feed_time).total_seconds()))
    return latencies


@dataclass(frozen=True, slots=True)
class CallMark:
    contest_id: str
    at: datetime


def latest_marks(store: Store) -> tuple[int, int]:
    """(id of the last accepted snapshot, id of the last `called` event), 0 for none: cheap
    to ask on every frame, and they change exactly when the live picture has news."""
    with store.engine.connect() as conn:
        snap = conn.execute(
            select(func.max(snapshots.c.id)).where(snapshots.c.accepted.is_(True))
        ).scalar()
        call = conn.execute(select(func.max(events.c.id)).where(events.c.kind == "called")).scalar()
    return int(snap or 0), int(call or 0)


def received_at(store: Store, snapshot_id: int) -> datetime | None:
    """When the snapshot `snapshot_id` arrived."""
    with store.engine.connect() as conn:
        at: datetime | None = conn.execute(
            select(snapshots.c.received_at).where(snapshots.c.id == snapshot_id)
        ).scalar()
    return at


def recent_calls(store: Store, limit: int) -> list[CallMark]:
    """The latest `limit` calls, newest first (a contest may appear more than once)."""
    with store.engine.connect() as conn:
        rows = conn.execute(
            select(events.c.contest_id, events.c.at)
            .where(events.c.kind == "called")
            .order_by(events.c.at.desc(), events.c.id.desc())
            .limit(limit)
        ).all()
    return [CallMark(r.contest_id, r.at) for r in rows if r.contest_id]


def video_sends(store: Store, account: str, since: datetime) -> list[datetime]:
    """When the account's sent posts that carried a short video (an MP4) went, after `since`:
    the budget counts each as the posts it cost (broadcaster/delivery/budgets.py)."""
    with store.engine.connect() as conn:
        rows = conn.execute(
            select(posts.c.sent_at)
            .where(posts.c.account == account)
            .where(posts.c.state == PostState.SENT)
            .where(posts.c.sent_at > since)
            .where(cast(posts.c.media, Text).like("%.mp4%"))
        ).scalars()
        return [t for t in rows if t is not None]
