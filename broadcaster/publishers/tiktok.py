"""TikTok photo posts through the Content Posting API (requests)."""

from __future__ import annotations

from broadcaster.limits import TextLimit
from broadcaster.publishers.base import Capabilities, CardSpec

CAPABILITIES = Capabilities(
    media=("image/jpeg", "image/webp"),
    requires_media=True,
    text=TextLimit(4000, "utf16"),  # the photo post's description
    title=TextLimit(90, "utf16"),
    card=CardSpec("JPEG", 1080, 1080),  # TikTok refuses PNG and anything over 1080 px
)
