"""Text limits, counted the way each platform counts, and what to do with a post that is too long.

X counts weighted characters after NFC (most scripts above U+10FF, Khmer included, count double;
a URL counts 23), TikTok counts UTF-16 code units, YouTube and Facebook count characters. A post
over the limit follows its template's policy: `fail` (never posted; the default), `shorten` at a
word boundary with an ellipsis, or `thread` (numbered parts posted as replies, where the
platform allows replies).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

ELLIPSIS = "…"


class Overflow(StrEnum):
    FAIL = "fail"
    SHORTEN = "shorten"
    THREAD = "thread"


def count_chars(text: str) -> int:
    return len(unicodedata.normalize("NFC", text))


def count_utf16(text: str) -> int:
    return len(unicodedata.normalize("NFC", text).encode("utf-16-le")) // 2


# Could a URL be in here? twitter-text only finds URLs with a domain: a letter or digit, a dot,
# then a letter. Could an emoji? Only from © ®, ‼ ⁉, or code points from U+2070 up: the class
# [\u00a9\u00ae\u203c\u2049\u2070-\U0010ffff], written as its complement because `re` takes
# about 10 ms (at every command's start) to compile a class that reaches U+10FFFF.
_MAYBE_URL = re.compile(r"[^\W_]\.[^\W\d_]")
_MAYBE_EMOJI = re.compile("[^\x00-\u00a8\u00aa-\u00ad\u00af-\u203b\u203d-\u2048\u204a-\u206f]")


# X's weights (twitter-text v3): code points up to U+10FF and three ranges of punctuation
# count 1, everything else 2. A text's weight is its length plus one per heavy character.
_X_HEAVY = re.compile("[^\u0000-\u10ff\u2000-\u200d\u2010-\u201f\u2032-\u2037]")


def count_x(text: str) -> int:
    """X's weighted length (twitter-text v3 rules). Text with neither a possible URL nor a
    possible emoji, which is most posts, is counted directly; anything else goes through
    twitter-text, which is exact and about a hundred times slower."""
    normal = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    if _MAYBE_URL.search(normal) or _MAYBE_EMOJI.search(normal):
        # Imported here: twitter-text takes half a second to load, and most commands (and
        # most posts) never need it.
        from twitter_text import parse_tweet

        return int(parse_tweet(text).weightedLength)
    if normal.isascii():
        return len(normal)
    return len(normal) + len(_X_HEAVY.findall(normal))


COUNTERS: dict[str, Callable[[str], int]] = {
    "chars": count_chars,
    "utf16": count_utf16,
    "x-weighted": count_x,
}


@dataclass(frozen=True, slots=True)
class TextLimit:
    limit: int
    counter: str = "chars"

    def count(self, text: str) -> int:
        return COUNTERS[self.counter](text)

    def fits(self, text: str) -> bool:
        return self.count(text) <= self.limit


class OverLimit(ValueError):
    """A post does not fit and its policy does not allow changing it."""


def shorten(text: str, limit: TextLimit) -> str:
    """The longest prefix ending at a word boundary that fits with an ellipsis appended."""
    if limit.fits(text):
        return text
    words = _boundaries(text)
    lo, hi = 0, len(words) - 1
    best = ""
    while lo <= hi:  # binary search over boundary positions: counting is the costly part
        mid = (lo + hi) // 2
        candidate = text[: words[mid]].rstrip() + ELLIPSIS
        if limit.fits(candidate):
            best, lo = candidate, mid + 1
        else:
            hi = mid - 1
    if not best:
        # Not even one word fits (a very long word, or a tiny limit): cut by characters.
        cut = len(text)
        while cut > 0 and not limit.fits(text[:cut] + ELLIPSIS):
            cut -= max(1, cut // 8)
        best = text[:cut] + ELLIPSIS if cut > 0 else ""
    if not best.strip(ELLIPSIS):
        raise OverLimit(f"nothing of the post fits in {limit.limit} ({limit.counter})")
    return best


_SPACE = re.compile(r"\s+")


def _boundaries(text: str) -> list[int]:
    # Ends of words: every whitespace run start. Khmer writes without spaces between words, so
    # its phrases end at spaces or at the Khmer sign "។"; both are natural places to cut.
    ends = [m.start() for m in _SPACE.finditer(text)]
    ends += [i + 1 for i, ch in enumerate(text) if ch in "។៕,;:"]
    return sorted(set(e for e in ends if e > 0))


def split_thread(text: str, limit: TextLimit, max_parts: int = 25) -> list[str]:
    """Numbered parts (" 1/3" appended), each within the limit, cut at lines, then words."""
    if limit.fits(text):
        return [text]
    for total in range(2, max_parts + 1):
        # The numbering is ASCII, so it counts one per character on every platform.
        room = TextLimit(limit.limit - len(f" {total}/{total}"), limit.counter)
        parts = _pack(text, room)
        if parts is not None and len(parts) <= total:
            n = len(parts)
            return [f"{p} {i}/{n}" for i, p in enumerate(parts, 1)]
    raise OverLimit(f"would need more than {max_parts} parts")


def _pack(text: str, room: TextLimit) -> list[str] | None:
    """Greedy packing of lines, splitting a line too long by itself at word boundaries."""
    pieces: list[str] = []
    for line in text.split("\n"):
        if room.fits(line):
            pieces.append(line)
            continue
        words = line.split(" ")
        current = ""
        for word in words:
            candidate = f"{current} {word}" if current else word
            if room.fits(candidate):
                current = candidate
            else:
                if not current:
                    return None  # one word longer than a whole part
                pieces.append(current)
                current = word
        pieces.append(current)
    parts: list[str] = []
    current = ""
    for piece in pieces:
        candidate = f"{current}\n{piece}" if current else piece
        if room.fits(candidate):
            current = candidate
        else:
            parts.append(current.strip())
            current = piece
    if current.strip():
        parts.append(current.strip())
    return [p for p in parts if p]


def apply_policy(text: str, limit: TextLimit, policy: Overflow, *, threads: bool) -> list[str]:
    """The post as one or more parts that fit, or OverLimit naming the count and the limit."""
    if limit.fits(text):
        return [text]
    over = f"{limit.count(text)} of {limit.limit} ({_UNIT[limit.counter]})"
    if policy is Overflow.SHORTEN:
        return [shorten(text, limit)]
    if policy is Overflow.THREAD:
        if not threads:
            raise OverLimit(f"{over}; this platform has no replies, so it cannot be a thread")
        return split_thread(text, limit)
    raise OverLimit(f"over the platform limit: {over}")


_UNIT = {
    "chars": "characters",
    "utf16": "UTF-16 units",
    "x-weighted": "weighted characters",
}
