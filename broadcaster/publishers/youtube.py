"""YouTube live chat (and optional Shorts uploads) through google-api-python-client."""

from __future__ import annotations

from broadcaster.limits import TextLimit
from broadcaster.publishers.base import Capabilities

CAPABILITIES = Capabilities(
    can_delete=True,
    can_find=True,
    text=TextLimit(200, "chars"),
)
