"""Facebook Pages through the Graph API (facebook-sdk)."""

from __future__ import annotations

from broadcaster.limits import TextLimit
from broadcaster.publishers.base import Capabilities, CardSpec

CAPABILITIES = Capabilities(
    can_delete=True,
    can_edit=True,
    can_find=True,
    media=("image/png", "image/jpeg"),
    text=TextLimit(63206, "chars"),
    card=CardSpec("PNG", 1080, 1080),
)
