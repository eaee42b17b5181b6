"""Posts in doubt: sent to a platform, with no answer that says whether it took them.

A post is looked up on its platform before anything is sent again: found means sent, certainly
absent means send again, still processing means ask later, and where the platform cannot look
(TikTok before its publish_id) the post is held for an operator, who checks the account and
marks it sent or approves it. A look-up that fails is tried again on a later step.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from broadcaster.core.clock import Clock
from broadcaster.delivery.breaker import Breaker
from broadcaster.delivery.outcomes import DispatchStats, Found, Lookup
from broadcaster.domain.posts import HoldKind, PostState
from broadcaster.outbox.store import Store, post_from_row
from broadcaster.publishers.base import (
    NotFoundYet,
    Post,
    Publisher,
    PublishError,
    Reauthorize,
)

log = logging.getLogger(__name__)

STILL_PROCESSING = timedelta(seconds=60)  # when a platform still processing a post is asked again


class Recovery:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        breaker: Breaker,
        publisher: Callable[[str], Publisher],
    ) -> None:
        self.store = store
        self.clock = clock
        self.breaker = breaker
        self.publisher = publisher

    def recover(self, owned: Callable[[Any], bool], known: set[str]) -> DispatchStats:
        """Settle posts left `sending` by an interruption. `owned(row)`: the post was planned
        in this run's mode (others are never looked up or sent from here); `known`: the
        configured accounts."""
        stats = DispatchStats()
        paused = self.breaker.paused()
        for row in self.store.posts_in_state(PostState.SENDING):
            if row.account not in known:
                self.store.mark_held(
                    row.id, HoldKind.ACCOUNT, "in doubt: the account is no longer configured"
                )
                stats.held += 1
                continue
            if not owned(row) or row.account in paused:
                continue
            stats.add(self.settle(row.id, self.lookup(post_from_row(row)), "interrupted"))
        return stats

    def lookup(self, post: Post) -> Lookup:
        """Ask the platform whether the post is there."""
        try:
            ref = self.publisher(post.account).find(post)
        except NotImplementedError as exc:
            return Lookup(Found.UNKNOWABLE, detail=str(exc))
        except NotFoundYet as exc:
            return Lookup(Found.LATER, detail=str(exc))
        except Reauthorize as exc:
            self.breaker.pause(post.account, f"re-authorise the account: {exc}")
            return Lookup(Found.FAILED, detail=str(exc))
        except PublishError as exc:
            return Lookup(Found.FAILED, detail=str(exc))
        return Lookup(Found.SENT, ref=ref) if ref is not None else Lookup(Found.ABSENT)

    def settle(self, post_id: int, lookup: Lookup, why: str) -> DispatchStats:
        """Record what the look-up found."""
        now = self.clock.now()
        match lookup.found:
            case Found.SENT:
                assert lookup.ref is not None
                log.info("post %d had been published (%s)", post_id, why)
                ref = lookup.ref
                self.store.mark_sent(post_id, ref.platform_id, ref.url, ref.published_at)
                return DispatchStats(sent=1)
            case Found.ABSENT:
                log.info("post %d was not published (%s); sending again", post_id, why)
                self.store.mark_retry(post_id, f"{why} before publishing", now)
                return DispatchStats(retried=1)
            case Found.LATER:
                # Publishing again resumes from the recorded checkpoint: never a second post.
                self.store.mark_retry(post_id, lookup.detail, now + STILL_PROCESSING)
                return DispatchStats(retried=1)
            case Found.UNKNOWABLE:
                self.store.mark_held(
                    post_id,
                    HoldKind.IN_DOUBT,
                    f"in doubt ({why}): {lookup.detail}; check the account, then `broadcaster "
                    f"outbox mark-sent {post_id}` if it is there, or `broadcaster outbox approve "
                    f"{post_id}` to send it again",
                )
                log.error(
                    "post %d is in doubt and held for an operator: %s", post_id, lookup.detail
                )
                return DispatchStats(held=1)
        log.warning(
            "post %d: could not look it up yet (%s); will try again", post_id, lookup.detail
        )
        return DispatchStats()
