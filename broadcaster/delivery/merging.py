"""Merging: pending posts of one kind become one summary post when the budget is tight."""

from __future__ import annotations

import logging
from typing import Any

from broadcaster.content.compose import Composer, compose_summary
from broadcaster.content.context import shared_vars
from broadcaster.content.samples import display_from
from broadcaster.core.config import AccountConfig
from broadcaster.outbox.store import Store

log = logging.getLogger(__name__)


def merge(store: Store, composer: Composer, account: AccountConfig, rows: list[Any]) -> int | None:
    """Turn pending posts of one kind into one summary post, as many as fit; the summary's post
    id, or None when fewer than two fit, the template fails or a post was taken meanwhile."""
    config = composer.config
    items = []
    shared = None
    for row in sorted(rows, key=lambda r: (r.feed_time, r.id)):
        stored = store.event_with_context(row.event_id)
        items.append((row.id, stored.event, stored.context))
        shared = stored.shared
    if shared is None:
        return None
    views = shared_vars(shared, config.election.timezone, display_from(config))
    summary = compose_summary(composer, account, items, views)
    if summary is None:
        return None
    newest = store.post_row(items[-1][0])
    post_id = store.add_summary(
        event=summary.event,
        context=summary.context,
        snapshot_id=newest.snapshot_id,
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
