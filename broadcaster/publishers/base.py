"""The publisher interface every platform adapter implements, and the shared error taxonomy.

An adapter maps whatever its platform or client library raises into exactly one of the four
PublishError kinds below; the dispatcher decides what to do from the kind alone.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar, Protocol

from broadcaster.core.clock import Clock
from broadcaster.core.secrets import Secrets, TokenStore
from broadcaster.domain.limits import TextLimit
from broadcaster.planning.budget import Window

DEFAULT_TEXT = TextLimit(63206, "chars")


@dataclass(frozen=True, slots=True)
class CardSpec:
    """The result-card image a platform takes: file format and size in pixels."""

    format: str = "PNG"  # PNG or JPEG
    width: int = 1200
    height: int = 675


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a platform allows, as data, so callers ask instead of special-casing platforms.

    Limits here are the defaults; `[limits]` in the configuration overrides them by name
    (`<platform>` for the text, `<platform>_title` for a title).
    """

    can_delete: bool = False
    can_edit: bool = False
    can_find: bool = False
    threads: bool = False  # replies, so a long post can become a numbered thread
    media: tuple[str, ...] = ()  # accepted media types, e.g. "image/jpeg"
    requires_media: bool = False  # a post cannot go out without an image
    text: TextLimit = DEFAULT_TEXT
    title: TextLimit | None = None  # a separate title field, made from the post's first line
    card: CardSpec | None = None  # None: the platform takes no images
    # Posting limits as sliding windows; an account's `quota` replaces them.
    quota: tuple[Window, ...] = ()


@dataclass(frozen=True, slots=True)
class Post:
    """One rendered post, as handed to a publisher."""

    outbox_id: int
    idempotency_key: str
    account: str
    platform: str
    event_key: str
    event_kind: str
    contest_id: str | None
    text: str
    created_at: datetime
    media: tuple[str, ...] = ()
    attempt: int = 1
    title: str | None = None  # for platforms with a title field
    reply_to: str | None = None  # platform id of the previous part of a thread
    checkpoint: str | None = None  # an interim id recorded during an earlier attempt


@dataclass(frozen=True, slots=True)
class PublishedRef:
    """Where a post landed on the platform."""

    platform_id: str
    published_at: datetime
    url: str | None = None


class PublishError(Exception):
    """Base of the taxonomy. Messages must never contain a secret."""

    retryable: ClassVar[bool] = False


class RetryLater(PublishError):
    """Rate limited or a temporary failure before the platform accepted anything."""

    retryable = True

    def __init__(self, message: str, delay: float | None = None) -> None:
        super().__init__(message)
        self.delay = delay


class Reauthorize(PublishError):
    """The token is invalid or expired; a refresh (or an operator) is needed."""


class Rejected(PublishError):
    """Refused for good: policy, duplicate, bad content, missing permission. Never retried."""


class InDoubt(PublishError):
    """The request may have reached the platform (timeout or dropped connection after sending)."""


class NotFoundYet(PublishError):
    """A lookup could not tell (the platform is still processing the post); ask again later."""


class KeyValue(Protocol):
    """Small durable state a publisher may keep (quota counters, a channel's chat id)."""

    def get_state(self, key: str, default: Any = None) -> Any: ...

    def put_state(self, key: str, value: Any) -> None: ...


class _MemoryState:
    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def get_state(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    def put_state(self, key: str, value: Any) -> None:
        self.values[key] = value


def _no_checkpoint(outbox_id: int, value: str) -> None:
    return None


@dataclass(frozen=True, slots=True)
class EmulatorAccount:
    """How a platform module points an account at the local emulator (for rehearsals and tests):
    the account settings, and the secrets and stored tokens those settings name."""

    settings: dict[str, Any]
    secrets: dict[str, str] = field(default_factory=dict)
    tokens: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PublisherEnv:
    """What the pipeline lends every publisher it creates."""

    clock: Clock
    posts_path: Path  # where the dry-run publisher writes
    timezone: str = "UTC"
    secrets: Secrets = field(default_factory=Secrets)
    tokens: TokenStore | None = None
    state: KeyValue = field(default_factory=_MemoryState)
    # Records an interim platform id (e.g. TikTok's publish_id) at once, in its own transaction,
    # so that a crash before the post is marked sent can still be looked up.
    checkpoint: Callable[[int, str], None] = _no_checkpoint
    file_mode: int = 0o600  # of files a publisher creates (the dry run's posts.jsonl)


class Publisher(ABC):
    """Publish one rendered post; where the platform allows it, find a recent one or delete one."""

    capabilities: ClassVar[Capabilities] = Capabilities()

    @abstractmethod
    def publish(self, post: Post) -> PublishedRef:
        """Send the post once (never retried inside); raise a PublishError kind on failure."""

    def find(self, post: Post) -> PublishedRef | None:
        """Look for this post among the account's recent posts (after a crash left it in doubt).

        Returns None when it is certainly not there; raises NotImplementedError where the
        platform cannot look.
        """
        raise NotImplementedError(f"{type(self).__name__} cannot look up posts")

    def delete(self, ref: PublishedRef) -> None:
        raise NotImplementedError(f"{type(self).__name__} cannot delete posts")

    def close(self) -> None:  # noqa: B027 - optional hook, most publishers hold nothing
        """Release connections."""
