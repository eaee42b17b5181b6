"""Which accounts may post now: pauses (an operator's, a credential problem's, the circuit
breaker's) and backing off an account whose platform keeps failing.

A paused account's posts wait while the others go on. The breaker counts failures in a row per
account; too many pause it for a cool-down, after which it lifts itself. A platform that fails
without saying how long to wait gets an exponential backoff with jitter, per account: its posts
wait, whichever of them failed.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from datetime import datetime, timedelta

from broadcaster.core.clock import Clock
from broadcaster.core.config import AccountConfig, Config
from broadcaster.outbox.state import PauseRecord, State

log = logging.getLogger(__name__)

BACKOFF_BASE = 5.0  # the first wait is 2.5-5 s
BACKOFF_CAP = 120.0  # never more than two minutes between tries of a failing platform


def backoff(failures: int, base: float = BACKOFF_BASE, cap: float = BACKOFF_CAP) -> float:
    """Exponential backoff with jitter, in seconds, after `failures` failures in a row: 2.5-5 s,
    then doubling up to `cap` (half to all of it, so that accounts do not retry in step)."""
    return random.uniform(0.5, 1.0) * min(cap, base * 2 ** max(0, failures - 1))


class Breaker:
    def __init__(
        self,
        config: Config,
        state: State,
        clock: Clock,
        accounts: dict[str, AccountConfig],
        *,
        on_pause: Callable[[str], None] = lambda account: None,
    ) -> None:
        self.config = config
        self.state = state
        self.clock = clock
        self.accounts = accounts
        self.on_pause = on_pause  # e.g. drop the account's publisher and its connections
        self._no_failures: set[str] = set()  # accounts whose failure count is known to be 0

    def paused(self) -> dict[str, str]:
        """Paused accounts and why; a breaker pause whose cool-down has passed is lifted."""
        out = {}
        now = self.clock.now()
        for name, (record, _) in self.state.pauses_and_blocks(self.accounts).items():
            if record is None:
                continue
            if record.until is not None and record.until <= now:
                self.state.resume(name)
                log.warning("account %s resumes after its cool-down", name, extra={"account": name})
                continue
            out[name] = record.reason
        return out

    def pause(self, account: str, reason: str, *, until: datetime | None = None) -> None:
        """Stop posting to one account. The reason always names the command that fixes it."""
        if "`broadcaster " not in reason:
            reason = f"{reason}; {self.remedy(account, reason)}"
        self.state.set_pause(
            account, PauseRecord(reason, at=self.clock.now(), until=until, by="broadcaster")
        )
        self.on_pause(account)
        log.error("ACCOUNT PAUSED: %s: %s", account, reason, extra={"account": account})

    def remedy(self, account: str, reason: str) -> str:
        acct = self.accounts.get(account)
        if reason.startswith("re-authorise") and acct is not None and acct.platform != "dryrun":
            return (
                f"run `broadcaster auth {acct.platform} --account {account}` (it resumes the "
                f"account), or fix the secret named above and run `broadcaster resume {account}`"
            )
        return f"once fixed, run `broadcaster resume {account}`"

    def failed(self, account: str, error: str) -> None:
        """Count a failure; too many in a row open the circuit breaker."""
        self._no_failures.discard(account)
        count = self.state.failures(account) + 1
        self.state.set_failures(account, count)
        if count >= self.config.dispatch.breaker_failures:
            cooldown = timedelta(seconds=self.config.dispatch.breaker_cooldown)
            self.pause(
                account,
                f"circuit breaker: {count} failures in a row (last: {error}); it tries again "
                f"by itself after {int(cooldown.total_seconds())} s, "
                f"or `broadcaster resume {account}`",
                until=self.clock.now() + cooldown,
            )

    def succeeded(self, account: str) -> None:
        # Each send ends here: the count is read and written only when it may not be 0 (only
        # failures raise it, and they come through `failed`).
        if account not in self._no_failures:
            self.state.set_failures(account, 0)
            self._no_failures.add(account)

    def backoff(self, account: str) -> float:
        """The account's next wait, from its failures in a row."""
        return backoff(max(1, self.state.failures(account)))

    def block(self, account: str, seconds: float) -> datetime:
        """Send nothing to the account for `seconds` (a platform's earlier, longer wait
        stands); returns when it may be tried again."""
        self.state.block(account, self.clock.now() + timedelta(seconds=seconds))
        until = self.state.blocked_until(account)
        assert until is not None
        return until
