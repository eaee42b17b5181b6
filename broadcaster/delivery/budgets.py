"""An account's budget now: its windows (configured, else its platform's, tightened by what the
platform reported), what it sent in them, and any wait the platform asked for.

A post that carried a short video counts as the posts it cost (a YouTube Short: 1,600 quota
units, 80 chat messages of 20), so the planner's budget stays true after one goes out."""

from __future__ import annotations

from datetime import datetime, timedelta

from broadcaster.core.config import AccountConfig
from broadcaster.domain.quota import Window
from broadcaster.outbox.reports import video_sends
from broadcaster.outbox.state import State
from broadcaster.outbox.store import Store
from broadcaster.planning.budget import BudgetState, budget_state, effective_windows
from broadcaster.publishers import capabilities_for, video_options


def account_windows(state: State, account: AccountConfig) -> list[Window]:
    """The account's quota: configured, else its platform's, tightened by what it reported."""
    return windows_with(account, state.learned_quota(account.name))


def windows_with(account: AccountConfig, learned: Window | None) -> list[Window]:
    """`account_windows` with what the platform reported (`State.learned_quota`) in hand."""
    configured = account.quota
    if configured is None:
        configured = list(capabilities_for(account.platform).quota)
    return effective_windows(configured, learned)


def account_budget(
    store: Store,
    account: AccountConfig,
    now: datetime,
    windows: list[Window] | None = None,
    sent_times: list[datetime] | None = None,
) -> BudgetState:
    """What the account may still send, from what it sent (`sent_times`: at least its longest
    window's sends, read from the outbox when not given) and what the platform told us."""
    state = State(store)
    windows = windows if windows is not None else account_windows(state, account)
    span = max((w.seconds for w in windows), default=86400)
    since = now - timedelta(seconds=span)
    if sent_times is None:
        sent_times = [r.sent_at for r in store.sent_since(account.name, since)]
    spent = [*sent_times, *video_surcharge(store, account, since)]
    return budget_state(windows, spent, now, blocked_until=state.blocked_until(account.name))


def video_surcharge(store: Store, account: AccountConfig, since: datetime) -> list[datetime]:
    """The sends a video post costs beyond the one it is: its time, `cost - 1` more times."""
    video = capabilities_for(account.platform).video
    if video is None or video.cost <= 1 or video_options(account) is None:
        return []  # no query at all for the accounts that post no videos
    return [t for t in video_sends(store, account.name, since) for _ in range(video.cost - 1)]
