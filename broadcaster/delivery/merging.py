"""Merging: pending posts of one kind become one summary post when the budget is tight."""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from broadcaster.content.compose import Composer, Summary, compose_summary
from broadcaster.content.context import shared_vars
from broadcaster.content.samples import display_from
from broadcaster.core.config import AccountConfig
from broadcaster.outbox.store import Store, StoredEvent

log = logging.getLogger(__name__)

FIRST_TRY = 8  # posts tried in a summary first; then twice as many, while they all fit
EVENTS_KEPT = 4096  # stored events kept for the next merges (a few MB at most)


class StoredEvents:
    """The events merges read, kept least recently used first out. A stored event never
    changes, and every account merges much the same events in turn: each is read once for all
    of them. What it hands out is shared: read it, never change it."""

    def __init__(self, store: Store, kept: int = EVENTS_KEPT) -> None:
        self.store = store
        self.kept = kept
        self._events: OrderedDict[int, StoredEvent] = OrderedDict()

    def get(self, event_ids: Sequence[int]) -> dict[int, StoredEvent]:
        out: dict[int, StoredEvent] = {}
        missing = []
        for event_id in event_ids:
            found = self._events.get(event_id)
            if found is None:
                missing.append(event_id)
            else:
                self._events.move_to_end(event_id)
                out[event_id] = found
        if missing:
            read = self.store.events_with_context_many(missing)
            out.update(read)
            self._events.update(read)
            while len(self._events) > self.kept:
                self._events.popitem(last=False)
        return out


@dataclass(frozen=True, slots=True)
class Merged:
    post_id: int  # the summary
    included: list[int]  # the posts it replaced


def merge(
    store: Store,
    events: StoredEvents,
    composer: Composer,
    account: AccountConfig,
    ids: Sequence[int],
    event_of: Callable[[int], int],
) -> Merged | None:
    """Turn pending posts of one kind (`ids`, oldest first; `event_of` gives each one's event)
    into one summary post, as many as fit; None when fewer than two fit, the template fails
    or a post was taken meanwhile.

    How many fit is found by trying 8, 16, 32... of the oldest until some do not fit (then
    `compose_summary` searches below that), so a merge costs what the summary holds, not the
    whole backlog: only the events it may include are read, a few hundred per statement.
    (Not a jump to the size the lengths predict: for a template whose text shrinks as it grows,
    "N seats called" above some count, that finds another size than this does.)"""
    if not ids:
        return None
    config = composer.config
    loaded: list[tuple[int, Any, dict[str, Any]]] = []
    summary: Summary | None = None
    # The summary speaks as of the newest post's snapshot, whichever posts it ends up holding.
    newest_post = ids[-1]
    newest_event = event_of(newest_post)
    newest = events.get([newest_event])[newest_event]
    shared = newest.shared
    views = shared_vars(shared, config.election.timezone, display_from(config))
    n = min(FIRST_TRY, len(ids))
    made: dict[str, Any] = {}  # the items' views, made once for every summary tried
    while True:
        wanted = [(post_id, event_of(post_id)) for post_id in ids[len(loaded) : n]]
        stored = events.get([event_id for _, event_id in wanted])
        for post_id, event_id in wanted:
            loaded.append((post_id, stored[event_id].event, stored[event_id].context))
        summary = compose_summary(composer, account, loaded, views, made)
        if summary is None or len(summary.included) < n or n == len(ids):
            break
        n = min(2 * n, len(ids))
    if summary is None:
        return None
    summary_id = store.add_summary(
        event=summary.event,
        context=summary.context,
        snapshot_id=newest.snapshot_id,
        post=summary.post,
        merged=summary.included,
    )
    if summary_id is None:
        return None
    log.info(
        "merged %d %s posts for %s into one summary",
        len(summary.included),
        summary.event.data["kind"],
        account.name,
        extra={"account": account.name},
    )
    return Merged(summary_id, list(summary.included))
