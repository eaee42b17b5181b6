"""Starting the channel: on its own (`broadcaster live`), or beside the daemon (`[live] enabled`).

Test data never reaches a real destination: like the daemon, the channel refuses to start when
the feed is (or was last) test data and a real destination has not said `allow_test_data`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from broadcaster.core.clock import WallClock
from broadcaster.core.config import Config, ConfigError
from broadcaster.live.channel import Channel
from broadcaster.live.data import StoreFeed
from broadcaster.live.destinations import build_destinations
from broadcaster.outbox.store import Store

log = logging.getLogger(__name__)


def refuse_test_stream(config: Config, store: Store, *, dry_run: bool) -> None:
    """ConfigError when test data would be streamed to a real destination."""
    if dry_run:
        return
    last = store.last_accepted()
    is_test = config.feed.is_test or (last is not None and last[0].is_test)
    if not is_test:
        return
    refusing = [d.name for d in config.live.destinations if d.enabled and not d.allow_test_data]
    if refusing:
        raise ConfigError(
            f"the feed is test data and these live destinations are real: {', '.join(refusing)}."
            " Run `broadcaster live --dry-run`, or set allow_test_data = true on a destination "
            "meant for rehearsals (an unlisted broadcast)"
        )


def make_channel(
    config: Config, store: Store, *, dry_run: bool, stop: threading.Event | None = None
) -> Channel:
    """The channel fed from the database, to the configured destinations (or the dry-run
    file). Raises ConfigError when it must not start."""
    refuse_test_stream(config, store, dry_run=dry_run)
    clock = WallClock()
    destinations = build_destinations(config, store, clock, dry_run=dry_run)
    if not destinations:
        raise ConfigError("[live] has no enabled destination: add [[live.destinations]]")
    return Channel(
        config,
        feed=StoreFeed(config, store),
        destinations=destinations,
        store=store,
        clock=clock,
        stop=stop,
    )


def start_beside(
    config: Config, store: Store, *, dry_run: bool, stop: threading.Event
) -> Callable[[], None]:
    """Start the channel in a thread next to the daemon; returns what waits for its end.
    A channel that cannot start is logged and the daemon goes on posting."""
    try:
        channel = make_channel(config, store, dry_run=dry_run, stop=stop)
    except (ConfigError, ValueError) as exc:
        log.error("live channel not started: %s", exc)
        return lambda: None

    def run() -> None:
        try:
            channel.run()
        except Exception:
            log.exception("the live channel stopped on an error; the daemon goes on")

    thread = threading.Thread(target=run, name="live-channel", daemon=True)
    thread.start()
    return lambda: thread.join(30)


class LiveCompanion:
    """The live channel run beside the daemon (`[live] enabled = true`)."""

    name = "live channel"

    def __init__(self, config: Config, *, dry_run: bool) -> None:
        self.config = config
        self.dry_run = dry_run
        self._join: Callable[[], None] = lambda: None

    def start(self, store: Store, stop: threading.Event) -> None:
        self._join = start_beside(self.config, store, dry_run=self.dry_run, stop=stop)

    def stop(self) -> None:
        self._join()
