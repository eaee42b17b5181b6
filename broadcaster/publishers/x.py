"""X (Twitter) through tweepy, with media through the v2 upload endpoint."""

from __future__ import annotations

from broadcaster.limits import TextLimit
from broadcaster.publishers.base import Capabilities, CardSpec

CAPABILITIES = Capabilities(
    can_delete=True,
    can_find=True,
    threads=True,
    media=("image/png", "image/jpeg"),
    text=TextLimit(280, "x-weighted"),
    card=CardSpec("PNG", 1200, 675),
)
