"""A stored post's text made again from its stored event and its snapshot's, as the pipeline
made it at ingest: for a burst's post just before it is sent, and for a held post after a
template fix."""

from __future__ import annotations

from typing import Any

from broadcaster.content.compose import Composer
from broadcaster.content.context import shared_vars, template_vars
from broadcaster.content.samples import display_from
from broadcaster.core.config import AccountConfig, Config
from broadcaster.domain.posts import NewPost
from broadcaster.outbox.store import Store


class StoredTexts:
    def __init__(self, config: Config, store: Store, composer: Composer) -> None:
        self.config = config
        self.store = store
        self.composer = composer
        self.display = display_from(config)
        # The last snapshot's variables: the posts made in a row mostly come from one.
        self._views: tuple[int, dict[str, Any]] | None = None

    def texts(self, event_id: int, account: AccountConfig, idempotency_key: str) -> list[NewPost]:
        """The rows `Composer.compose` makes for the event on the account (held ones where a
        template fails)."""
        stored = self.store.event_with_context(event_id)
        tz = self.config.election.timezone
        if self._views is None or self._views[0] != stored.snapshot_id:
            self._views = (stored.snapshot_id, shared_vars(stored.shared, tz, self.display))
        variables = template_vars(stored.event, stored.context, self._views[1], timezone=tz)
        return self.composer.compose(stored.event, account, variables, idempotency_key)
