"""`[[live.destinations]]` made real: where each one's stream goes and how its broadcast lives.

YouTube and Facebook get their ingest address from the platform (a broadcast created for the
night, with the account's existing credentials); TikTok LIVE has no API for this, so the
operator gives the server URL and the NAME of the secret holding the stream key; any other
RTMP(S) server the same way. `--dry-run` replaces them all with a local file.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from broadcaster.core.clock import Clock
from broadcaster.core.config import Config, LiveDestinationConfig
from broadcaster.core.secrets import SecretError, Secrets
from broadcaster.delivery.dispatcher import publisher_env
from broadcaster.live.sender import TargetError
from broadcaster.outbox.store import Store
from broadcaster.publishers.base import PublishError


class Lifecycle(Protocol):
    def start(self) -> str:
        """The ingest address (rtmp(s):// or a file); TargetError when it cannot be had."""
        ...

    def watch(self) -> str | None:
        """The platform's own view of the stream, if it has one; BroadcastEnded when over."""
        ...

    def end(self) -> None: ...

    def close(self) -> None: ...


class StaticTarget:
    """An address known in advance (TikTok LIVE, any RTMP server, a dry-run file)."""

    def __init__(self, resolve: Callable[[], str]) -> None:
        self.resolve = resolve

    def start(self) -> str:
        return self.resolve()

    def watch(self) -> str | None:
        return None

    def end(self) -> None:
        return None

    def close(self) -> None:
        return None


@dataclass
class Destination:
    name: str
    kind: str  # youtube, facebook, tiktok, rtmp, file
    orientation: str
    target: Lifecycle
    queue_seconds: float = 3.0
    watch_interval: float = 60.0


def rtmp_address(dest: LiveDestinationConfig, secrets: Secrets) -> Callable[[], str]:
    """The server URL with the stream key (read from the secrets when asked, never stored)."""

    def resolve() -> str:
        assert dest.url is not None
        if not dest.stream_key:
            return dest.url
        try:
            key = secrets.get(dest.stream_key, what=f"live {dest.name} stream_key")
        except SecretError as exc:
            raise TargetError(str(exc), permanent=True) from None
        return f"{dest.url.rstrip('/')}/{key}"

    return resolve


def build_destinations(
    config: Config, store: Store, clock: Clock, *, dry_run: bool
) -> list[Destination]:
    """The enabled destinations, or one dry-run file per picture orientation."""
    live = config.live
    if dry_run:
        orientations = sorted(
            {d.orientation or live.orientation for d in live.destinations if d.enabled}
            or {live.orientation}
        )
        out = []
        for orientation in orientations:
            path = config.path(live.dry_run_file) or Path(live.dry_run_file)
            if orientation != live.orientation:
                path = path.with_name(f"{path.stem}-{orientation}{path.suffix}")
            path.parent.mkdir(parents=True, exist_ok=True)
            out.append(
                Destination(
                    name=f"dry-run-{orientation}" if len(orientations) > 1 else "dry-run",
                    kind="file",
                    orientation=orientation,
                    target=StaticTarget(functools.partial(str, path)),
                )
            )
        return out

    env = publisher_env(config, store, clock, config.path(config.output.posts) or Path("x"))
    accounts = {a.name: a for a in config.accounts}
    out = []
    for dest in live.destinations:
        if not dest.enabled:
            continue
        target: Lifecycle
        if dest.kind == "youtube":
            from broadcaster.live.youtube_live import YouTubeLive

            target = _lazy(
                functools.partial(YouTubeLive, config, dest, accounts[dest.account or ""], env)
            )
        elif dest.kind == "facebook":
            from broadcaster.live.facebook_live import FacebookLive

            target = _lazy(
                functools.partial(FacebookLive, config, dest, accounts[dest.account or ""], env)
            )
        else:
            target = StaticTarget(rtmp_address(dest, env.secrets))
        out.append(
            Destination(
                name=dest.name,
                kind=dest.kind,
                orientation=dest.orientation or live.orientation,
                target=target,
                queue_seconds=dest.queue_seconds,
                watch_interval=dest.watch_interval,
            )
        )
    return out


class _lazy:
    """Builds a platform lifecycle on first use, so a destination whose credentials are missing
    fails on its own (named in status) instead of stopping the channel from starting."""

    def __init__(self, make: Callable[[], Lifecycle]) -> None:
        self.make = make
        self.inner: Lifecycle | None = None

    def _get(self) -> Lifecycle:
        if self.inner is None:
            try:
                self.inner = self.make()
            except (PublishError, SecretError) as exc:
                raise TargetError(str(exc), permanent=True) from None
        return self.inner

    def start(self) -> str:
        return self._get().start()

    def watch(self) -> str | None:
        return self.inner.watch() if self.inner is not None else None

    def end(self) -> None:
        if self.inner is not None:
            self.inner.end()

    def close(self) -> None:
        if self.inner is not None:
            self.inner.close()
