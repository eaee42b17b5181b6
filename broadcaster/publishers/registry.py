"""The platform registry: one entry per platform, the only place that lists them.

Adding a platform is adding its module (a `Publisher` subclass, see base.py) and one line here.
Modules are imported on first use, so a command that never touches a platform never pays for
its client library.
"""

from __future__ import annotations

from functools import cache
from importlib import import_module

from pydantic import ValidationError

from broadcaster.core.config import AccountConfig
from broadcaster.domain.limits import TextLimit
from broadcaster.publishers.base import Capabilities, Publisher, PublisherEnv, VideoOptions

# platform name -> "module:class"
REGISTRY: dict[str, str] = {
    "dryrun": "broadcaster.publishers.dryrun:DryRunPublisher",
    "facebook": "broadcaster.publishers.facebook:FacebookPublisher",
    "youtube": "broadcaster.publishers.youtube:YouTubePublisher",
    "tiktok": "broadcaster.publishers.tiktok:TikTokPublisher",
    "x": "broadcaster.publishers.x:XPublisher",
    "telegram": "broadcaster.publishers.telegram:TelegramPublisher",
}

DRY_RUN = "dryrun"


class UnknownPlatform(KeyError):
    """A platform name no registry entry has."""


def platforms() -> tuple[str, ...]:
    """Every registered platform's name (cheap: nothing is imported)."""
    return tuple(REGISTRY)


def real_platforms() -> tuple[str, ...]:
    """The platforms with accounts to post to (all but the dry run)."""
    return tuple(p for p in REGISTRY if p != DRY_RUN)


@cache
def publisher_class(platform: str) -> type[Publisher]:
    """The platform's Publisher subclass; UnknownPlatform if none is registered."""
    try:
        module, name = REGISTRY[platform].split(":")
    except KeyError:
        raise UnknownPlatform(platform) from None
    cls = getattr(import_module(module), name)
    if not (isinstance(cls, type) and issubclass(cls, Publisher)) or cls.platform != platform:
        raise TypeError(f"{REGISTRY[platform]} is not the Publisher of {platform!r}")
    return cls


def capabilities_for(platform: str) -> Capabilities:
    """What the platform allows: the real platform's even for a dry-run account, so that a
    rehearsal checks posts exactly as the night will."""
    return publisher_class(platform).capabilities


def text_limits(platform: str, overrides: dict[str, int]) -> tuple[TextLimit, TextLimit | None]:
    """The platform's text and title limits, with `[limits]` overrides applied."""
    caps = capabilities_for(platform)
    text = caps.text
    if platform in overrides:
        text = TextLimit(overrides[platform], text.counter)
    title = caps.title
    if title is not None and f"{platform}_title" in overrides:
        title = TextLimit(overrides[f"{platform}_title"], title.counter)
    return text, title


def validate_account_settings(account: AccountConfig) -> list[tuple[str, str]]:
    """Problems with an account's platform and its settings, as (key, message) pairs."""
    if account.platform not in REGISTRY:
        known = ", ".join(platforms())
        return [("platform", f"unknown platform {account.platform!r}; expected one of {known}")]
    settings = account.settings
    model = publisher_class(account.platform).settings_model
    if model is None:
        return [(key, "unknown key") for key in settings]
    if account.dry_run and not settings:
        return []  # a rehearsal-only account needs no platform details
    if account.dry_run and issubclass(model, VideoOptions) and set(settings) <= VIDEO_KEYS:
        model = VideoOptions  # a rehearsal-only account that tries out video posts
    try:
        model.model_validate(settings)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            key = ".".join(str(x) for x in err["loc"]) or "(settings)"
            if err["type"] == "extra_forbidden":
                msg = "unknown key"
            elif err["type"] == "missing":
                msg = "required key is missing"
            else:
                msg = err["msg"].removeprefix("Value error, ")
            problems.append((key, msg))
        return problems
    return []


def create_publisher(account: AccountConfig, env: PublisherEnv, *, dry_run: bool) -> Publisher:
    """The publisher for an account: the dry-run one whenever `dry_run` or the account says so."""
    platform = DRY_RUN if dry_run or account.dry_run else account.platform
    return publisher_class(platform)(account, env)


VIDEO_KEYS = frozenset(VideoOptions.model_fields)


def video_options(account: AccountConfig) -> VideoOptions | None:
    """The account's video posts when it asked for them (`video = true`) and its platform takes
    them; None otherwise. The settings were validated with the configuration."""
    if account.platform not in REGISTRY or capabilities_for(account.platform).video is None:
        return None
    chosen = {k: v for k, v in account.settings.items() if k in VIDEO_KEYS}
    options = VideoOptions.model_validate(chosen)
    return options if options.video else None
