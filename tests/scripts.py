"""Scripted publishers in place of real ones, through the Dispatcher's publisher factory."""

from __future__ import annotations

from broadcaster.core.config import AccountConfig
from broadcaster.publishers import Publisher, PublisherEnv, create_publisher


class Scripts(dict[str, Publisher]):
    """account name -> the publisher to use for it; other accounts get their real one. Pass
    `scripts.factory` as the Dispatcher's `publishers`; change an entry before the account is
    first used, or after it was paused (a pause drops the account's publisher)."""

    def factory(self, account: AccountConfig, env: PublisherEnv, dry_run: bool) -> Publisher:
        scripted = self.get(account.name)
        return scripted if scripted is not None else create_publisher(account, env, dry_run=dry_run)
