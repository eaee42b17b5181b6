"""Words that depend on a number, chosen by CLDR's plural rules through Babel; names cut by words.

"1 votes", "all 1 counting units", "1 posts cancelled" come from choosing the form by hand.
Here the form is what CLDR says for the number in the language: English has `one` and `other`,
Malay and Khmer only `other` (a noun does not change with the number there). Templates use it
as a filter (`{{ n|plural(one="# vote", other="# votes") }}`), the command line through
`count_words` (English).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Mapping
from functools import cache
from typing import Any

from babel import Locale

PLURAL_FORMS = frozenset({"zero", "one", "two", "few", "many", "other"})
ELLIPSIS = "…"


@cache
def _locale(language: str) -> Locale:
    return Locale.parse(language)


def plural_form(value: Any, language: str) -> str:
    """The CLDR plural category of a number in a language: `one`, `other`..."""
    try:
        number = abs(value) if isinstance(value, int | float) else abs(int(value))
    except (TypeError, ValueError):
        return "other"
    return str(_locale(language).plural_form(number))


def plural_text(
    value: Any,
    forms: Mapping[str, str],
    language: str,
    number: Callable[[Any], str] = str,
) -> str:
    """The form for `value` (falling back to `other`), with `#` replaced by the number
    written by `number`."""
    text = forms.get(plural_form(value, language)) or forms["other"]
    return text.replace("#", number(value)) if "#" in text else text


def count_words(n: int, one: str, other: str) -> str:
    """`1 post`, `2 posts`: English for the command line, by the same rules."""
    return plural_text(n, {"one": f"# {one}", "other": f"# {other}"}, "en", lambda v: f"{v:,}")


def shorten_words(text: str, most: int, weigh: Callable[[str], int] | None = None) -> str:
    """`text` cut to at most `most` by whole words, with an ellipsis; a single word longer than
    that is cut inside it. Khmer phrases end at spaces and at "។". Characters count one each,
    or what `weigh` says a character weighs (X counts most scripts above U+10FF double)."""
    if most <= 0:
        return ""
    weights = [weigh(ch) for ch in text] if weigh is not None else None
    if (sum(weights) if weights is not None else len(text)) <= most:
        return text
    if weights is None:
        room = most - len(ELLIPSIS)
    else:
        budget, room = most - weigh(ELLIPSIS), 0  # type: ignore[misc]
        while room < len(text) and budget - weights[room] >= 0:
            budget -= weights[room]
            room += 1
    if room <= 0:
        return ELLIPSIS if (weigh(ELLIPSIS) if weigh else 1) <= most else ""
    cut = -1
    for i, ch in enumerate(text[: room + 1]):
        if ch.isspace() or ch == "\u200b":
            cut = i
        elif ch in "។,;:/-" and i < room:
            cut = i + 1
    if cut <= 0:
        # One long word: cut inside it, but never through a letter and its marks (a Khmer
        # consonant, its subscript sign U+17D2 and the consonant under it, its vowel signs).
        cut = room
        while cut > 1 and (unicodedata.category(text[cut])[0] == "M" or text[cut - 1] in _JOINING):
            cut -= 1
    head = text[:cut]
    return head.rstrip(" ,;:/-\u200b") + ELLIPSIS


def x_weight(ch: str) -> int:
    """How much X counts a character: 1 for Latin and most punctuation, 2 for the rest."""
    code = ord(ch)
    if code <= 4351 or 8192 <= code <= 8205 or 8208 <= code <= 8223 or 8242 <= code <= 8247:
        return 1
    return 2


_JOINING = frozenset("\u17d2\u200c\u200d")
