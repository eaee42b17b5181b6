"""Publishers: one module per platform behind one interface (base.py), listed in registry.py.

This package sits low in the layout: it knows platforms and their limits, and nothing of the
pipeline that uses them.
"""

from __future__ import annotations

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
from broadcaster.publishers.registry import (
    capabilities_for,
    create_publisher,
    platforms,
    publisher_class,
    real_platforms,
    text_limits,
    validate_account_settings,
    video_options,
)

__all__ = [
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
    "platforms",
    "publisher_class",
    "real_platforms",
    "text_limits",
    "validate_account_settings",
    "video_options",
]
