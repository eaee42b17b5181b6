"""Moves posts from the outbox to the platforms, exactly once.

A post is marked `sending` and committed before the platform is called, and marked `sent` with the
platform's id in one transaction afterwards. A post found `sending` when no call is under way was
interrupted: it is looked up on the platform before anything is sent again; where the platform
cannot look, it is held for an operator. An account whose credentials fail is paused (its posts
wait, other accounts go on) until an operator resumes it.
"""

from __future__ import annotations

import logging
import random
import threading
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from broadcaster.content.compose import LEAK_REASON, TEST_MARKER, Composer, compose_summary
from broadcaster.content.context import shared_vars
from broadcaster.content.samples import display_from
from broadcaster.core import failpoints
from broadcaster.core.clock import Clock
from broadcaster.core.config import AccountConfig, Config
from broadcaster.core.logs import holds_secret
from broadcaster.core.secrets import SecretError, Secrets, TokenStore
from broadcaster.delivery.cards import CardMaker
from broadcaster.domain.events import EventKind
from broadcaster.outbox.operations import FAILURES, PAUSED
from broadcaster.outbox.state import State
from broadcaster.outbox.store import HoldKind, PostState, Store
from broadcaster.planning.budget import (
    BudgetState,
    Window,
    blocked_key,
    budget_state,
    effective_windows,
    learned_key,
)
from broadcaster.planning.planner import NIGHT_STARTED, Item, plan_account
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
from broadcaster.publishers.base import NotFoundYet, PublishedRef

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 8
WAITING = "waiting:"


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
        checkpoint=row.platform_checkpoint,
    )


def _item(row: Any) -> Item:
    data = getattr(row, "event_data", None) or {}
    return Item(
        id=row.id,
        kind=EventKind(row.event_kind),
        contest_id=row.contest_id,
        feed_time=row.feed_time,
        priority=getattr(row, "priority", 9),
        final=bool(data.get("final")),
    )


def account_windows(store: Store, account: AccountConfig) -> list[Window]:
    """The account's quota: configured, else its platform's, tightened by what it reported."""
    configured = account.quota
    if configured is None:
        configured = list(capabilities_for(account.platform).quota)
    return effective_windows(configured, store.get_state(learned_key(account.name)))


def account_budget(
    store: Store,
    account: AccountConfig,
    now: datetime,
    windows: list[Window] | None = None,
    sent_times: list[datetime] | None = None,
) -> BudgetState:
    """What the account may still send, from what it sent (`sent_times`: at least its longest
    window's sends, read from the outbox when not given) and what the platform told us."""
    windows = windows if windows is not None else account_windows(store, account)
    if sent_times is None:
        span = max((w.seconds for w in windows), default=86400)
        sent_times = [
            r.sent_at for r in store.sent_since(account.name, now - timedelta(seconds=span))
        ]
    blocked = store.get_state(blocked_key(account.name))
    return budget_state(
        windows,
        sent_times,
        now,
        blocked_until=datetime.fromisoformat(blocked) if blocked else None,
    )


BACKOFF_BASE = 5.0  # the first wait is 2.5-5 s
BACKOFF_CAP = 120.0  # never more than two minutes between tries of a failing platform


def backoff(failures: int, base: float = BACKOFF_BASE, cap: float = BACKOFF_CAP) -> float:
    """Exponential backoff with jitter, in seconds, after `failures` failures in a row: 2.5-5 s,
    then doubling up to `cap` (half to all of it, so that accounts do not retry in step)."""
    return random.uniform(0.5, 1.0) * min(cap, base * 2 ** max(0, failures - 1))


def publisher_env(config: Config, store: Store, clock: Clock, posts_path: Path) -> PublisherEnv:
    """What publishers get: secrets, the token store, durable state and checkpoints."""
    return PublisherEnv(
        clock=clock,
        posts_path=posts_path,
        timezone=config.election.timezone,
        secrets=Secrets(config.path(config.secrets.file)),
        tokens=TokenStore(config.path(config.secrets.tokens) or Path("tokens.json")),
        state=State(store),
        checkpoint=store.set_checkpoint,
        file_mode=config.output.mode,
    )


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
        self.composer = composer if composer is not None else Composer(config, dry_run=dry_run)

    def live(self, account: AccountConfig) -> bool:
        """Whether the account's posts go to its platform in this run (else a dry run). Only
        posts planned in that same mode are ever sent: a rehearsal's rows never reach a
        platform, whatever happens to the configuration or the command line afterwards."""
        return not (self.dry_run or account.dry_run or account.platform == "dryrun")

    def publisher(self, account_name: str) -> Publisher:
        pub = self._publishers.get(account_name)
        if pub is None:
            try:
                pub = create_publisher(self.accounts[account_name], self.env, dry_run=self.dry_run)
            except SecretError as exc:
                raise Reauthorize(str(exc)) from None
            self._publishers[account_name] = pub
        return pub

    def close(self) -> None:
        for pub in self._publishers.values():
            pub.close()
        self._publishers.clear()

    # -- accounts paused (by an operator, a credential problem, or the circuit breaker) --

    def paused(self) -> dict[str, str]:
        """Paused accounts and why; a breaker pause whose cool-down has passed is lifted."""
        out = {}
        now = self.clock.now()
        for name in self.accounts:
            state = self.store.get_state(PAUSED + name)
            if not state:
                continue
            until = state.get("until")
            if until and datetime.fromisoformat(until) <= now:
                self.store.put_state(PAUSED + name, None)
                self.store.put_state(FAILURES + name, 0)
                log.warning("account %s resumes after its cool-down", name, extra={"account": name})
                continue
            out[name] = str(state.get("reason", "paused"))
        return out

    def pause(self, account: str, reason: str, *, until: datetime | None = None) -> None:
        """Stop posting to one account. The reason always names the command that fixes it."""
        if "`broadcaster " not in reason:
            reason = f"{reason}; {self._remedy(account, reason)}"
        self.store.put_state(
            PAUSED + account,
            {
                "reason": reason,
                "at": self.clock.now().isoformat(),
                "until": until.isoformat() if until else None,
            },
        )
        self._publishers.pop(account, None)
        log.error("ACCOUNT PAUSED: %s: %s", account, reason, extra={"account": account})

    def _remedy(self, account: str, reason: str) -> str:
        acct = self.accounts.get(account)
        if reason.startswith("re-authorise") and acct is not None and acct.platform != "dryrun":
            return (
                f"run `broadcaster auth {acct.platform} --account {account}` (it resumes the "
                f"account), or fix the secret named above and run `broadcaster resume {account}`"
            )
        return f"once fixed, run `broadcaster resume {account}`"

    def _failed(self, account: str, error: str) -> None:
        """Count consecutive failures; too many in a row open the circuit breaker."""
        count = int(self.store.get_state(FAILURES + account, 0) or 0) + 1
        self.store.put_state(FAILURES + account, count)
        limit = self.config.dispatch.breaker_failures
        if count >= limit:
            cooldown = timedelta(seconds=self.config.dispatch.breaker_cooldown)
            self.pause(
                account,
                f"circuit breaker: {count} failures in a row (last: {error}); it tries again "
                f"by itself after {int(cooldown.total_seconds())} s, "
                f"or `broadcaster resume {account}`",
                until=self.clock.now() + cooldown,
            )

    def _succeeded(self, account: str) -> None:
        if self.store.get_state(FAILURES + account, 0):
            self.store.put_state(FAILURES + account, 0)

    # -- per-account backoff: a platform that fails is given time, whichever post failed --

    def _backoff(self, account: str) -> float:
        """The account's next wait from its failures in a row (counted by `_failed`)."""
        failures = int(self.store.get_state(FAILURES + account, 0) or 0)
        return backoff(max(1, failures))

    def _block(self, account: str, seconds: float) -> datetime:
        """Send nothing to the account for `seconds` (a platform's earlier, longer wait
        stands); returns when it may be tried again."""
        until = self.clock.now() + timedelta(seconds=seconds)
        current = self.store.get_state(blocked_key(account))
        if current and datetime.fromisoformat(current) > until:
            return datetime.fromisoformat(current)
        self.store.put_state(blocked_key(account), until.isoformat())
        return until

    # -- posts interrupted mid-call --

    def recover(self) -> DispatchStats:
        """Settle posts left `sending` by an interruption: found on the platform means sent,
        certainly absent means send again, unknowable means held for an operator, and a lookup
        that fails for now is tried again on the next run."""
        stats = DispatchStats()
        paused = self.paused()
        for row in self.store.posts_in_state(PostState.SENDING):
            if row.account in self.accounts and not self._same_mode(row):
                continue  # planned in the other mode: never looked up or sent from here
            if row.account not in self.accounts:
                self.store.mark_held(
                    row.id, HoldKind.ACCOUNT, "in doubt: the account is no longer configured"
                )
                stats.held += 1
                continue
            if row.account in paused:
                continue
            outcome = self._lookup(post_from_row(row))
            stats.add(self._settle(row.id, outcome, "interrupted"))
        return stats

    def _lookup(self, post: Post) -> tuple[str, Any]:
        try:
            ref = self.publisher(post.account).find(post)
        except NotImplementedError as exc:
            return "unknowable", str(exc)
        except NotFoundYet as exc:
            return "later", str(exc)
        except Reauthorize as exc:
            self.pause(post.account, f"re-authorise the account: {exc}")
            return "retry-lookup", str(exc)
        except PublishError as exc:
            return "retry-lookup", str(exc)
        return ("sent", ref) if ref is not None else ("absent", None)

    def _settle(self, post_id: int, outcome: tuple[str, Any], why: str) -> DispatchStats:
        kind, value = outcome
        if kind == "sent":
            log.info("post %d had been published (%s)", post_id, why)
            self.store.mark_sent(post_id, value.platform_id, value.url, value.published_at)
            return DispatchStats(sent=1)
        if kind == "absent":
            log.info("post %d was not published (%s); sending again", post_id, why)
            self.store.mark_retry(post_id, f"{why} before publishing", self.clock.now())
            return DispatchStats(retried=1)
        if kind == "later":
            # The platform is still processing it: publishing again resumes from the
            # recorded checkpoint, it never creates a second post.
            self.store.mark_retry(post_id, value, self.clock.now() + timedelta(seconds=60))
            return DispatchStats(retried=1)
        if kind == "unknowable":
            self.store.mark_held(
                post_id,
                HoldKind.IN_DOUBT,
                f"in doubt ({why}): {value}; check the account, then approve (to send again) "
                "or cancel",
            )
            log.error("post %d is in doubt and held for an operator: %s", post_id, value)
            return DispatchStats(held=1)
        log.warning("post %d: could not look it up yet (%s); will try again", post_id, value)
        return DispatchStats()

    # -- the dispatch loop --

    def run_once(self, limit: int | None = None) -> DispatchStats:
        """Settle interrupted posts, then, account by account, send what the planner allows
        now, most urgent first, until done or asked to stop."""
        stats = self.recover()
        if self.composer is not None:
            self.composer.refresh()
        paused = self.paused()
        batch = limit or self.config.dispatch.batch
        stats.add(self._thread_parts(paused))
        for name, account in self.accounts.items():
            for _ in range(batch):
                if self.stop.is_set() or name in paused or name in self.paused():
                    break
                step = self._step(account)
                if step is None:
                    break
                stats.add(step)
        return stats

    def _step(self, account: AccountConfig) -> DispatchStats | None:
        """Plan and send one post (or one summary) for an account; None when it must wait."""
        now = self.clock.now()
        rows = self.store.pending_for(account.name, now, dry_run=not self.live(account))
        if not rows:
            return None
        windows = account_windows(self.store, account)
        # One read of the account's recent sends serves the budget and the planner.
        span = max([86400, *(w.seconds for w in windows)])
        sent_rows = self.store.sent_since(account.name, now - timedelta(seconds=span))
        recent_sends = [r.sent_at for r in sent_rows if r.sent_at is not None]
        budget = account_budget(self.store, account, now, windows, recent_sends)
        plan = plan_account(
            [_item(r) for r in rows],
            [_item(r) for r in sent_rows],
            budget,
            windows,
            now=now,
            night_ends=self.night_ends(now),
            recent_sends=recent_sends,
            naive=self.config.planner.mode == "naive",
        )
        for post_id, why in plan.supersede:
            self.store.supersede([post_id], why)
        by_id = {r.id: r for r in rows}
        if plan.merge:
            summary_id = self._merge(account, [by_id[i] for i in plan.merge])
            if summary_id is not None:
                return self._dispatch(self.store.post_row(summary_id))
            return self._dispatch(by_id[plan.merge[0]])  # merging failed: send the oldest alone
        if plan.send is not None:
            return self._dispatch(by_id[plan.send])
        if plan.supersede:
            return DispatchStats()  # something changed: plan again
        self.store.put_state(
            WAITING + account.name,
            {
                "reason": plan.reason,
                "until": plan.wait_until.isoformat() if plan.wait_until else None,
            },
        )
        return None

    def next_due(self) -> datetime | None:
        """The next moment something may become sendable without new input: a retry's time, an
        account's planned slot, a platform-told wait or a cool-down ending. A rehearsal jumps
        its clock there; None when nothing is waiting for time to pass."""
        now = self.clock.now()
        moments = [self.store.next_not_before(now)]
        for name in self.accounts:
            waiting = self.store.get_state(WAITING + name) or {}
            paused = self.store.get_state(PAUSED + name) or {}
            blocked = self.store.get_state(blocked_key(name))
            moments += [waiting.get("until"), paused.get("until"), blocked]
        due = [
            m if isinstance(m, datetime) else datetime.fromisoformat(m)
            for m in moments
            if m is not None
        ]
        later = [m for m in due if m > now]
        return min(later) if later else None

    def night_ends(self, now: datetime) -> datetime:
        started = self.store.get_state(NIGHT_STARTED)
        start = datetime.fromisoformat(started) if started else now
        return start + timedelta(hours=self.config.planner.night_hours)

    def _merge(self, account: AccountConfig, rows: list[Any]) -> int | None:
        """Turn pending posts of one kind into one summary post (as many as fit)."""
        if self.composer is None:
            return None
        items = []
        shared = None
        for row in sorted(rows, key=lambda r: (r.feed_time, r.id)):
            stored = self.store.event_with_context(row.event_id)
            items.append((row.id, stored.event, stored.context, row.event_id))
            shared = stored.shared
        assert shared is not None
        views = shared_vars(shared, self.config.election.timezone, display_from(self.config))
        summary = compose_summary(
            self.composer, account, [(i, e, c) for i, e, c, _ in items], views
        )
        if summary is None:
            return None
        snapshot_row = self.store.post_row(items[-1][0])
        post_id = self.store.add_summary(
            event=summary.event,
            context=summary.context,
            snapshot_id=snapshot_row.snapshot_id,
            post=summary.post,
            merged=summary.included,
        )
        if post_id is not None:
            log.info(
                "merged %d %s posts for %s into one summary",
                len(summary.included),
                summary.event.data["kind"],
                account.name,
                extra={"account": account.name},
            )
        return post_id

    def _thread_parts(self, paused: dict[str, str]) -> DispatchStats:
        stats = DispatchStats()
        for row in self.store.thread_parts_due(self.clock.now()):
            if row.account in paused or row.account not in self.accounts or self.stop.is_set():
                continue
            if not self._same_mode(row):
                continue
            parent = self.store.post_by_key(row.thread_parent)
            if parent is None or parent.state in (PostState.FAILED, PostState.CANCELLED):
                self.store.mark_failed(row.id, "the previous part of its thread was not posted")
                stats.failed += 1
            elif parent.state == PostState.SENT:
                stats.add(self._dispatch(row, reply_to=parent.platform_post_id))
        return stats

    def _same_mode(self, row: Any) -> bool:
        return bool(row.dry_run) != self.live(self.accounts[row.account])

    def _refusal(self, row: Any) -> tuple[str, HoldKind, str] | None:
        """Why this post must not go out as it is, checked at send time in every mode: test data
        bound for a real account, or a text carrying a secret value."""
        account = self.accounts[row.account]
        if row.test_data and self.live(account):
            if not account.allow_test_posts:
                return (
                    PostState.CANCELLED,
                    HoldKind.TEST_DATA,
                    "test data: never posted to a real account (allow_test_posts is off)",
                )
            if row.thread_parent is None and not (row.text or "").startswith(TEST_MARKER):
                return (
                    PostState.HELD,
                    HoldKind.TEST_DATA,
                    f"test data without the {TEST_MARKER} marker: never posted as real results; "
                    "cancel it",
                )
        if holds_secret(row.text) or holds_secret(row.title):
            return PostState.HELD, HoldKind.SECRET, LEAK_REASON
        return None

    def _dispatch(self, row: Any, reply_to: str | None = None) -> DispatchStats:
        """Check, draw the card if needed, claim the post, publish it."""
        if not self._same_mode(row):
            log.error("post %d was planned in the other mode; it is not sent from here", row.id)
            return DispatchStats()
        refusal = self._refusal(row)
        if refusal is not None:
            state, kind, reason = refusal
            self.store.refuse(row.id, state, kind, reason)
            log.error("post %d not sent: %s", row.id, reason, extra={"account": row.account})
            return DispatchStats(held=1) if state == PostState.HELD else DispatchStats(failed=1)
        media = tuple(row.media or ())
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
        if result.sent and row.event_kind == "corrected":
            self._after_correction(row)
        return result

    def drain(self) -> DispatchStats:
        """Dispatch until nothing more is due now (a rehearsal's step)."""
        total = DispatchStats()
        while not self.stop.is_set():
            stats = self.run_once()
            total.add(stats)
            if stats.sent + stats.failed + stats.held == 0:
                break
        return total

    def _after_correction(self, row: Any) -> None:
        """Link a sent correction to the post it corrects; edit or delete that one if the
        account asks and the platform allows."""
        account = self.accounts[row.account]
        old = self.store.earlier_post(row.account, row.contest_id, before_id=row.id)
        if old is None:
            return
        self.store.set_corrects(row.id, old.id)
        caps = capabilities_for(account.platform)
        action = account.on_correction
        if action == "post" or not old.platform_post_id:
            return
        ref = PublishedRef(old.platform_post_id, old.sent_at or self.clock.now(), old.platform_url)
        publisher = self.publisher(row.account)
        try:
            if action == "edit" and caps.can_edit and hasattr(publisher, "edit"):
                publisher.edit(ref, row.text or "")
                log.info("edited post %d after its correction %d", old.id, row.id)
            elif action == "delete" and caps.can_delete:
                publisher.delete(ref)
                self.store.mark_failed(old.id, f"deleted: corrected by post {row.id}")
                log.info("deleted post %d after its correction %d", old.id, row.id)
        except (PublishError, NotImplementedError) as exc:
            log.warning("could not %s post %d after its correction: %s", action, old.id, exc)

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
            # The platform did not take the post and will later: wait as long as it said, else
            # back off by the account's failures in a row. Nothing goes to the account
            # meanwhile. A post is never given up for this: only the platform is at fault.
            self._failed(post.account, str(exc))
            told = exc.delay is not None
            wait = max(1.0, exc.delay) if exc.delay is not None else self._backoff(post.account)
            until = self._block(post.account, wait)
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
        except Reauthorize as exc:
            # The adapter already tried a refresh where one exists: stop this account only.
            self.pause(post.account, f"re-authorise the account: {exc}")
            self.store.mark_retry(post.outbox_id, f"account paused: {exc}", self.clock.now())
            return DispatchStats(retried=1)
        except Rejected as exc:
            self.store.mark_failed(post.outbox_id, f"rejected: {exc}")
            log.error("post %d rejected for good: %s", post.outbox_id, exc, extra=extra)
            return DispatchStats(failed=1)
        except InDoubt as exc:
            self._failed(post.account, str(exc))
            log.warning("post %d in doubt: %s; looking it up", post.outbox_id, exc, extra=extra)
            outcome = self._lookup(post)
            if outcome[0] == "absent":
                # Not there: safe to send again, after the account's backoff. The attempt limit
                # stays here: it bounds the harm of a look-up that cannot see its own posts.
                wait = self._backoff(post.account)
                self._block(post.account, wait)
                return self._retry(post, str(exc), wait, extra)
            return self._settle(post.outbox_id, outcome, str(exc))
        except Exception as exc:  # an adapter bug: the request may or may not have gone out
            self._failed(post.account, type(exc).__name__)
            log.exception("unexpected error publishing post %d", post.outbox_id, extra=extra)
            outcome = self._lookup(post)
            if outcome[0] == "absent":
                return self._retry(post, type(exc).__name__, None, extra)
            return self._settle(post.outbox_id, outcome, type(exc).__name__)
        failpoints.hit("after_call")
        self.store.mark_sent(post.outbox_id, ref.platform_id, ref.url, ref.published_at)
        failpoints.hit("after_sent")
        self._succeeded(post.account)
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
