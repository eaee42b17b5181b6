"""The plain data the emulator keeps: a post a platform accepted (`Received`), the limits it
enforces (`Limits`), and the live channel's side of YouTube and Facebook (`LiveState`). Platform
modules may import it freely (it imports nothing of the emulator's).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Received:
    """A post a platform accepted."""

    platform: str
    target: str  # page, channel, creator or user
    id: str
    text: str
    media: list[str] = field(default_factory=list)
    title: str | None = None
    reply_to: str | None = None
    at: str = ""
    deleted: bool = False


@dataclass
class Limits:
    """The platforms' limits the emulator enforces (defaults from the platforms' documentation)."""

    x_per_15min: int = 200
    x_daily: int = 100  # Basic tier per user; Free is 17
    tiktok_init_per_min: int = 6
    tiktok_creator_per_min: int = 20
    tiktok_status_per_min: int = 30
    tiktok_daily: int = 15
    youtube_daily_units: int = 10_000
    facebook_per_hour: int = 200
    fault_wait: float = 2.0  # seconds a 429 or 503 fault asks to wait, unless the spec says
    hang_seconds: float = 30.0  # a `timeout` fault holds the connection at most this long
    # Seconds every platform answer waits after the platform has acted: a slow platform, and a
    # wide window for a crash between the platform accepting a post and us hearing of it.
    response_delay: float = 0.0
    privacy_options: tuple[str, ...] = ("PUBLIC_TO_EVERYONE", "FOLLOWER_OF_CREATOR", "SELF_ONLY")
    # Limits of platforms that have no field above, by name, for tests to tighten: a platform
    # module reads `limits.extra.get("telegram_per_chat_per_min", 20)`.
    extra: dict[str, float] = field(default_factory=dict)


@dataclass
class LiveState:
    """The live channel's side of YouTube and Facebook. The emulator hands out ingest addresses
    under `ingest` (an RTMP server the caller runs, such as the tests' listener)."""

    ingest: str = "rtmp://127.0.0.1:1935/live2"
    facebook_ingest: str | None = None  # default: `ingest`
    streams: dict[str, dict[str, Any]] = field(default_factory=dict)
    broadcasts: dict[str, dict[str, Any]] = field(default_factory=dict)
    videos: dict[str, dict[str, Any]] = field(default_factory=dict)  # Facebook live videos
    calls: list[str] = field(default_factory=list)  # "METHOD path" of every live call
    lock: threading.Lock = field(default_factory=threading.Lock)

    def end_all(self, platform: str) -> None:
        """The platform ends every broadcast (as when it stops a stream for a policy reason)."""
        with self.lock:
            if platform == "youtube":
                for b in self.broadcasts.values():
                    b["status"]["lifeCycleStatus"] = "complete"
            else:
                for v in self.videos.values():
                    v["status"] = "LIVE_STOPPED"
