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
from typing import Any, ClassVar, Literal, Protocol

from pydantic import BaseModel, Field

from broadcaster.core.clock import Clock
from broadcaster.core.config import AccountConfig
from broadcaster.core.secrets import Secrets, TokenStore
from broadcaster.domain.limits import TextLimit
from broadcaster.domain.quota import Window

DEFAULT_TEXT = TextLimit(63206, "chars")


@dataclass(frozen=True, slots=True)
class CardSpec:
    """The result-card image a platform takes: file format and size in pixels."""

    format: str = "PNG"  # PNG or JPEG
    width: int = 1200
    height: int = 675


@dataclass(frozen=True, slots=True)
class VideoSpec:
    """A platform's video posts (the short result videos, broadcaster/delivery/videos.py)."""

    # What one video post counts as against the account's quota windows, in ordinary posts:
    # YouTube's upload costs 1,600 quota units where a chat message costs 20.
    cost: int
    text: TextLimit  # the caption's limit on a video post


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
    video: VideoSpec | None = None  # None: the platform takes no video posts from us


# The posts that may carry a short video: a kind of event, or `final_tally` (the tally posted
# once every seat is declared; `tally` is every periodic tally).
VideoEvent = Literal["called", "corrected", "majority", "certified", "tally", "final_tally"]


def _default_video_events() -> list[VideoEvent]:
    return ["called", "final_tally"]


class VideoOptions(BaseModel):
    """An account's video posts, for platforms that take them (TikTok, YouTube): with
    `video = true`, posts of `video_events` carry a short result video instead of a card or a
    chat message, where the account's budget allows (docs/platforms.md)."""

    video: bool = False
    video_events: list[VideoEvent] = Field(default_factory=_default_video_events, min_length=1)
    video_seconds: float = Field(default=12.0, ge=10, le=20)


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


class PlatformState(Protocol):
    """What a publisher may record, durably: a wait the platform asked for, a quota it
    revealed, its last rate-limit headers, and keys of the adapter's own (a quota day's count, a
    live broadcast's ids). Implemented by the outbox's state (broadcaster/outbox/state.py)."""

    def block(self, account: str, until: datetime) -> None: ...

    def learn_quota(self, account: str, window: Window) -> None: ...

    def note_rate_limits(self, account: str, headers: dict[str, Any]) -> None: ...

    def get_state(self, key: str, default: Any = None) -> Any: ...

    def put_state(self, key: str, value: Any) -> None: ...


class MemoryState:
    """PlatformState in memory, for publishers used without a database (tests, previews)."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self.blocked: dict[str, datetime] = {}
        self.learned: dict[str, Window] = {}
        self.rate_limits: dict[str, dict[str, Any]] = {}

    def block(self, account: str, until: datetime) -> None:
        current = self.blocked.get(account)
        if current is None or current < until:
            self.blocked[account] = until

    def learn_quota(self, account: str, window: Window) -> None:
        self.learned[account] = window

    def note_rate_limits(self, account: str, headers: dict[str, Any]) -> None:
        self.rate_limits[account] = dict(headers)

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
    state: PlatformState = field(default_factory=MemoryState)
    # Records an interim platform id (e.g. TikTok's publish_id) at once, in its own transaction,
    # so that a crash before the post is marked sent can still be looked up.
    checkpoint: Callable[[int, str], None] = _no_checkpoint
    file_mode: int = 0o600  # of files a publisher creates (the dry run's posts.jsonl)


Prompt = Callable[..., str]  # asks the operator: prompt(text, hide=False) -> answer


class Publisher(ABC):
    """One platform's adapter. Each platform is one subclass in one module, named in the
    registry (broadcaster/publishers/registry.py); nothing else in the code names a platform.

    The class says what the platform allows (`capabilities`) and which settings its accounts take
    (`settings_model`, a pydantic model of the extra keys of an `[[accounts]]` entry). An
    instance publishes for one account: once per call, never retried inside, every failure
    mapped into one PublishError kind. Where the platform allows it, it finds a recent post (to
    settle one left in doubt), deletes and edits. The class methods check an account
    (`doctor`), obtain its tokens (`authorize`) and aim it at the local emulator."""

    platform: ClassVar[str]
    capabilities: ClassVar[Capabilities] = Capabilities()
    settings_model: ClassVar[type[BaseModel] | None] = None

    def __init__(self, account: AccountConfig, env: PublisherEnv) -> None:
        self.account = account
        self.env = env

    @abstractmethod
    def publish(self, post: Post) -> PublishedRef:
        """Send the post once (never retried inside); raise a PublishError kind on failure."""

    def find(self, post: Post) -> PublishedRef | None:
        """Look for this post among the account's recent posts (after a crash left it in doubt).

        Returns None when it is certainly not there; raises NotImplementedError where the
        platform cannot look.
        """
        raise NotImplementedError(f"{self.platform} cannot look up posts")

    def delete(self, ref: PublishedRef) -> None:
        raise NotImplementedError(f"{self.platform} cannot delete posts")

    def edit(self, ref: PublishedRef, text: str) -> None:
        raise NotImplementedError(f"{self.platform} cannot edit posts")

    def close(self) -> None:  # noqa: B027 - optional hook, most publishers hold nothing
        """Release connections."""

    @classmethod
    def doctor(cls, account: AccountConfig, env: PublisherEnv) -> str:
        """One line saying the account can post (credentials, permissions, target); a
        PublishError or SecretError saying why not."""
        raise NotImplementedError(f"no check for {cls.platform} accounts")

    @classmethod
    def authorize(cls, account: AccountConfig, env: PublisherEnv, prompt: Prompt) -> dict[str, Any]:
        """Obtain the account's tokens, asking the operator through `prompt`; what to keep in
        the token store (empty: nothing to keep)."""
        raise NotImplementedError(f"{cls.platform} accounts need no authorisation")

    @classmethod
    def emulator_account(cls, base: str, workdir: Path) -> EmulatorAccount | None:
        """Settings, secrets and tokens that aim an account at the local emulator at `base`;
        None where the platform has no emulator (the account stays a dry run)."""
        return None
