"""Result cards: the image attached to a post where the platform takes media.

A contest card (name, candidates or parties with votes, bars, percentages, the winner or seats,
reporting progress, time and issuer) or a national seat-tally card, in the account's language.
Text is laid out with Pillow's raqm engine so Khmer is shaped (subscript consonants, vowel
signs), and each run of text is drawn with the bundled font that covers it (Noto Sans for Latin,
Noto Sans Khmer for Khmer), so no character is left as a "tofu" box.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
import unicodedata
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

from fontTools.ttLib import TTFont
from PIL import Image, ImageDraw, ImageFont

from broadcaster.content.cards.png import save_png
from broadcaster.content.plurals import ELLIPSIS, plural_form, shorten_words
from broadcaster.content.render import Locale, make_filters
from broadcaster.core.config import CardsConfig
from broadcaster.domain.status import label as status_label
from broadcaster.publishers.base import CardSpec

FONTS = Path(__file__).resolve().parent / "fonts"
REGULAR = (FONTS / "NotoSans-Regular.ttf", FONTS / "NotoSansKhmer-Regular.ttf")
BOLD = (FONTS / "NotoSans-Bold.ttf", FONTS / "NotoSansKhmer-Bold.ttf")

LABELS: dict[str, dict[str, str]] = {
    "en": {
        "vote": "vote",
        "votes": "votes",
        "reported": "reported",
        "seats": "seats",
        "seat": "seat",
        "winner": "WINNER",
        "called": "Result declared",
        "tally": "Seat tally",
        "declared": "declared",
        "majority": "Majority",
        "test": "TEST DATA - NOT REAL RESULTS",
        "of": "of",
        "correction": "CORRECTION",
        "coalition": "coalition",
        "no_seats": "No seat declared yet",
        "counting": "Counting update",
        "lead_changes": "Lead changes",
        "tied": "tied",
        "ahead": "ahead",
        "elected": "elected",
    },
    "ms": {
        "vote": "undi",
        "votes": "undi",
        "reported": "dilaporkan",
        "seats": "kerusi",
        "seat": "kerusi",
        "winner": "MENANG",
        "called": "Keputusan diumumkan",
        "tally": "Kedudukan kerusi",
        "declared": "diumumkan",
        "majority": "Majoriti",
        "test": "DATA UJIAN - BUKAN KEPUTUSAN SEBENAR",
        "of": "daripada",
        "correction": "PEMBETULAN",
        "coalition": "gabungan",
        "no_seats": "Belum ada kerusi diumumkan",
        "counting": "Kemas kini pengiraan",
        "lead_changes": "Pertukaran pendahulu",
        "tied": "seri",
        "ahead": "mendahului",
        "elected": "dipilih",
    },
    "km": {
        "vote": "សំឡេង",
        "votes": "សំឡេង",
        "reported": "បានរាយការណ៍",
        "seats": "អាសនៈ",
        "seat": "អាសនៈ",
        "winner": "ជាប់ឆ្នោត",
        "called": "លទ្ធផលត្រូវបានប្រកាស",
        "tally": "ចំនួនអាសនៈ",
        "declared": "បានប្រកាស",
        "majority": "ភាគច្រើន",
        "test": "ទិន្នន័យសាកល្បង - មិនមែនលទ្ធផលពិត",
        "of": "ក្នុងចំណោម",
        "correction": "ការកែតម្រូវ",
        "coalition": "សម្ព័ន្ធ",
        "no_seats": "មិនទាន់មានអាសនៈប្រកាស",
        "counting": "ព័ត៌មានថ្មីអំពីការរាប់",
        "lead_changes": "អ្នកនាំមុខថ្មី",
        "tied": "ស្មើគ្នា",
        "ahead": "នាំមុខ",
        "elected": "ជាប់ឆ្នោត",
    },
}


class CardError(Exception):
    """A card could not be drawn (a character no bundled font covers, a bad logo file...)."""


@cache
def _coverage(path: Path) -> frozenset[int]:
    with TTFont(str(path), lazy=True) as font:
        return frozenset(font.getBestCmap())


@cache
def _font(path: Path, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(path), size, layout_engine=ImageFont.Layout.RAQM)


def _inherits(ch: str) -> bool:
    """Characters that take the font of what precedes them (marks, joiners, spaces)."""
    return unicodedata.category(ch) in ("Mn", "Mc", "Me", "Cf", "Zs") or ch == "\u17d2"


def missing_glyphs(text: str, bold: bool = False) -> set[str]:
    """Characters of `text` that no bundled font can draw (they would appear as boxes)."""
    paths = BOLD if bold else REGULAR
    covered = [_coverage(p) for p in paths]
    return {ch for ch in text if not ch.isspace() and not any(ord(ch) in c for c in covered)}


def runs(text: str, size: int, bold: bool = False) -> list[tuple[str, ImageFont.FreeTypeFont]]:
    """Split text into runs, each with the first bundled font that covers all of it."""
    paths = BOLD if bold else REGULAR
    return [(t, _font(paths[i], size)) for t, i in _runs(text, bold)]


# Cards measure the same strings over and over (fit and wrap search by width, every card has
# the same labels, names recur across a night's cards), and shaping a string with raqm costs
# far more than a look-up: splits and widths are kept per process, bounded.
@lru_cache(maxsize=8192)
def _runs(text: str, bold: bool) -> tuple[tuple[str, int], ...]:
    """`runs` as (text, index of its font in REGULAR/BOLD); the split does not depend on size."""
    covered = [_coverage(p) for p in (BOLD if bold else REGULAR)]
    out: list[tuple[str, int]] = []
    for ch in text:
        if out and _inherits(ch):
            out[-1] = (out[-1][0] + ch, out[-1][1])
            continue
        idx = next((i for i, c in enumerate(covered) if ord(ch) in c), 0)
        if out and out[-1][1] == idx:
            out[-1] = (out[-1][0] + ch, idx)
        else:
            out.append((ch, idx))
    return tuple(out)


@lru_cache(maxsize=16384)
def _length(path: Path, size: int, text: str) -> float:
    return _font(path, size).getlength(text)


@lru_cache(maxsize=8192)
def text_width(text: str, size: int, bold: bool = False) -> float:
    paths = BOLD if bold else REGULAR
    return sum(_length(paths[i], size, t) for t, i in _runs(text, bold))


def fit(text: str, size: int, width: float, bold: bool = False) -> str:
    """The text, cut by whole words with an ellipsis so that it fits `width` pixels (inside a
    word only when its first word alone is too wide, never through a letter and its marks)."""
    if text_width(text, size, bold) <= width:
        return text
    ends = _word_ends(text)
    best = ""
    lo, hi = 0, len(ends) - 1
    while lo <= hi:  # the longest run of whole words that fits with the ellipsis
        mid = (lo + hi) // 2
        candidate = text[: ends[mid]].rstrip(_TRAILING) + ELLIPSIS
        if text_width(candidate, size, bold) <= width:
            best, lo = candidate, mid + 1
        else:
            hi = mid - 1
    if best:
        return best
    lo, hi = 0, len(text)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if text_width(shorten_words(text, mid), size, bold) <= width:
            lo = mid
        else:
            hi = mid - 1
    return shorten_words(text, lo) if lo > 0 else ELLIPSIS


def wrap(text: str, size: int, width: float, bold: bool = False, lines: int = 2) -> list[str]:
    """The text on at most `lines` lines of `width` pixels, broken between words; what does
    not fit on the last line is cut by words with an ellipsis."""
    if lines <= 1 or text_width(text, size, bold) <= width:
        return [fit(text, size, width, bold)]
    ends = [e for e in _word_ends(text) if e < len(text)]
    first = ""
    for end in ends:  # the longest first line of whole words
        head = text[:end].rstrip()
        if text_width(head, size, bold) > width:
            break
        first = head
    if not first:
        return [fit(text, size, width, bold)]
    rest = text[len(first) :].strip()
    return [first, *wrap(rest, size, width, bold, lines - 1)] if rest else [first]


_TRAILING = " ,;:/-\u200b"


def _word_ends(text: str) -> list[int]:
    # Where a line may end: before a space, after a hyphen or slash, after Khmer's "។"; Khmer
    # names also break at a zero-width space.
    ends = {i for i, ch in enumerate(text) if ch.isspace() or ch == "\u200b"}
    ends |= {i + 1 for i, ch in enumerate(text) if ch in "-/។,;:"}
    ends.add(len(text))
    return sorted(e for e in ends if e > 0)


def draw_text(
    draw: ImageDraw.ImageDraw,
    xy: tuple[float, float],
    text: str,
    size: int,
    fill: str,
    *,
    bold: bool = False,
    anchor_right: bool = False,
) -> float:
    """Draw shaped text at xy (top-left, or top-right); returns its width."""
    x, y = xy
    width = text_width(text, size, bold)
    if anchor_right:
        x -= width
    paths = BOLD if bold else REGULAR
    for part, i in _runs(text, bold):
        _draw_run(draw, (x, y), part, paths[i], size, fill)
        x += _length(paths[i], size, part)
    return width


def _draw_run(
    draw: ImageDraw.ImageDraw, xy: tuple[float, float], text: str, path: Path, size: int, fill: str
) -> None:
    """`draw.text(xy, text, font=_font(path, size), fill=fill)`, with the rasterised text kept
    for the next card that writes the same string at the same sub-pixel offset."""
    if "\n" in text:  # draw.text lays such text out on several lines: leave it to it
        draw.text(xy, text, font=_font(path, size), fill=fill)
        return
    # What ImageDraw.text does for one line: the glyphs are rasterised at the fractional part
    # of xy, then the mask is blended in with the ink at the integer part plus the mask's offset.
    fx, x = math.modf(xy[0])
    fy, y = math.modf(xy[1])
    key = (path, size, text, draw.fontmode, fx, fy)
    found = _MASKS.get(key)
    if found is None:
        core, offset = _font(path, size).getmask2(text, draw.fontmode, start=(fx, fy))
        # Pillow's own way to make an Image of the mask it hands back (there is no public one).
        found = (Image.Image()._new(core), offset)
        _MASKS.put(key, found, core.size[0] * core.size[1])
    mask, (dx, dy) = found
    draw.bitmap((int(x) + dx, int(y) + dy), mask, fill=fill)


class _Masks:
    """A least-recently-used map of rasterised text, bounded by its pixels (bytes, in mode L);
    shared by threads (the live channel draws text too)."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self._used = 0
        self._items: OrderedDict[Hashable, tuple[tuple[Image.Image, tuple[int, int]], int]] = (
            OrderedDict()
        )
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> tuple[Image.Image, tuple[int, int]] | None:
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return None
            self._items.move_to_end(key)
            return item[0]

    def put(self, key: Hashable, value: tuple[Image.Image, tuple[int, int]], cost: int) -> None:
        with self._lock:
            if key in self._items or cost > self.budget:
                return
            self._items[key] = (value, cost)
            self._used += cost
            while self._used > self.budget:
                _, (_, dropped) = self._items.popitem(last=False)
                self._used -= dropped

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._used = 0


_MASKS = _Masks(16 * 1024 * 1024)


def clear_caches() -> None:
    """Forget every string's split, width and mask and every logo (tests, benchmarks)."""
    _runs.cache_clear()
    _length.cache_clear()
    text_width.cache_clear()
    _cached_logo.cache_clear()
    _MASKS.clear()


@dataclass(frozen=True, slots=True)
class CardStyle:
    background: str = "#FFFFFF"
    foreground: str = "#1A1A1A"
    accent: str = "#1F4E79"
    muted: str = "#6B6B6B"
    track: str = "#E6E6E6"
    title: str | None = None
    logo: Path | None = None

    @classmethod
    def from_config(cls, cfg: CardsConfig, base: Path) -> CardStyle:
        logo = None
        if cfg.logo:
            logo = Path(cfg.logo) if Path(cfg.logo).is_absolute() else base / cfg.logo
        return cls(cfg.background, cfg.foreground, cfg.accent, title=cfg.title, logo=logo)


def render_card(
    variables: dict[str, Any],
    spec: CardSpec,
    locale: Locale,
    style: CardStyle,
    out: Path,
) -> Path:
    """Draw the card for a post's template variables into `out` (PNG or JPEG per `spec`).

    A card never shows an empty chart: a contest's bars are its votes where it has votes, its
    seats where it has only seats, and no bars at all otherwise; the seat tally is drawn once a
    seat is declared; a counting summary shows each contest's share of units reported."""
    labels = LABELS.get(locale.language, LABELS["en"])
    card = _Card(variables, spec, locale, style, labels)
    card.header()
    contest = variables.get("contest")
    summary = variables.get("summary")
    tally = variables["tally"]
    if contest is not None:
        card.contest_body(contest)
    elif summary is not None and summary["kind"] != "called" and summary["items"]:
        card.counting_body(summary)
    elif tally["declared_seats"] > 0:
        card.tally_body(tally)
    else:
        card.status_body(tally)
    card.footer(contest["stage"] if contest is not None else variables["election"]["stage"])
    out.parent.mkdir(parents=True, exist_ok=True)
    if spec.format.upper() == "JPEG":
        card.img.save(out, "JPEG", quality=90, optimize=True)
    else:
        save_png(card.img, out)
    return out


def _paste_logo(img: Image.Image, logo: Path | None, band: int, width: int, pad: int) -> int:
    if logo is None:
        return 0
    mark = _logo_mark(logo, band - 24)
    img.paste(mark, (width - pad - mark.width, (band - mark.height) // 2), mark)
    return mark.width + pad


def _logo_mark(logo: Path, side: int) -> Image.Image:
    """The logo scaled to fit the header band; decoded and scaled once per version of the file
    (its modification time and size) and band, not per card. Never modify the result."""
    try:
        stat = logo.stat()
    except OSError:
        return _load_logo(logo, side)  # raises the CardError that says why
    return _cached_logo(logo, (stat.st_mtime_ns, stat.st_size), side)


@lru_cache(maxsize=8)
def _cached_logo(logo: Path, _version: tuple[int, int], side: int) -> Image.Image:
    return _load_logo(logo, side)


def _load_logo(logo: Path, side: int) -> Image.Image:
    try:
        with Image.open(logo) as src:
            mark = src.convert("RGBA")
    except OSError as exc:
        raise CardError(f"cannot read the card logo {logo}: {exc}") from None
    mark.thumbnail((side * 3, side))
    return mark


@dataclass(slots=True)
class _Row:
    """One line of a card's chart: a name, a figure on the right, a bar (when `value` is not
    None) and a smaller detail line under it."""

    name: str
    right: str
    value: float | None
    top: float
    color: str
    detail: str = ""
    bold: bool = False
    tag: str = ""  # a small word after the name (marks a coalition)


class _Card:
    def __init__(
        self,
        variables: dict[str, Any],
        spec: CardSpec,
        locale: Locale,
        style: CardStyle,
        labels: dict[str, str],
    ) -> None:
        self.variables = variables
        self.locale = locale
        self.style = style
        self.labels = labels
        self.f = make_filters(locale)
        self.width, self.height = spec.width, spec.height
        # Sizes are designed for a 1080 px square and scale with the shorter side (landscape
        # cards get a little more, since they are shown wide).
        self.scale = min(self.width, self.height * 1.25) / 1080
        self.img = Image.new("RGB", (self.width, self.height), style.background)
        self.draw = ImageDraw.Draw(self.img)
        self.pad = int(48 * self.scale)
        self.y = 0
        self.bottom = self.height - int(100 * self.scale)  # where the footer begins

    def px(self, value: float) -> int:
        return int(value * self.scale)

    @property
    def inner(self) -> int:
        return self.width - 2 * self.pad

    def word(self, key: str, n: Any) -> str:
        """`n` and its noun (votes, seats), the form CLDR's plural rules choose."""
        singular = plural_form(n, self.locale.language) == "one"
        return f"{self.f['number'](n)} {self.labels[key if not singular else key.rstrip('s')]}"

    # -- frame --

    def header(self) -> None:
        election = self.variables["election"]
        band = self.px(110)
        self.draw.rectangle((0, 0, self.width, band), fill=self.style.accent)
        title = self.style.title or election["name"]
        logo_w = _paste_logo(self.img, self.style.logo, band, self.width, self.pad)
        size = self.px(38)
        draw_text(
            self.draw,
            (self.pad, self.px(32)),
            fit(title, size, self.inner - logo_w, True),
            size,
            "#FFFFFF",
            bold=True,
        )
        self.y = band + self.px(28)
        if election["is_test"]:
            banner = self.px(56)
            top = self.y - self.px(12)
            self.draw.rectangle((0, top, self.width, top + banner), fill="#C62828")
            draw_text(
                self.draw,
                (self.pad, self.y - self.px(2)),
                fit(self.labels["test"], self.px(28), self.inner, True),
                self.px(28),
                "#FFFFFF",
                bold=True,
            )
            self.y += banner + self.px(8)

    def footer(self, stage: str) -> None:
        election = self.variables["election"]
        when = self.f["time"](election["generated_at"])
        parts = [status_label(stage, self.locale.language), when, election["issuer"] or ""]
        text = " · ".join(p for p in parts if p)
        line_y = self.height - self.px(86)
        self.draw.line(
            (self.pad, line_y, self.width - self.pad, line_y),
            fill=self.style.track,
            width=max(1, self.px(2)),
        )
        size = self.px(26)
        draw_text(
            self.draw,
            (self.pad, self.height - self.px(66)),
            fit(text, size, self.inner),
            size,
            self.style.muted,
        )

    def heading(self, text: str, lines: int = 2) -> None:
        """The card's heading, bold, on up to two lines, then cut by words."""
        size = self.px(48)
        for line in wrap(text, size, self.inner, True, lines):
            draw_text(self.draw, (self.pad, self.y), line, size, self.style.foreground, bold=True)
            self.y += self.px(62)
        self.y += self.px(10)

    def subtitle(self, parts: list[str]) -> None:
        text = " · ".join(p for p in parts if p)
        if text:
            size = self.px(28)
            for line in wrap(text, size, self.inner, False, 2):
                draw_text(self.draw, (self.pad, self.y), line, size, self.style.muted)
                self.y += self.px(38)
        self.y += self.px(18)

    def message(self, text: str) -> None:
        size = self.px(34)
        for line in wrap(text, size, self.inner, False, 3):
            draw_text(self.draw, (self.pad, self.y), line, size, self.style.muted)
            self.y += self.px(46)

    # -- bodies --

    def contest_body(self, contest: dict[str, Any]) -> None:
        labels, f = self.labels, self.f
        event = self.variables["event"]
        heading = contest["name"]
        if event["kind"] == "corrected":
            heading = f"{labels['correction']}: {heading}"
        self.heading(heading)
        status = []
        if contest["state"] != "normal":
            status.append(status_label(contest["state"], self.locale.language))
        if contest["called"]:
            status.append(labels["called"])
        if contest["percent_reported"] is not None and contest["reporting"]:
            status.append(
                f"{f['pct'](contest['percent_reported'], 0)} {labels['reported']} "
                f"({f['number'](contest['reported'])}/{f['number'](contest['units_total'])})"
            )
        self.subtitle(status)

        selections = contest["selections"]
        rows = []
        by_votes = contest["votes_known"] and (contest["total_votes"] or 0) > 0
        by_seats = not by_votes and any((s["seats"] or 0) > 0 for s in selections)
        if by_votes:
            top = max(s["votes"] for s in selections) or 1
        elif by_seats:
            top = max(contest["seats"] or 0, max((s["seats"] or 0) for s in selections))
        else:
            top = 1
        for s in selections[:6]:
            name = s["name"]
            if s["party_abbr"] and s["party"] != s["name"]:
                name += f" ({s['party_abbr']})"
            details = []
            if by_votes:
                details.append(self.word("votes", s["votes"]))
            if (s["seats"] or 0) > 0:
                details.append(self.word("seats", s["seats"]))
            if s["winner"]:
                details.append(labels["winner"])
            if by_votes:
                right, value = f["pct"](s["share"]), float(s["votes"])
            elif by_seats:
                right, value = f["number"](s["seats"] or 0), float(s["seats"] or 0)
            else:
                right, value = "", None  # nothing to chart: names only, no empty bars
            rows.append(
                _Row(
                    name,
                    right,
                    value,
                    float(top),
                    s.get("party_color") or self.style.accent,
                    " · ".join(details),
                    bool(s["winner"] or (s["seats"] or 0) > 0),
                )
            )
        self.rows(rows)

    def tally_body(self, tally: dict[str, Any]) -> None:
        labels, n = self.labels, self.f["number"]
        event = self.variables["event"]
        holder = event.get("holder")
        if holder:
            heading = f"{holder['name']}: {labels['majority']}"
        elif event["kind"] == "certified":
            heading = status_label("certified", self.locale.language)
        else:
            heading = labels["tally"]
        self.heading(heading, lines=1 if not holder else 2)
        self.subtitle(self._tally_facts(tally))
        # By coalition (each coalition, then parties outside any) when there are coalitions:
        # a coalition and its own parties are never added up on one chart.
        blocs = tally["blocs"] if tally["coalitions"] else tally["parties"]
        total = max(1, tally["total_seats"])
        rows = [
            _Row(
                r["name"],
                n(r["seats"]),
                float(r["seats"]),
                float(total),
                r.get("color") or self.style.accent,
                bold=True,
                tag=labels["coalition"] if r.get("is_coalition") else "",
            )
            for r in blocs[:7]
            if r["seats"] > 0
        ]
        self.rows(rows, majority=tally["majority"] / total if tally["majority"] else None)

    def status_body(self, tally: dict[str, Any]) -> None:
        """No seat declared yet (a certification of ballot questions, say): no chart."""
        stage = self.variables["election"]["stage"]
        self.heading(status_label(stage, self.locale.language))
        self.subtitle(self._tally_facts(tally) if tally["total_seats"] else [])
        if tally["total_seats"]:
            self.message(self.labels["no_seats"])

    def counting_body(self, summary: dict[str, Any]) -> None:
        labels, f = self.labels, self.f
        self.heading(labels["lead_changes"] if summary["kind"] == "leader" else labels["counting"])
        self.y += self.px(8)
        contests = [item["contest"] for item in summary["items"] if item["contest"]]
        charted = any(c["percent_reported"] is not None for c in contests)
        rows = []
        for c in contests[:6]:
            if c["called"]:
                winners = ", ".join(w["name"] for w in c["winners"][:2])
                detail = f"{labels['called']}: {winners}" if winners else labels["called"]
            elif c["leader"]:
                detail = f"{c['leader']['name']} {labels['ahead']} {f['pct'](c['leader']['share'])}"
            elif c["tied"]:
                detail = labels["tied"]
            else:
                detail = ""
            percent = c["percent_reported"]
            rows.append(
                _Row(
                    c["name"],
                    f"{f['pct'](percent, 0)} {labels['reported']}" if percent is not None else "",
                    float(percent) if charted and percent is not None else None,
                    100.0,
                    (c["leader"] or {}).get("party_color") or self.style.accent,
                    detail,
                    True,
                )
            )
        self.rows(rows)

    def _tally_facts(self, tally: dict[str, Any]) -> list[str]:
        labels, n = self.labels, self.f["number"]
        facts = [
            f"{n(tally['declared_seats'])} {labels['of']} {n(tally['total_seats'])} "
            f"{labels['seats']} {labels['declared']}"
        ]
        for item in tally["not_reporting"]:
            state = status_label(item["state"], self.locale.language)
            facts.append(f"{n(item['seats'])} {state[:1].lower() + state[1:]}")
        if tally["majority"]:
            facts.append(f"{labels['majority']}: {n(tally['majority'])}")
        return facts

    def rows(self, rows: list[_Row], majority: float | None = None) -> None:
        """Rows of names, each with its bar when it has a value; long names take two lines
        where there is room."""
        if not rows:
            return
        s = self.scale
        room = self.bottom - self.y
        row_h = min(int(116 * s), room // len(rows))
        size = max(14, min(int(34 * s), int(row_h * 0.3)))
        bar_h = max(6, int(row_h * 0.14))
        charted = any(r.value is not None for r in rows)
        for r in rows:
            right_w = text_width(r.right, size, True) if r.right else 0
            tag_w = text_width(f" {r.tag}", int(size * 0.72)) if r.tag else 0
            name_w = self.inner - right_w - tag_w - int(24 * s)
            # A second line for the name when the row has room for it, else cut by words.
            two = row_h >= size * (1.3 * 2 + 1.2) + bar_h
            lines = wrap(r.name, size, name_w, r.bold, 2 if two else 1)
            y = self.y
            for i, line in enumerate(lines):
                width = draw_text(
                    self.draw, (self.pad, y), line, size, self.style.foreground, bold=r.bold
                )
                if r.tag and i == len(lines) - 1:
                    draw_text(
                        self.draw,
                        (self.pad + width + int(10 * s), y + int(size * 0.22)),
                        r.tag,
                        int(size * 0.72),
                        self.style.muted,
                    )
                if i == 0 and r.right:
                    draw_text(
                        self.draw,
                        (self.width - self.pad, y),
                        r.right,
                        size,
                        self.style.foreground,
                        bold=True,
                        anchor_right=True,
                    )
                y += int(size * 1.3)
            y += int(size * 0.15)
            if charted and r.value is not None:
                self.draw.rectangle(
                    (self.pad, y, self.width - self.pad, y + bar_h), fill=self.style.track
                )
                share = max(0.0, min(1.0, r.value / r.top)) if r.top else 0.0
                if share > 0:
                    filled = self.pad + self.inner * share
                    self.draw.rectangle((self.pad, y, int(filled), y + bar_h), fill=r.color)
                if majority is not None:
                    # The majority line, so a bar's distance to it reads at a glance.
                    mx = self.pad + self.inner * majority
                    self.draw.line(
                        (mx, y - 4, mx, y + bar_h + 4),
                        fill=self.style.foreground,
                        width=max(1, int(2 * s)),
                    )
                y += bar_h
            if r.detail:
                detail_size = int(size * 0.72)
                draw_text(
                    self.draw,
                    (self.pad, y + int(6 * s)),
                    fit(r.detail, detail_size, self.inner),
                    detail_size,
                    self.style.muted,
                )
            self.y += row_h


# Bump when the drawing itself changes, so that a card folder kept from an earlier version is
# never taken for the new design.
CARD_DESIGN = 2
DRAWN = ("election", "event", "contest", "tally", "summary")  # the variables a card shows
NOT_DRAWN = ("key", "at")  # event fields that name the event but are not on the card


def card_fingerprint(
    variables: dict[str, Any], spec: CardSpec, locale: Locale, style: CardStyle
) -> str:
    """A hash of everything that decides what a card shows: its data, size and format, language
    and number style, colours, title and logo. Two cards share a file only when they would be
    the same picture; a rehearsal's card (TEST banner, test title and time) is never a real
    post's."""
    drawn: dict[str, Any] = {k: variables.get(k) for k in DRAWN}
    if isinstance(drawn["event"], dict):
        drawn["event"] = {k: v for k, v in drawn["event"].items() if k not in NOT_DRAWN}
    logo = None
    if style.logo is not None:
        try:
            logo = hashlib.sha256(style.logo.read_bytes()).hexdigest()
        except OSError:
            logo = f"unreadable:{style.logo}"
    payload = {
        "design": CARD_DESIGN,
        "drawn": drawn,
        "spec": [spec.format.upper(), spec.width, spec.height],
        "locale": [
            locale.language,
            locale.khmer_digits,
            locale.timezone,
            locale.time_format,
            locale.date_format,
        ],
        "style": [
            style.background,
            style.foreground,
            style.accent,
            style.muted,
            style.track,
            style.title,
            logo,
        ],
    }
    text = json.dumps(payload, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def card_path(folder: Path, fingerprint: str, spec: CardSpec) -> Path:
    """Where the card with this fingerprint is kept (shared by every post that shows it)."""
    ext = "jpg" if spec.format.upper() == "JPEG" else "png"
    return folder / f"{fingerprint[:40]}.{ext}"
