"""Moves posts from the outbox to the platforms, exactly once.

A post is marked `sending` and committed before the platform is called, and marked `sent` with the
platform's id in one transaction afterwards. A post found `sending` at start-up was interrupted
mid-call: it is looked up on the platform before anything is sent again.
"""

from __future__ import annotations

import logging
import random
import threading
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from broadcaster.cardmaker import CardMaker
from broadcaster.clock import Clock
from broadcaster.config import AccountConfig, Config
from broadcaster.publishers import (
    InDoubt,
    Post,
    Publisher,
    PublisherEnv,
    PublishError,
    Reauthorize,
    Rejected,
    RetryLater,
    capabilities_for,
    create_publisher,
)
from broadcaster.store import PostState, Store

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 8


@dataclass
class DispatchStats:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    held: int = 0

    def add(self, other: DispatchStats) -> None:
        self.sent += other.sent
        self.retried += other.retried
        self.failed += other.failed
        self.held += other.held


def post_from_row(row: Any, attempt: int | None = None, *, reply_to: str | None = None) -> Post:
    return Post(
        outbox_id=row.id,
        idempotency_key=row.idempotency_key,
        account=row.account,
        platform=row.platform,
        event_key=row.event_key,
        event_kind=row.event_kind,
        contest_id=row.contest_id,
        text=row.text or "",
        created_at=row.created_at,
        media=tuple(row.media or ()),
        attempt=attempt if attempt is not None else row.attempts,
        title=row.title,
        reply_to=reply_to,
    )


def backoff(attempt: int, base: float = 5.0, cap: float = 600.0) -> float:
    """Exponential backoff with full jitter, in seconds."""
    return random.uniform(0.5, 1.0) * min(cap, base * 2 ** max(0, attempt - 1))


class Dispatcher:
    def __init__(
        self,
        config: Config,
        store: Store,
        *,
        clock: Clock,
        env: PublisherEnv,
        dry_run: bool,
        stop: threading.Event | None = None,
        cards: CardMaker | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.clock = clock
        self.env = env
        self.dry_run = dry_run
        self.stop = stop or threading.Event()
        self.accounts: dict[str, AccountConfig] = {a.name: a for a in config.accounts}
        self._publishers: dict[str, Publisher] = {}
        self.cards = cards

    def publisher(self, account_name: str) -> Publisher:
        pub = self._publishers.get(account_name)
        if pub is None:
            pub = create_publisher(self.accounts[account_name], self.env, dry_run=self.dry_run)
            self._publishers[account_name] = pub
        return pub

    def close(self) -> None:
        for pub in self._publishers.values():
            pub.close()
        self._publishers.clear()

    # -- start-up --

    def recover(self) -> DispatchStats:
        """Settle posts left `sending` by a crash: found on the platform means sent, certainly
        absent means send again, and unknowable means hold for an operator."""
        stats = DispatchStats()
        for row in self.store.posts_in_state(PostState.SENDING):
            if row.account not in self.accounts:
                self.store.mark_held(row.id, "in doubt: the account is no longer configured")
                stats.held += 1
                continue
            post = post_from_row(row)
            try:
                ref = self.publisher(row.account).find(post)
            except NotImplementedError:
                self.store.mark_held(
                    row.id,
                    "in doubt: interrupted while sending and this platform cannot look up posts; "
                    "check the account, then approve or cancel",
                )
                stats.held += 1
                continue
            except PublishError as exc:
                self.store.mark_held(row.id, f"in doubt: lookup failed ({exc})")
                stats.held += 1
                continue
            if ref is not None:
                log.info("post %d was published before the interruption", row.id)
                self.store.mark_sent(row.id, ref.platform_id, ref.url, ref.published_at)
                stats.sent += 1
            else:
                log.info("post %d was not published before the interruption; sending again", row.id)
                self.store.mark_retry(row.id, "interrupted before publishing", self.clock.now())
                stats.retried += 1
        return stats

    # -- the dispatch loop --

    def run_once(self, limit: int | None = None) -> DispatchStats:
        """Send the posts that are due now, most urgent first, until done or asked to stop."""
        stats = DispatchStats()
        rows = self.store.due_posts(
            self.clock.now(), limit or self.config.dispatch.batch, self.accounts
        )
        for row in rows:
            if self.stop.is_set():
                break
            reply_to = None
            if row.thread_parent:
                parent = self.store.post_by_key(row.thread_parent)
                if parent is None or parent.state in (PostState.FAILED, PostState.CANCELLED):
                    self.store.mark_failed(row.id, "the previous part of its thread was not posted")
                    stats.failed += 1
                    continue
                if parent.state != PostState.SENT:
                    continue  # a thread goes out in order: wait for the previous part
                reply_to = parent.platform_post_id
            media = tuple(row.media or ())
            if row.wants_card and not media and self.cards is not None:
                made = self._card(row)
                if made is None:
                    stats.held += 1
                    continue
                media = made
            attempt = self.store.claim(row.id, self.clock.now())
            if attempt is None:
                continue
            post = replace(post_from_row(row, attempt, reply_to=reply_to), media=media)
            stats.add(self._send(post))
        return stats

    def _card(self, row: Any) -> tuple[str, ...] | None:
        """Draw the post's card before it is claimed; None when the post had to be held."""
        account = self.accounts[row.account]
        assert self.cards is not None
        try:
            path = self.cards.card_for(row, account)
        except Exception as exc:  # a card must never take the dispatcher down
            if capabilities_for(account.platform).requires_media:
                self.store.mark_held(row.id, f"card: {exc}")
                log.error("post %d held: its card failed: %s", row.id, exc)
                return None
            log.warning("post %d goes out without its card: %s", row.id, exc)
            return ()
        self.store.set_media(row.id, [str(path)])
        return (str(path),)

    def drain(self) -> DispatchStats:
        """Dispatch until nothing is due (a rehearsal's step)."""
        total = DispatchStats()
        while not self.stop.is_set():
            stats = self.run_once()
            total.add(stats)
            if stats.sent + stats.failed + stats.held == 0:
                break
        return total

    def _send(self, post: Post) -> DispatchStats:
        extra = {"account": post.account, "platform": post.platform, "post_id": post.outbox_id}
        try:
            ref = self.publisher(post.account).publish(post)
        except RetryLater as exc:
            return self._retry(post, str(exc), exc.delay, extra)
        except Reauthorize as exc:
            self.store.mark_held(post.outbox_id, f"re-authorise the account: {exc}")
            log.error("account %s needs re-authorising: %s", post.account, exc, extra=extra)
            return DispatchStats(held=1)
        except Rejected as exc:
            self.store.mark_failed(post.outbox_id, f"rejected: {exc}")
            log.error("post %d rejected for good: %s", post.outbox_id, exc, extra=extra)
            return DispatchStats(failed=1)
        except InDoubt as exc:
            return self._settle_doubt(post, str(exc), extra)
        except Exception as exc:  # an adapter bug: the request may or may not have gone out
            log.exception("unexpected error publishing post %d", post.outbox_id, extra=extra)
            return self._settle_doubt(post, f"{type(exc).__name__}", extra)
        self.store.mark_sent(post.outbox_id, ref.platform_id, ref.url, ref.published_at)
        log.info(
            "sent post %d (%s) to %s", post.outbox_id, post.event_key, post.account, extra=extra
        )
        return DispatchStats(sent=1)

    def _retry(
        self, post: Post, error: str, delay: float | None, extra: dict[str, Any]
    ) -> DispatchStats:
        if post.attempt >= MAX_ATTEMPTS:
            self.store.mark_failed(
                post.outbox_id, f"gave up after {post.attempt} attempts: {error}"
            )
            log.error(
                "post %d failed after %d attempts: %s",
                post.outbox_id,
                post.attempt,
                error,
                extra=extra,
            )
            return DispatchStats(failed=1)
        wait = delay if delay is not None else backoff(post.attempt)
        when: datetime = self.clock.now() + timedelta(seconds=wait)
        self.store.mark_retry(post.outbox_id, error, when)
        log.warning(
            "post %d will be retried in %.0f s: %s", post.outbox_id, wait, error, extra=extra
        )
        return DispatchStats(retried=1)

    def _settle_doubt(self, post: Post, error: str, extra: dict[str, Any]) -> DispatchStats:
        try:
            ref = self.publisher(post.account).find(post)
        except (NotImplementedError, PublishError):
            self.store.mark_held(
                post.outbox_id, f"in doubt after '{error}': cannot tell whether it was published"
            )
            log.error("post %d is in doubt and held: %s", post.outbox_id, error, extra=extra)
            return DispatchStats(held=1)
        if ref is not None:
            self.store.mark_sent(post.outbox_id, ref.platform_id, ref.url, ref.published_at)
            return DispatchStats(sent=1)
        return self._retry(post, error, None, extra)
