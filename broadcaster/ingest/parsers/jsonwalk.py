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

from broadcaster.ingest.payload import Payload

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


WINDOW = 1 << 20  # bytes decoded at a time
# A number read this close to the window's end is read again with more text after it: the
# scanner stops a number cut after its ".", "e" or sign short, as another (shorter) number.
_NUMBER_TAIL = 32


class Walker:
    """A position in a UTF-8 document, moved forward by reading keys, values and brackets.

    Only a window of the bytes is decoded at a time, so a 42 MB report is never held twice
    (bytes and text): the window slides on as it is read, and doubles where one value does not
    fit in it. A byte sequence that is not UTF-8 is Unsure (the plain reading names it)."""

    def __init__(self, body: Payload, window: int = WINDOW, at: int | None = None) -> None:
        self.body = body
        self.length = len(body)
        self.window = self.size = max(16, window)
        self.reads = 0  # values, brackets and members read: the caller's progress
        if at is None:
            # utf-8-sig, as the plain reading decodes: one byte order mark is skipped.
            self._load(3 if body[:3] == b"\xef\xbb\xbf" else 0)
            self._skip()
        else:
            self._load(at)

    # -- the window --

    def _load(self, base: int) -> None:
        length = self.length
        end = min(length, base + self.size)
        # One read, with the byte after the window: where that continues a character, the
        # window ends before the character instead of cutting it in two. A character is at
        # most 4 bytes, so at most 3 are given back (more continuation bytes than that are not
        # UTF-8, and the next window says so).
        raw = self.body[base : end + 1]
        for _ in range(3):
            if end < length and raw[end - base] & 0xC0 == 0x80:
                end -= 1
        try:
            self.text = raw[: end - base].decode("utf-8")
        except UnicodeDecodeError:
            raise Unsure from None
        self.base, self.end_byte, self.pos = base, end, 0
        self.whole = end == length
        self.ascii = self.text.isascii()

    def offset(self) -> int:
        """Where the walker is, in bytes from the document's start."""
        if self.ascii:
            return self.base + self.pos
        return self.base + len(self.text[: self.pos].encode("utf-8"))

    def _more(self) -> bool:
        """Decode on from the walker's position (a window twice as large when most of this one
        is still unread, so something that did not fit now does); False at the document's end."""
        if self.whole:
            return False
        start, before = self.offset(), self.end_byte
        if before - start >= self.size // 2:
            self.size *= 2
        else:
            # Back towards the first size after a large value, so what follows is decoded a
            # window at a time again.
            self.size = max(self.window, self.size // 2, 2 * (before - start) + 8)
        self._load(start)
        if self.end_byte <= before and not self.whole:
            raise Unsure  # no further on: never loop here
        return True

    def _char(self) -> str:
        """The character at the walker ('' at the document's end)."""
        while self.pos >= len(self.text) and self._more():
            pass
        return self.text[self.pos : self.pos + 1]

    def _skip(self) -> None:
        while True:
            self.pos = _past_space(self.text, self.pos)
            if self.pos < len(self.text) or not self._more():
                return

    def _take(self, char: str) -> bool:
        if self._char() == char:
            self.pos += 1
            return True
        return False

    # -- reading --

    def at(self, char: str) -> bool:
        """The next value starts with `char` (`{` or `[`)."""
        return self._char() == char

    def value(self) -> Any:
        """Decode the value here as `json.loads` would, and move past it."""
        while True:
            try:
                found, end = _SCAN(self.text, self.pos)
            except (StopIteration, ValueError):
                if self._more():
                    continue  # cut by the window's end, or a real error found again
                raise Unsure from None
            except RecursionError:
                raise Unsure from None
            # A number near the window's end may go on past it ("1.|5" was read as 1).
            if (
                end + _NUMBER_TAIL >= len(self.text)
                and isinstance(found, int | float)
                and self._more()
            ):
                continue
            if end == len(self.text) and self._more():
                continue
            self.pos = end
            self.reads += 1
            return found

    def skip_to(self, start: int, end: int) -> None:
        """Move past a value already decoded elsewhere (bytes `start` to `end`), which must
        start here."""
        if self.offset() != start:
            raise Unsure
        self._load(end)
        self.reads += 1

    def _key(self) -> str:
        if not self._take('"'):
            raise Unsure
        while True:
            try:
                key, self.pos = _STRING(self.text, self.pos)
                return str(key)
            except ValueError:
                if not self._more():
                    raise Unsure from None

    def _opened(self, opening: str, closing: str) -> bool:
        """Past the opening bracket (Unsure where there is none); True when it closes at once."""
        if not self._take(opening):
            raise Unsure
        self.reads += 1
        self._skip()
        return self._take(closing)

    def members(self) -> Iterator[str]:
        """The keys of the object here, each left for the caller to read its value (with
        `value`, `members`, `elements` or `skip_to`) before the next is given. A repeated key
        is Unsure: `json.loads` keeps the last, and the caller has read the first."""
        if self._opened("{", "}"):
            return
        seen: set[str] = set()
        while True:
            key = self._key()
            if key in seen:
                raise Unsure
            seen.add(key)
            self._skip()
            if not self._take(":"):
                raise Unsure
            self._skip()
            before = self.reads
            yield key
            if self.reads == before:
                raise Unsure  # the caller did not read the value
            self._skip()
            if self._take("}"):
                return
            if not self._take(","):
                raise Unsure
            self._skip()

    def elements(self) -> Iterator[int]:
        """The indexes of the array here, each left for the caller to read before the next."""
        if self._opened("[", "]"):
            return
        index = 0
        while True:
            before = self.reads
            yield index
            if self.reads == before:
                raise Unsure
            # The loop a large report's contests go through: the whitespace pattern and the
            # window are only looked at where needed.
            pos, text = self.pos, self.text
            mark = text[pos : pos + 1]
            if mark in _SPACE or not mark:
                self._skip()
                pos, text = self.pos, self.text
                mark = text[pos : pos + 1]
            if mark == "]":
                self.pos = pos + 1
                return
            if mark != ",":
                raise Unsure
            self.pos = pos + 1
            if text[pos + 1 : pos + 2] in _SPACE or pos + 1 >= len(text):
                self._skip()
            index += 1

    def end(self) -> None:
        """Only whitespace may follow the document."""
        self._skip()
        if self._char():
            raise Unsure


def located(
    body: Payload, keys: tuple[str, ...], window: int = WINDOW
) -> dict[str, tuple[Any, int, int] | None]:
    """For each of `keys`, the value of the one member of that name anywhere in the document,
    with the bytes where it starts and ends; None when no member has that name. Unsure when
    several do. The caller checks, as its walk passes the member it wanted, that this is the
    one (`Walker.skip_to`). Searched in the bytes, a window at a time: in UTF-8 an ASCII byte
    is only ever that character."""
    # Only where a name is followed by a colon (a member, at some depth); a feed full of the
    # name as a plain string value costs the regular expression's scan, not a Python loop.
    names = b"|".join(re.escape(json.dumps(key).encode()) for key in keys)
    member = re.compile(rb"(" + names + rb")[ \t\n\r]*(:|\Z)")
    step = max(16, window)
    found: dict[str, tuple[Any, int, int] | None] = dict.fromkeys(keys)
    length = len(body)
    for start in range(0, length, step):
        # A match starting in this window is seen whole when it ends within the next one.
        seen = body[start : start + 2 * step]
        for match in member.finditer(seen):
            if match.start() >= step:
                break  # the next window's
            if not match.group(2):
                if start + len(seen) < length:
                    raise Unsure  # whitespace past the next window: not worth a second look
                continue  # the document's end: not a member
            key = json.loads(match.group(1))
            if found[key] is not None:
                raise Unsure
            walker = Walker(body, window, at=start + match.end())
            walker._skip()
            begin = walker.offset()
            found[key] = (walker.value(), begin, walker.offset())
    return found
