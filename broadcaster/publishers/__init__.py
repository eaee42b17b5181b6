"""The platform registry: one module per platform, one entry per platform here.

A platform module provides `create(account, env) -> Publisher` and, when it has settings of its
own, a pydantic model `Settings` for the extra keys of its `[[accounts]]` entries and a
`CAPABILITIES` constant. Nothing else in the code names a platform.
"""

from __future__ import annotations

from functools import cache
from importlib import import_module
from types import ModuleType

from pydantic import BaseModel, ValidationError

from broadcaster.core.config import AccountConfig
from broadcaster.domain.limits import TextLimit
from broadcaster.publishers.base import (
    Capabilities,
    InDoubt,
    Post,
    PublishedRef,
    Publisher,
    PublisherEnv,
    PublishError,
    Reauthorize,
    Rejected,
    RetryLater,
)

__all__ = [
    "PLATFORMS",
    "Capabilities",
    "InDoubt",
    "Post",
    "PublishError",
    "PublishedRef",
    "Publisher",
    "PublisherEnv",
    "Reauthorize",
    "Rejected",
    "RetryLater",
    "capabilities_for",
    "create_publisher",
    "text_limits",
    "validate_account_settings",
]

# platform name -> module. A platform whose module is absent can only be rehearsed (dry run).
PLATFORMS: dict[str, str] = {
    "dryrun": "broadcaster.publishers.dryrun",
    "facebook": "broadcaster.publishers.facebook",
    "youtube": "broadcaster.publishers.youtube",
    "tiktok": "broadcaster.publishers.tiktok",
    "x": "broadcaster.publishers.x",
}


@cache
def platform_module(platform: str) -> ModuleType | None:
    name = PLATFORMS.get(platform)
    if name is None:
        return None
    try:
        return import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name == name:
            return None
        raise


@cache
def capabilities_for(platform: str) -> Capabilities:
    """What the platform allows: the real platform's even for a dry-run account, so that a
    rehearsal checks posts exactly as the night will."""
    module = platform_module(platform)
    caps = getattr(module, "CAPABILITIES", None)
    return caps if isinstance(caps, Capabilities) else Capabilities()


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
    """Problems with an account's platform settings, as (key, message) pairs."""
    module = platform_module(account.platform)
    settings = account.settings
    if module is None:
        if not account.dry_run:
            return [
                ("dry_run", f"no {account.platform} publisher in this version; set dry_run = true")
            ]
        return []
    if not hasattr(module, "create") and not account.dry_run:
        return [("dry_run", f"no {account.platform} publisher in this version; set dry_run = true")]
    model: type[BaseModel] | None = getattr(module, "Settings", None)
    if model is None:
        return [(key, "unknown key") for key in settings]
    if account.dry_run and not settings:
        return []  # a rehearsal-only account needs no platform details
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
    if dry_run or account.dry_run or account.platform == "dryrun":
        module = platform_module("dryrun")
    else:
        module = platform_module(account.platform)
    if module is None:
        raise RuntimeError(f"no publisher for platform {account.platform!r}")
    return module.create(account, env)  # type: ignore[no-any-return]
