"""An account's budget now: its windows (configured, else its platform's, tightened by what the
platform reported), what it sent in them, and any wait the platform asked for."""

from __future__ import annotations

from datetime import datetime, timedelta

from broadcaster.core.config import AccountConfig
from broadcaster.domain.quota import Window
from broadcaster.outbox.state import State
from broadcaster.outbox.store import Store
from broadcaster.planning.budget import BudgetState, budget_state, effective_windows
from broadcaster.publishers import capabilities_for


def account_windows(state: State, account: AccountConfig) -> list[Window]:
    """The account's quota: configured, else its platform's, tightened by what it reported."""
    configured = account.quota
    if configured is None:
        configured = list(capabilities_for(account.platform).quota)
    return effective_windows(configured, state.learned_quota(account.name))


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
    if sent_times is None:
        span = max((w.seconds for w in windows), default=86400)
        sent_times = [
            r.sent_at for r in store.sent_since(account.name, now - timedelta(seconds=span))
        ]
    return budget_state(windows, sent_times, now, blocked_until=state.blocked_until(account.name))
