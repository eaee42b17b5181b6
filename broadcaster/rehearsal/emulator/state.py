"""What the emulated platforms hold between calls: the posts they accepted, their rate windows,
quotas and daily caps, ids, the clock, expired tokens, the live channel's streams, broadcasts
and videos, each platform's own state, and the faults asked for (the data types are in data.py).

One `Emulator` per server; every method is thread-safe (the server answers calls in threads).
It serves the platforms of the registry (`platforms.PLATFORMS`) unless given others.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

from broadcaster.rehearsal.emulator.data import Limits, LiveState, Received
from broadcaster.rehearsal.emulator.faults import Fault, Faults
from broadcaster.rehearsal.emulator.platforms import PLATFORMS
from broadcaster.rehearsal.emulator.routing import Platform

T = TypeVar("T")


class Emulator:
    """The platforms' state; thread-safe. `clock` gives the time used for rate windows and caps
    (a rehearsal passes its feed clock, so limits behave as on the night); `seed` makes the
    random faults repeatable; `platforms` defaults to the registry."""

    def __init__(
        self,
        limits: Limits | None = None,
        clock: Callable[[], float] | None = None,
        seed: int | None = None,
        platforms: Sequence[Platform] | None = None,
    ) -> None:
        self.platforms: tuple[Platform, ...] = tuple(PLATFORMS if platforms is None else platforms)
        names = [p.name for p in self.platforms]
        if len(set(names)) != len(names):
            raise ValueError(f"two platforms have the same name: {names}")
        self.limits = limits or Limits()
        self.clock = clock or time.time
        self.lock = threading.RLock()
        self.faults = Faults({p.name: p.faults for p in self.platforms}, seed)
        self.posts: list[Received] = []
        self.calls: dict[str, deque[float]] = defaultdict(deque)
        self.counts: dict[str, int] = defaultdict(int)  # responses by "platform status"
        self.refusals: dict[str, int] = defaultdict(int)  # calls refused for a limit
        self.ids = itertools.count(1001)
        self.quota_used = 0  # YouTube's daily quota units, reset at midnight Pacific
        self.quota_day = ""
        self.expired_tokens: set[str] = set()
        self.live = LiveState()
        self._own: dict[str, Any] = {}  # each platform's own state, by key

    # -- faults --

    def add_faults(self, spec: str) -> None:
        """Queue faults (the grammar is in the package docstring); ValueError if malformed."""
        self.faults.add(spec)

    def take_fault(self, platform: str) -> Fault | None:
        """The fault for this posting call, if any: the next one asked for, else a random one."""
        return self.faults.take(platform)

    # -- limits --

    def allow(self, key: str, limit: int, window: float) -> tuple[bool, float]:
        """Record a call in a sliding window; (allowed, seconds until a slot frees)."""
        now = self.clock()
        with self.lock:
            calls = self.calls[key]
            while calls and calls[0] <= now - window:
                calls.popleft()
            if len(calls) >= limit:
                return False, max(1.0, calls[0] + window - now)
            calls.append(now)
            return True, 0.0

    def used(self, key: str) -> int:
        """Calls in the window `key` as last counted by `allow`."""
        with self.lock:
            return len(self.calls[key])

    def spend_quota(self, units: int, day: str) -> bool:
        """Spend daily quota units (YouTube's), the count starting again on a new `day`;
        False, spending nothing, when the day's quota would be exceeded."""
        with self.lock:
            if self.quota_day != day:
                self.quota_day, self.quota_used = day, 0
            if self.quota_used + units > self.limits.youtube_daily_units:
                return False
            self.quota_used += units
            return True

    def refuse(self, platform: str) -> None:
        """Count a call refused for a rate limit, quota or daily cap."""
        with self.lock:
            self.refusals[platform] += 1

    def count(self, platform: str, status: int) -> None:
        """Count an answer in the snapshot's `responses`."""
        with self.lock:
            self.counts[f"{platform} {status}"] += 1

    # -- tokens --

    def expire_token(self, token: str) -> None:
        with self.lock:
            self.expired_tokens.add(token)

    def token_expired(self, token: str) -> bool:
        with self.lock:
            return token in self.expired_tokens

    # -- posts --

    def record(
        self,
        platform: str,
        target: str,
        post_id: str,
        text: str,
        media: Iterable[str] = (),
        title: str | None = None,
        reply_to: str | None = None,
    ) -> Received:
        """Keep a post the platform accepted, stamped with the clock's time."""
        post = Received(platform, target, post_id, text, list(media), title, reply_to)
        with self.lock:
            post.at = datetime.fromtimestamp(self.clock(), UTC).isoformat()
            self.posts.append(post)
        return post

    def posts_of(self, platform: str) -> list[Received]:
        """The platform's posts, oldest first (deleted ones included)."""
        with self.lock:
            return [p for p in self.posts if p.platform == platform]

    def delete(self, platform: str, post_id: str) -> bool:
        """Mark the post deleted; False when the platform has no such post."""
        with self.lock:
            found = [p for p in self.posts if p.platform == platform and p.id == post_id]
            for p in found:
                p.deleted = True
            return bool(found)

    def edit(self, platform: str, post_id: str, text: str | None) -> bool:
        """Change the first such post's text (None: leave it); False when there is no such
        post."""
        with self.lock:
            for p in self.posts:
                if p.platform == platform and p.id == post_id:
                    p.text = p.text if text is None else text
                    return True
            return False

    def next_id(self) -> str:
        with self.lock:
            return str(next(self.ids))

    def own(self, key: str, factory: Callable[[], T]) -> T:
        """A platform's own state (a chat, a map of publish ids...), made by `factory` on first
        use; a platform module keeps what only it needs here, under a key of its own."""
        with self.lock:
            if key not in self._own:
                self._own[key] = factory()
            return cast(T, self._own[key])

    def snapshot(self) -> dict[str, Any]:
        """What `GET /_emulator/posts` answers: posts, responses, quota, refusals, faults."""
        with self.lock:
            return {
                "posts": [asdict(p) for p in self.posts],
                "responses": dict(self.counts),
                "youtube_quota_used": self.quota_used,
                "limit_refusals": dict(self.refusals),
                "pending_faults": self.faults.pending(),
                "random_faults": self.faults.drawn(),
            }


def live_state(emulator: Emulator) -> LiveState:
    """The emulator's live state (ingest addresses, streams, broadcasts, videos, calls)."""
    return emulator.live
