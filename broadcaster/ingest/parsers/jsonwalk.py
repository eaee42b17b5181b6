"""Reading a JSON document one member at a time, so a large feed never exists as one tree.

`json.loads` of a 42 MB feed builds about 200 MB of small objects before a parser reads the
first of them; a walker lets the parser decode one contest, convert it and drop it before the
next. Every value below the levels walked is decoded by the standard library's own scanner, so
what is read is exactly what `json.loads` would give.

The walker is strict in one direction only: anything it cannot vouch for (a syntax error, a
duplicate key, trailing data) raises `Unsure`, and the caller then reads the document the plain
way, whose answer (or error message) is the one that counts.

One known difference at the edge: a value is decoded from where it starts, so the interpreter's
recursion limit is met a few levels deeper than `json.loads` of the whole document meets it.
A document nested within those few levels of the limit (about 990 levels deep, an amount that
already depends on the caller's stack for `json.loads`) may be read here where the plain way
refuses it; what is read is the same. Deeper documents are refused both ways.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import Any

# The standard library's own scanner (its C version where built), the one `json.loads` uses;
# typeshed does not declare these names.
_SCAN: Callable[[str, int], tuple[Any, int]] = getattr(json.JSONDecoder(), "scan_once")  # noqa: B009
_STRING: Callable[[str, int], tuple[str, int]] = getattr(json.decoder, "scanstring")  # noqa: B009
_WHITESPACE = re.compile(r"[ \t\n\r]*")  # json.decoder.WHITESPACE


_SPACE = frozenset(" \t\n\r")  # what json skips between tokens (not the empty string)


def _past_space(text: str, pos: int) -> int:
    found = _WHITESPACE.match(text, pos)
    return found.end() if found else pos


class Unsure(Exception):
    """The walker cannot promise to read the document as `json.loads` would."""


class Walker:
    """A position in `text`, moved forward by reading keys, values and brackets."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = _past_space(text, 0)

    def _skip(self) -> None:
        self.pos = _past_space(self.text, self.pos)

    def _take(self, char: str) -> bool:
        if self.text.startswith(char, self.pos):
            self.pos += 1
            return True
        return False

    def at(self, char: str) -> bool:
        """The next value starts with `char` (`{` or `[`)."""
        return self.text.startswith(char, self.pos)

    def value(self) -> Any:
        """Decode the value here as `json.loads` would, and move past it."""
        try:
            found, self.pos = _SCAN(self.text, self.pos)
        except (StopIteration, ValueError, RecursionError):
            raise Unsure from None
        return found

    def skip_to(self, start: int, end: int) -> None:
        """Move past a value already decoded elsewhere, which must start here."""
        if self.pos != start:
            raise Unsure
        self.pos = end

    def members(self) -> Iterator[str]:
        """The keys of the object here, each left for the caller to read its value (with
        `value`, `members`, `elements` or `skip_to`) before the next is given. A repeated key
        is Unsure: `json.loads` keeps the last, and the caller has read the first."""
        if not self._take("{"):
            raise Unsure
        self._skip()
        if self._take("}"):
            return
        seen: set[str] = set()
        while True:
            if not self._take('"'):
                raise Unsure
            try:
                key, self.pos = _STRING(self.text, self.pos)
            except ValueError:
                raise Unsure from None
            if key in seen:
                raise Unsure
            seen.add(key)
            self._skip()
            if not self._take(":"):
                raise Unsure
            self._skip()
            before = self.pos
            yield key
            if self.pos == before:
                raise Unsure  # the caller did not read the value
            self._skip()
            if self._take("}"):
                return
            if not self._take(","):
                raise Unsure
            self._skip()

    def elements(self) -> Iterator[int]:
        """The indexes of the array here, each left for the caller to read before the next."""
        if not self._take("["):
            raise Unsure
        self._skip()
        if self._take("]"):
            return
        index = 0
        text = self.text
        while True:
            before = self.pos
            yield index
            # The loop a large report's contests go through: inlined, with the whitespace
            # pattern run only where there is whitespace.
            pos = self.pos
            if pos == before:
                raise Unsure
            if text[pos : pos + 1] in _SPACE:
                pos = _past_space(text, pos)
            mark = text[pos : pos + 1]
            if mark == "]":
                self.pos = pos + 1
                return
            if mark != ",":
                raise Unsure
            pos += 1
            if text[pos : pos + 1] in _SPACE:
                pos = _past_space(text, pos)
            self.pos = pos
            index += 1

    def end(self) -> None:
        """Only whitespace may follow the document."""
        self._skip()
        if self.pos != len(self.text):
            raise Unsure


def located(text: str, key: str) -> tuple[Any, int, int] | None:
    """The value of the one member named `key` anywhere in `text`, with where it starts and
    ends; None when no member has that name. Unsure when several do. The caller checks, as its
    walk passes the member it wanted, that this is the one (`Walker.skip_to`)."""
    # Only where the name is followed by a colon (a member, at some depth); a feed full of the
    # name as a plain string value costs the regular expression's scan, not a Python loop.
    member = re.compile(re.escape(json.dumps(key)) + r"[ \t\n\r]*:[ \t\n\r]*")
    found: tuple[Any, int, int] | None = None
    for match in member.finditer(text):
        if found is not None:
            raise Unsure
        start = match.end()
        try:
            value, end = _SCAN(text, start)
        except (StopIteration, ValueError, RecursionError):
            raise Unsure from None
        found = (value, start, end)
    return found
