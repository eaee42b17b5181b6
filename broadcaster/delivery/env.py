"""What publishers are lent by the pipeline: the clock, secrets, tokens, durable state."""

from __future__ import annotations

from pathlib import Path

from broadcaster.core.clock import Clock
from broadcaster.core.config import Config
from broadcaster.core.secrets import Secrets, TokenStore
from broadcaster.outbox.state import State
from broadcaster.outbox.store import Store
from broadcaster.publishers.base import PublisherEnv


def publisher_env(config: Config, store: Store, clock: Clock, posts_path: Path) -> PublisherEnv:
    """Secrets, the token store, durable state and checkpoints, for every publisher."""
    return PublisherEnv(
        clock=clock,
        posts_path=posts_path,
        timezone=config.election.timezone,
        secrets=Secrets(config.path(config.secrets.file)),
        tokens=TokenStore(config.path(config.secrets.tokens) or Path("tokens.json")),
        state=State(store),
        checkpoint=store.set_checkpoint,
        file_mode=config.output.mode,
    )
