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


def shorten_words(text: str, most: int) -> str:
    """`text` cut to at most `most` characters by whole words, with an ellipsis; a single word
    longer than that is cut inside it. Khmer phrases end at spaces and at "។"."""
    if most <= 0:
        return ""
    if len(text) <= most:
        return text
    room = most - len(ELLIPSIS)
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


_JOINING = frozenset("\u17d2\u200c\u200d")
