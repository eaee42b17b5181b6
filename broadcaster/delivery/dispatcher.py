"""Moves posts from the outbox to the platforms, exactly once.

A post is marked `sending` and committed before the platform is called, and marked `sent` with
the platform's id in one transaction afterwards. A post found `sending` when no call is under
way was interrupted: it is looked up on the platform before anything is sent again (recovery.py).
An account whose credentials fail, or that keeps failing, is paused while the others go on
(breaker.py). Each post is checked just before it is claimed (guards.py), and only posts
planned in this run's mode are ever sent: a rehearsal's rows never reach a platform.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from broadcaster.content.compose import Composer
from broadcaster.core import failpoints
from broadcaster.core.clock import Clock
from broadcaster.core.config import AccountConfig, Config
from broadcaster.core.secrets import SecretError
from broadcaster.delivery.breaker import Breaker, backoff
from broadcaster.delivery.budgets import video_surcharge, windows_with
from broadcaster.delivery.cards import CardMaker
from broadcaster.delivery.corrections import after_correction
from broadcaster.delivery.deferred import DeferredRendering
from broadcaster.delivery.env import publisher_env
from broadcaster.delivery.guards import refusal
from broadcaster.delivery.merging import StoredEvents, merge
from broadcaster.delivery.outcomes import DispatchStats, Found
from broadcaster.delivery.queues import Queues
from broadcaster.delivery.recovery import Recovery
from broadcaster.delivery.videos import VideoMaker
from broadcaster.domain.events import EventKind
from broadcaster.domain.posts import HoldKind, PostState
from broadcaster.domain.quota import Window
from broadcaster.outbox.state import State, Waiting
from broadcaster.outbox.store import Store, post_from_row
from broadcaster.planning.budget import budget_state
from broadcaster.planning.planner import Plan
from broadcaster.publishers import (
    InDoubt,
    Post,
    Publisher,
    PublisherEnv,
    Reauthorize,
    Rejected,
    RetryLater,
    capabilities_for,
    create_publisher,
)

__all__ = ["MAX_ATTEMPTS", "DispatchStats", "Dispatcher", "PublisherFactory", "publisher_env"]

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 8

# Makes the publisher for an account in a mode (dry run or not); tests pass scripted ones.
PublisherFactory = Callable[[AccountConfig, PublisherEnv, bool], Publisher]


def _create(account: AccountConfig, env: PublisherEnv, dry_run: bool) -> Publisher:
    return create_publisher(account, env, dry_run=dry_run)


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
        composer: Composer | None = None,
        publishers: PublisherFactory = _create,
        videos: VideoMaker | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.state = State(store)
        self.clock = clock
        self.env = env
        self.dry_run = dry_run
        self.stop = stop or threading.Event()
        self.accounts: dict[str, AccountConfig] = {a.name: a for a in config.accounts}
        self._make = publishers
        self._publishers: dict[str, Publisher] = {}
        self.cards = cards
        self.videos = videos  # short videos instead of cards, for the accounts that want them
        self.composer = composer if composer is not None else Composer(config, dry_run=dry_run)
        self.deferred = DeferredRendering(config, store, self.composer)
        self.breaker = Breaker(config, self.state, clock, self.accounts, on_pause=self._paused_now)
        self.recovery = Recovery(store, clock, self.breaker, self.publisher)
        # Each account's pending posts and recent sends, in memory (queues.py): a step costs
        # what changed and what is due, not the backlog.
        self.queues = Queues(
            store, lambda: self.accounts, lambda name: not self.live(self.accounts[name])
        )
        self.merged_events = StoredEvents(store)  # what merges read, for every account
        self._newly_paused: set[str] = set()  # paused during this run_once
        self._waiting: dict[str, Waiting | None] = {}  # as last written (only we write it)
        self._night_start: datetime | None = None
        self._known_limits: dict[str, tuple[list[Window], datetime | None]] = {}

    # -- publishers and modes --

    def live(self, account: AccountConfig) -> bool:
        """Whether the account's posts go to its platform in this run (else a dry run). Only
        posts planned in that same mode are ever sent: a rehearsal's rows never reach a
        platform, whatever happens to the configuration or the command line afterwards."""
        return not (self.dry_run or account.dry_run or account.platform == "dryrun")

    def owned(self, row: Any) -> bool:
        """The post was planned in this run's mode for its account."""
        return bool(row.dry_run) != self.live(self.accounts[row.account])

    def publisher(self, account_name: str) -> Publisher:
        pub = self._publishers.get(account_name)
        if pub is None:
            account = self.accounts[account_name]
            try:
                pub = self._make(account, self.env, not self.live(account))
            except SecretError as exc:
                raise Reauthorize(str(exc)) from None
            self._publishers[account_name] = pub
        return pub

    def _forget_publisher(self, account: str) -> None:
        pub = self._publishers.pop(account, None)
        if pub is not None:
            pub.close()

    def _paused_now(self, account: str) -> None:
        """The breaker paused an account: drop its publisher and stop its steps at once."""
        self._newly_paused.add(account)
        self._forget_publisher(account)

    def close(self) -> None:
        for pub in self._publishers.values():
            pub.close()
        self._publishers.clear()
        if self.cards is not None:
            self.cards.close()

    # -- pauses (kept here for the callers that steer a running dispatcher) --

    def paused(self) -> dict[str, str]:
        return self.breaker.paused()

    def pause(self, account: str, reason: str, *, until: datetime | None = None) -> None:
        self.breaker.pause(account, reason, until=until)

    def recover(self) -> DispatchStats:
        """Settle posts left `sending` by an interruption (see recovery.py)."""
        stats = self.recovery.recover(self.owned, set(self.accounts))
        if stats.sent or stats.retried or stats.held or stats.failed:
            self.queues.invalidate()
            self._known_limits.clear()
        return stats

    def invalidate(self) -> None:
        """The outbox changed in a way the dispatcher cannot see (a takeover, a repair by
        hand): build its queues again from the database before the next step."""
        self.queues.invalidate()

    # -- the dispatch loop --

    def run_once(self, limit: int | None = None) -> DispatchStats:
        """Settle interrupted posts, then, account by account, send what the planner allows
        now, most urgent first, until done or asked to stop."""
        stats = self.recover()
        if self.composer is not None:
            self.composer.refresh()
        paused = self.paused()
        self._newly_paused = set()
        batch = limit or self.config.dispatch.batch
        stats.add(self._thread_parts(paused))
        for name, account in self.accounts.items():
            for _ in range(batch):
                if self.stop.is_set() or name in paused or name in self._newly_paused:
                    break
                step = self._step(account)
                if step is None:
                    break
                stats.add(step)
        return stats

    def drain(self) -> DispatchStats:
        """Dispatch until nothing more is due now (a rehearsal's step)."""
        total = DispatchStats()
        while not self.stop.is_set():
            stats = self.run_once()
            total.add(stats)
            if not stats.progressed:
                break
        return total

    def _step(self, account: AccountConfig) -> DispatchStats | None:
        """Plan and send one post (or one summary) for an account; None when it must wait."""
        now = self.clock.now()
        windows, blocked = self._limits(account)
        span = max([86400, *(w.seconds for w in windows)])
        self._catch_up(now, now - timedelta(seconds=span))
        if self.queues.behind:  # a burst is still being read in: plan nothing from half of it
            return DispatchStats(absorbed=self.queues.absorbed)
        queue = self.queues.queues[account.name]
        if not queue.due:
            return None
        recent_sends = queue.recent_sends()
        if self.config.planner.mode == "naive":
            # One post per event, as soon as possible: the comparison policy of the benchmark.
            head = queue.head()
            plan = Plan(send=head.id if head else None, reason="naive")
        else:
            plan = queue.plan(
                budget_state(
                    windows,
                    [*recent_sends, *self._video_surcharge(account, windows, now)],
                    now,
                    blocked_until=blocked,
                ),
                windows,
                now=now,
                night_ends=self.night_ends(now),
            )
        if plan.supersede:
            self.store.supersede_many(plan.supersede)
        self._draw_ahead(account, plan.send)
        if plan.merge:
            return self._merge(account, plan.merge)
        if plan.send is not None:
            return self._dispatch_queued(account, plan.send)
        if plan.supersede:
            return DispatchStats()  # something changed: plan again
        self._set_waiting(account.name, Waiting(plan.reason, plan.wait_until))
        return None

    def _draw_ahead(self, account: AccountConfig, sending: int | None) -> None:
        """Have the card of the account's next post in line drawn by a worker while this one
        goes out (the one after the post being sent, else the first)."""
        if self.cards is None or self.cards.workers <= 0:
            return
        queue = self.queues.queues[account.name]
        head = queue.head()
        if head is not None and head.id == sending:
            head = queue.second()
        if head is not None and head.id in self.queues.want_cards and head.event_id is not None:
            self.cards.prefetch(head.event_id, account)

    def _video_surcharge(
        self, account: AccountConfig, windows: list[Window], now: datetime
    ) -> list[datetime]:
        """What the account's video posts cost beyond one post each (budgets.py); no query
        for an account that posts no videos."""
        since = now - timedelta(seconds=max((w.seconds for w in windows), default=86400))
        return video_surcharge(self.store, account, since)

    def _limits(self, account: AccountConfig) -> tuple[list[Window], datetime | None]:
        """The account's quota windows and any wait its platform asked for. Only a call to
        the platform changes them (an adapter records what it learns, the breaker a wait; or
        another process's call, `accounts doctor`'s), so they are read again, in one
        statement, only after one of ours."""
        known = self._known_limits.get(account.name)
        if known is None:
            learned, blocked = self.state.limits(account.name)
            known = (windows_with(account, learned), blocked)
            self._known_limits[account.name] = known
        return known

    def _catch_up(self, now: datetime, since: datetime) -> None:
        """Bring the queues up to date; an operator's change may have paused an account."""
        self.queues.sync(now, since)
        if self.queues.outside_change:
            self.queues.outside_change = False
            self._known_limits.clear()
            self._newly_paused |= set(self.paused())

    def _merge(self, account: AccountConfig, ids: Sequence[int]) -> DispatchStats:
        queue = self.queues.queues[account.name]
        merged = merge(
            self.store,
            self.merged_events,
            self.composer,
            account,
            ids,
            lambda i: queue.due[i].event_id or 0,
        )
        if merged is None:
            return self._dispatch_queued(account, ids[0])  # merging failed: send the oldest alone
        for post_id in merged.included:
            queue.discard(post_id)
        return self._dispatch_queued(account, merged.post_id)

    def _dispatch_queued(self, account: AccountConfig, post_id: int) -> DispatchStats:
        """Send a post the plan chose, read afresh: it must still be pending (the database is
        the truth; an operator may have acted on it meanwhile)."""
        queue = self.queues.queues[account.name]
        final = post_id in queue.due and queue.due[post_id].final
        row = self.store.post_row(post_id)
        if row is None or row.state != PostState.PENDING or row.account != account.name:
            queue.discard(post_id)
            self.queues.invalidate()
            return DispatchStats()
        if row.text is None:  # stored unrendered in a burst: its text is made now
            row, held = self.deferred.render(row, account)
            if row is None:
                queue.discard(post_id)
                if held:
                    self.queues.held_here(held)  # ours: no need to read the queues again
                else:
                    self.queues.invalidate()
                return DispatchStats(held=1 if held else 0)
        try:
            return self._dispatch(row)
        finally:
            self._known_limits.pop(account.name, None)
            self.queues.settle(account.name, post_id, self.clock.now(), final)

    def _set_waiting(self, account: str, waiting: Waiting) -> None:
        """Record why the account waits, written only when it changed (only the dispatcher
        writes it, so what it wrote last is what is there)."""
        if account not in self._waiting:
            self._waiting[account] = self.state.waiting(account)
        if self._waiting[account] != waiting:
            self.state.set_waiting(account, waiting)
            self._waiting[account] = waiting

    def next_due(self) -> datetime | None:
        """The next moment something may become sendable without new input: a retry's time, an
        account's planned slot, a platform-told wait or a cool-down ending. A rehearsal jumps
        its clock there; None when nothing is waiting for time to pass."""
        now = self.clock.now()
        moments = [self.store.next_not_before(now)]
        for name, (pause, blocked) in self.state.pauses_and_blocks(self.accounts).items():
            if name not in self._waiting:
                self._waiting[name] = self.state.waiting(name)
            waiting = self._waiting[name]
            moments += [
                waiting.until if waiting else None,
                pause.until if pause else None,
                blocked,
            ]
        later = [m for m in moments if m is not None and m > now]
        return min(later) if later else None

    def night_ends(self, now: datetime) -> datetime:
        if self._night_start is None:
            self._night_start = self.state.night_started()  # set once, never changed
        start = self._night_start or now
        return start + timedelta(hours=self.config.planner.night_hours)

    def _thread_parts(self, paused: dict[str, str]) -> DispatchStats:
        stats = DispatchStats()
        for row in self.store.thread_parts_due(self.clock.now()):
            if row.account in paused or row.account not in self.accounts or self.stop.is_set():
                continue
            if not self.owned(row):
                continue
            parent = self.store.post_by_key(row.thread_parent)
            if parent is None or parent.state in (PostState.FAILED, PostState.CANCELLED):
                self.store.mark_failed(row.id, "the previous part of its thread was not posted")
                stats.failed += 1
            elif parent.state == PostState.SENT:
                stats.add(self._dispatch(row, reply_to=parent.platform_post_id))
                self._known_limits.pop(row.account, None)
                self.queues.settle(row.account, row.id, self.clock.now())
        return stats

    # -- one post --

    def _dispatch(self, row: Any, reply_to: str | None = None) -> DispatchStats:
        """Check, draw the card if needed, claim the post, publish it."""
        if not self.owned(row):
            log.error("post %d was planned in the other mode; it is not sent from here", row.id)
            return DispatchStats()
        account = self.accounts[row.account]
        refused = refusal(row, account, live=self.live(account))
        if refused is not None:
            self.store.refuse(row.id, refused.state, refused.kind, refused.reason)
            log.error(
                "post %d not sent: %s", row.id, refused.reason, extra={"account": row.account}
            )
            held = refused.state == PostState.HELD
            return DispatchStats(held=1) if held else DispatchStats(failed=1)
        media = tuple(row.media or ())
        if not media and self.videos is not None:
            media = self.videos.media_for(row, account)  # (): the ordinary post, card and all
        if row.wants_card and not media and self.cards is not None:
            made = self._card(row)
            if made is None:
                return DispatchStats(held=1)
            media = made
        attempt = self.store.claim(row.id, self.clock.now())
        if attempt is None:
            return DispatchStats()
        failpoints.hit("after_claim")
        post = replace(post_from_row(row, attempt, reply_to=reply_to), media=media)
        result = self._send(post)
        if result.sent and row.event_kind == EventKind.CORRECTED:
            after_correction(
                self.store, account, row, self.publisher(row.account), self.clock.now()
            )
            self.queues.invalidate()  # the corrected post may have been deleted
        return result

    def _card(self, row: Any) -> tuple[str, ...] | None:
        """Draw the post's card before it is claimed; None when the post had to be held."""
        account = self.accounts[row.account]
        assert self.cards is not None
        try:
            path = self.cards.card_for(row, account)
        except Exception as exc:  # a card must never take the dispatcher down
            if capabilities_for(account.platform).requires_media:
                self.store.mark_held(row.id, HoldKind.CARD, f"card: {exc}")
                log.error("post %d held: its card failed: %s", row.id, exc)
                return None
            log.warning("post %d goes out without its card: %s", row.id, exc)
            return ()
        self.store.set_media(row.id, [str(path)])
        return (str(path),)

    def _send(self, post: Post) -> DispatchStats:
        extra = {"account": post.account, "platform": post.platform, "post_id": post.outbox_id}
        try:
            with failpoints.around_call():
                ref = self.publisher(post.account).publish(post)
        except RetryLater as exc:
            return self._later(post, exc, extra)
        except Reauthorize as exc:
            # The adapter already tried a refresh where one exists: stop this account only.
            self.breaker.pause(post.account, f"re-authorise the account: {exc}")
            self.store.mark_retry(post.outbox_id, f"account paused: {exc}", self.clock.now())
            return DispatchStats(retried=1)
        except Rejected as exc:
            self.store.mark_failed(post.outbox_id, f"rejected: {exc}")
            log.error("post %d rejected for good: %s", post.outbox_id, exc, extra=extra)
            return DispatchStats(failed=1)
        except InDoubt as exc:
            self.breaker.failed(post.account, str(exc))
            log.warning("post %d in doubt: %s; looking it up", post.outbox_id, exc, extra=extra)
            return self._in_doubt(post, str(exc), extra, back_off=True)
        except Exception as exc:  # an adapter bug: the request may or may not have gone out
            self.breaker.failed(post.account, type(exc).__name__)
            log.exception("unexpected error publishing post %d", post.outbox_id, extra=extra)
            return self._in_doubt(post, type(exc).__name__, extra, back_off=False)
        failpoints.hit("after_call")
        self.store.mark_sent(post.outbox_id, ref.platform_id, ref.url, ref.published_at)
        failpoints.hit("after_sent")
        self.breaker.succeeded(post.account)
        log.info(
            "sent post %d (%s) to %s", post.outbox_id, post.event_key, post.account, extra=extra
        )
        return DispatchStats(sent=1)

    def _later(self, post: Post, exc: RetryLater, extra: dict[str, Any]) -> DispatchStats:
        """The platform did not take the post and will later: wait as long as it said, else
        back off by the account's failures in a row. Nothing goes to the account meanwhile. A
        post is never given up for this: only the platform is at fault."""
        self.breaker.failed(post.account, str(exc))
        told = exc.delay is not None
        wait = max(1.0, exc.delay) if exc.delay is not None else self.breaker.backoff(post.account)
        until = self.breaker.block(post.account, wait)
        self.store.mark_retry(post.outbox_id, str(exc), until)
        log.warning(
            "post %d will be retried in %.0f s (%s): %s",
            post.outbox_id,
            (until - self.clock.now()).total_seconds(),
            "the platform's wait" if told else "backing off",
            exc,
            extra=extra,
        )
        return DispatchStats(retried=1)

    def _in_doubt(
        self, post: Post, error: str, extra: dict[str, Any], *, back_off: bool
    ) -> DispatchStats:
        """The platform may have taken the post: look before anything is sent again."""
        lookup = self.recovery.lookup(post)
        if lookup.found is not Found.ABSENT:
            return self.recovery.settle(post.outbox_id, lookup, error)
        # Not there: safe to send again, after the account's backoff. The attempt limit stays:
        # it bounds the harm of a look-up that cannot see its own posts.
        wait = None
        if back_off:
            wait = self.breaker.backoff(post.account)
            self.breaker.block(post.account, wait)
        return self._retry(post, error, wait, extra)

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
