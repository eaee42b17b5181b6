"""Every text value of every snapshot made safe to publish, and every count bounded, in one place.

Whatever the format, `parse()` hands each Snapshot to `clean_snapshot` before anyone sees it:

- a control character (C0, DEL, C1; other than the line-breaking whitespace below) or a lone
  surrogate anywhere (ids included) rejects the snapshot, naming the field and the code point:
  a NUL byte breaks PostgreSQL, an ESC sequence an operator's terminal;
- a count above `max_count` rejects it too (a vote count of 10**400 overflows rendering);
- names are normalised: NFC; invisible format characters dropped (bidi embeddings, overrides and
  isolates, word joiners, soft hyphens, byte-order marks...) except the zero-width space and the
  (non-)joiners that Khmer, Indic and Arabic text need; a run of whitespace holding a tab or a
  line break collapses to one space; the value is stripped.

What normalisation had to remove that only an attacker or a broken export puts there (a line
break, a bidi override) is recorded on the snapshot (`Snapshot.text_flags`) for the `feed_markup`
gate, which holds the affected contest's posts for an operator.

Ids are keys (events, outbox rows), so they are only checked, never rewritten.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import replace
from typing import Any

from broadcaster.domain.model import (
    Coalition,
    Contest,
    ListCandidate,
    Party,
    Selection,
    Snapshot,
    TextFlag,
)
from broadcaster.ingest.parsers.base import FeedError

DEFAULT_MAX_COUNT = 10**10

# Kept although invisible: Khmer and other scripts need them to shape and break words.
KEEP_FORMAT = frozenset("\u200b\u200c\u200d")
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
LINE_BREAKS = "\t\n\r\v\f\x85\u2028\u2029"
_BREAK_RUN = re.compile(rf"\s*[{LINE_BREAKS}][\s{LINE_BREAKS}]*")
_ALLOWED_CONTROLS = frozenset(LINE_BREAKS)


def _is_control(ch: str) -> bool:
    o = ord(ch)
    return (o < 0x20 or 0x7F <= o <= 0x9F) and ch not in _ALLOWED_CONTROLS


def check_text(value: str, path: str) -> None:
    """FeedError if `value` holds a control character or a lone surrogate."""
    if value.isprintable():
        return
    for ch in value:
        if _is_control(ch) or 0xD800 <= ord(ch) <= 0xDFFF:
            raise FeedError(f"{path}: control character U+{ord(ch):04X}")


def clean_text(value: str, path: str) -> tuple[str, list[str]]:
    """The value to publish, and what was removed that deserves a person's look
    ("line break", "bidi control"). FeedError for a control character."""
    if value.isprintable() and (value.isascii() or unicodedata.is_normalized("NFC", value)):
        return value.strip(), []  # the common case: nothing to do
    check_text(value, path)
    removed: list[str] = []
    if any(ch in LINE_BREAKS for ch in value):
        removed.append("line break")
        value = _BREAK_RUN.sub(" ", value)
    if any(ch in BIDI_CONTROLS for ch in value):
        removed.append("bidi control")
    value = "".join(ch for ch in value if ch in KEEP_FORMAT or unicodedata.category(ch) != "Cf")
    return unicodedata.normalize("NFC", value).strip(), removed


def _plain(value: str) -> bool:
    """A name `clean_text` would return unchanged, with nothing to report."""
    return (
        value.isprintable()
        and (value.isascii() or unicodedata.is_normalized("NFC", value))
        and value.strip() == value
        and value != ""
    )


def _plain_id(value: Any) -> bool:
    return not isinstance(value, str) or value.isprintable()


class _Cleaner:
    def __init__(self, max_count: int) -> None:
        self.max_count = max_count
        self.flags: list[TextFlag] = []

    def text(self, value: str, path: str, contest_id: str | None, party_id: str | None) -> str:
        cleaned, removed = clean_text(value, path)
        for what in removed:
            self.flags.append(TextFlag(path, what, contest_id, party_id))
        if not cleaned:
            raise FeedError(f"{path}: empty once invisible characters are removed")
        return cleaned

    def opt_text(
        self, value: str | None, path: str, contest_id: str | None, party_id: str | None
    ) -> str | None:
        if value is None:
            return None
        cleaned, removed = clean_text(value, path)
        for what in removed:
            self.flags.append(TextFlag(path, what, contest_id, party_id))
        return cleaned or None

    def count(self, value: int | None, path: str) -> None:
        if value is not None and value > self.max_count:
            shown = str(value) if value < 10**30 else f"a number of {len(str(value))} digits"
            raise FeedError(
                f"{path}: {shown} is above the largest count accepted "
                f"([feed] max_count = {self.max_count})"
            )

    def ident(self, value: Any, path: str) -> None:
        if isinstance(value, str):
            check_text(value, path)

    # -- the model, value by value --

    def selection(self, s: Selection, path: str, cid: str) -> Selection:
        self.ident(s.id, f"{path}.id")
        self.ident(s.party_id, f"{path}.party_id")
        self.ident(s.coalition_id, f"{path}.coalition_id")
        self.count(s.votes, f"{path}.votes")
        self.count(s.seats, f"{path}.seats")
        name = self.text(s.name, f"{path}.name", cid, None)
        members = s.members
        if members:
            new_members = tuple(
                self.member(m, f"{path}.candidates[{k}]", cid) for k, m in enumerate(members)
            )
            if any(a is not b for a, b in zip(new_members, members, strict=True)):
                members = new_members
        if name == s.name and members is s.members:
            return s
        return replace(s, name=name, members=members)

    def member(self, m: ListCandidate, path: str, cid: str) -> ListCandidate:
        self.ident(m.id, f"{path}.id")
        self.count(m.votes, f"{path}.votes")
        name = self.text(m.name, f"{path}.name", cid, None)
        return m if name == m.name else replace(m, name=name)

    def _plain_contest(self, c: Contest) -> bool:
        """Whether the contest needs no change and has nothing wrong: the common case, told
        without building a field path for each value (those are for the errors)."""
        most = self.max_count
        counts = (c.seats, c.electorate, c.ballots_cast, c.progress.reported, c.progress.total)
        if any(n is not None and n > most for n in counts):
            return False
        if not (_plain(c.name) and _plain_id(c.id)):
            return False
        for s in c.selections:
            if not (_plain(s.name) and _plain_id(s.id) and _plain_id(s.party_id)):
                return False
            if not _plain_id(s.coalition_id):
                return False
            if (s.votes is not None and s.votes > most) or (s.seats is not None and s.seats > most):
                return False
            for m in s.members or ():
                if not (_plain(m.name) and _plain_id(m.id)):
                    return False
                if m.votes is not None and m.votes > most:
                    return False
        return True

    def contest(self, c: Contest, path: str) -> Contest:
        if self._plain_contest(c):
            return c
        self.ident(c.id, f"{path}.id")
        cid = c.id
        self.count(c.seats, f"{path}.seats")
        self.count(c.electorate, f"{path}.electorate")
        self.count(c.ballots_cast, f"{path}.ballots_cast")
        self.count(c.progress.reported, f"{path}.progress.reported")
        self.count(c.progress.total, f"{path}.progress.total")
        name = self.text(c.name, f"{path}.name", cid, None)
        selections = tuple(
            self.selection(s, f"{path}.selections[{i}]", cid) for i, s in enumerate(c.selections)
        )
        changed = any(a is not b for a, b in zip(selections, c.selections, strict=True))
        if name == c.name and not changed:
            return c
        return replace(c, name=name, selections=selections if changed else c.selections)

    def party(self, p: Party) -> Party:
        path = f"parties[{p.id!r}]"
        self.ident(p.id, f"{path}.id")
        self.ident(p.coalition_id, f"{path}.coalition_id")
        self.ident(p.color, f"{path}.color")
        name = self.text(p.name, f"{path}.name", None, p.id)
        abbr = self.opt_text(p.abbreviation, f"{path}.abbreviation", None, p.id)
        if name == p.name and abbr == p.abbreviation:
            return p
        return replace(p, name=name, abbreviation=abbr)

    def coalition(self, c: Coalition) -> Coalition:
        path = f"coalitions[{c.id!r}]"
        self.ident(c.id, f"{path}.id")
        self.ident(c.color, f"{path}.color")
        name = self.text(c.name, f"{path}.name", None, c.id)
        abbr = self.opt_text(c.abbreviation, f"{path}.abbreviation", None, c.id)
        if name == c.name and abbr == c.abbreviation:
            return c
        return replace(c, name=name, abbreviation=abbr)


def clean_snapshot(snapshot: Snapshot, *, max_count: int = DEFAULT_MAX_COUNT) -> Snapshot:
    """The snapshot with every name normalised and its counts checked; FeedError naming the
    field (and the code point) for a control character or an absurd count."""
    cleaner = _Cleaner(max_count)
    election = cleaner.text(snapshot.election, "election", None, None)
    issuer = cleaner.opt_text(snapshot.issuer, "issuer", None, None)
    contests = tuple(cleaner.contest(c, f"contests[{i}]") for i, c in enumerate(snapshot.contests))
    parties = {pid: cleaner.party(p) for pid, p in snapshot.parties.items()}
    coalitions = {cid: cleaner.coalition(c) for cid, c in snapshot.coalitions.items()}
    unchanged = (
        election == snapshot.election
        and issuer == snapshot.issuer
        and all(a is b for a, b in zip(contests, snapshot.contests, strict=True))
        and all(parties[k] is v for k, v in snapshot.parties.items())
        and all(coalitions[k] is v for k, v in snapshot.coalitions.items())
        and not cleaner.flags
    )
    if unchanged:
        return snapshot
    return replace(
        snapshot,
        election=election,
        issuer=issuer,
        contests=contests,
        parties=parties,
        coalitions=coalitions,
        text_flags=tuple(cleaner.flags),
    )
