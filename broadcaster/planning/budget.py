"""How many posts an account may still send, and when.

Each platform module declares its quota as sliding windows (posts per seconds), with defaults
from the platforms' documentation; `quota` in an account's configuration replaces them. What was
spent is counted from the outbox itself (posts sent in each window), so a restart forgets
nothing. What the platform reports overrides our own counting: an adapter that sees an
exhausted limit records a wait until its reset, and X's headers reveal the real daily cap of the
account's tier (both kept in broadcaster/outbox/state.py).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from broadcaster.domain.quota import Window


@dataclass(frozen=True, slots=True)
class BudgetState:
    """An account's budget at one moment."""

    next_slot: datetime  # the earliest time a post may go (now, or when a window frees up)
    remaining: int  # posts left in the longest window
    longest: Window | None
    blocked_reason: str | None = None


def effective_windows(configured: Sequence[Window], reported: Window | None) -> list[Window]:
    """The configured windows, with a platform-reported cap tightening the matching one."""
    windows = list(configured)
    if reported is not None:
        same = [w for w in windows if w.seconds == reported.seconds]
        if same:
            windows = [
                w if w.seconds != reported.seconds else min(w, reported, key=lambda x: x.posts)
                for w in windows
            ]
        else:
            windows.append(reported)
    return windows


def budget_state(
    windows: Sequence[Window],
    sent_times: Sequence[datetime],
    now: datetime,
    *,
    blocked_until: datetime | None = None,
) -> BudgetState:
    """Budget from the times posts were sent (any order); pure, so it can be tested alone."""
    next_slot = now
    reason = None
    if blocked_until is not None and blocked_until > now:
        next_slot, reason = blocked_until, "the platform asked to wait"
    remaining = 10**9
    longest = max(windows, key=lambda w: w.seconds) if windows else None
    ordered = sorted(sent_times)
    for window in windows:
        start = now - timedelta(seconds=window.seconds)
        # A day's sends are counted at every step of every account: found by halving, not
        # by a pass over all of them.
        inside = ordered[bisect_right(ordered, start) :]
        free = window.posts - len(inside)
        if window is longest:
            remaining = max(0, free)
        if free <= 0:
            # The window frees a slot when its oldest post inside (the |free|+1-th) ages out.
            index = min(len(inside) - 1, -free) if inside else 0
            frees_at = (inside[index] if inside else now) + timedelta(seconds=window.seconds)
            if frees_at > next_slot:
                next_slot = frees_at
                reason = f"{window.posts} posts per {_span(window.seconds)} reached"
    return BudgetState(next_slot, remaining if longest else 10**9, longest, reason)


def _span(seconds: int) -> str:
    if seconds % 86400 == 0:
        return f"{seconds // 86400 * 24} h"
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    if seconds % 60 == 0:
        return f"{seconds // 60} min"
    return f"{seconds} s"
