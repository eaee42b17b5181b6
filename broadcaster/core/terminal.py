"""Text from the feed, the database or a platform, made safe to print on an operator's terminal.

Rich reads `[...]` as markup: a feed value `[/]` crashed `status`, `[conceal]` hid the rest of a
line. Raw escape sequences could move the cursor or retitle the window. Every such value goes
through `safe` before it reaches a rich console: registered secrets are masked (a platform's
error may echo a token), controls are shown as visible escapes and markup is escaped, so what an
operator reads is exactly what the feed said.
"""

from __future__ import annotations

import unicodedata
from typing import Any

from rich.markup import escape

from broadcaster.core.logs import redact

# Bidirectional overrides and isolates reorder what follows them on screen.
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
# Joiners and the zero-width space carry meaning in Khmer and other scripts.
_KEEP_FORMAT = frozenset("\u200b\u200c\u200d")


def visible(value: Any, *, newlines: bool = False) -> str:
    """`value` as text with registered secrets masked and control and bidi-override characters
    written as `\\uXXXX`."""
    text = redact("" if value is None else str(value))
    out = []
    for ch in text:
        if ch == "\n" and newlines:
            out.append(ch)
            continue
        category = unicodedata.category(ch)
        if ch in _BIDI or (category == "Cc") or (category == "Cf" and ch not in _KEEP_FORMAT):
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
        else:
            out.append(ch)
    return "".join(out)


def safe(value: Any, *, newlines: bool = False) -> str:
    """`value` ready for a rich console: controls made visible, markup escaped."""
    return escape(visible(value, newlines=newlines))
