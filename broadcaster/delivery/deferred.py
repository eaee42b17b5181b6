"""Posts stored unrendered (a burst larger than `[templates] render_ahead`) get their text just
before they are sent: rendered from the event's stored context and its snapshot's, as the
pipeline would have rendered them at ingest, so the text is the same. Rendering can still hold
a post (a template problem, a secret in the text) or split it into a thread, as at ingest."""

from __future__ import annotations

import logging
from typing import Any

from broadcaster.content.compose import Composer
from broadcaster.core.config import AccountConfig, Config
from broadcaster.domain.posts import HoldKind, PostState
from broadcaster.outbox.errors import database_outage, describe_error
from broadcaster.outbox.lease import LeaseLost
from broadcaster.outbox.store import Store
from broadcaster.outbox.texts import StoredTexts

log = logging.getLogger(__name__)


class DeferredRendering:
    def __init__(self, config: Config, store: Store, composer: Composer) -> None:
        self.store = store
        self.composer = composer
        self.stored = StoredTexts(config, store, composer)
        self._checked = False

    def render(self, row: Any, account: AccountConfig) -> tuple[Any | None, int]:
        """(the post read again with its text, ready to send; or None) and how many posts
        rendering held (it, and any thread parts it made). None without a hold means it
        changed meanwhile (sent, superseded, acted on) or was cancelled."""
        if not self._checked:
            # Load and check every template as the pipeline did at its start, rather than
            # one by one unchecked: a template that fails its check is not used here either.
            self.composer.preload()
            self._checked = True
        try:
            rows = self.stored.texts(row.event_id, account, row.idempotency_key)
            filled = self.store.fill_deferred(row.id, rows)
        except LeaseLost:
            raise
        except Exception as exc:
            if database_outage(exc):
                raise  # the database, not the post: the next step tries it again
            # Template errors hold the post inside compose. Anything else (a stored event its
            # templates cannot read, say one written by another version; a text the database
            # refuses) would otherwise stop every dispatch step at this same post: hold it,
            # named, and go on.
            reason = f"its text could not be made from its stored event: {describe_error(exc)}"
            self.store.refuse(row.id, PostState.HELD, HoldKind.TEMPLATE, reason)
            log.error("post %d held: %s", row.id, reason, extra={"account": account.name})
            return None, 1
        if not filled:
            return None, 0
        if rows[0].state != PostState.PENDING:
            log.error(
                "post %d held when rendered to be sent: %s",
                row.id,
                rows[0].hold_reason,
                extra={"account": account.name},
            )
            return None, sum(1 for r in rows if r.state == PostState.HELD)
        return self.store.post_row(row.id), 0
