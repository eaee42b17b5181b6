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
import unicodedata
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from fontTools.ttLib import TTFont
from PIL import Image, ImageDraw, ImageFont

from broadcaster.content.render import Locale, make_filters
from broadcaster.core.config import CardsConfig
from broadcaster.publishers.base import CardSpec

FONTS = Path(__file__).resolve().parent / "fonts"
REGULAR = (FONTS / "NotoSans-Regular.ttf", FONTS / "NotoSansKhmer-Regular.ttf")
BOLD = (FONTS / "NotoSans-Bold.ttf", FONTS / "NotoSansKhmer-Bold.ttf")

LABELS: dict[str, dict[str, str]] = {
    "en": {
        "votes": "votes",
        "reported": "reported",
        "seats": "seats",
        "seat": "seat",
        "winner": "WINNER",
        "called": "Result declared",
        "unofficial": "Unofficial results",
        "tally": "Seat tally",
        "declared": "declared",
        "majority": "Majority",
        "test": "TEST DATA - NOT REAL RESULTS",
        "of": "of",
        "correction": "CORRECTION",
    },
    "ms": {
        "votes": "undi",
        "reported": "dilaporkan",
        "seats": "kerusi",
        "seat": "kerusi",
        "winner": "MENANG",
        "called": "Keputusan diumumkan",
        "unofficial": "Keputusan tidak rasmi",
        "tally": "Kedudukan kerusi",
        "declared": "diumumkan",
        "majority": "Majoriti",
        "test": "DATA UJIAN - BUKAN KEPUTUSAN SEBENAR",
        "of": "daripada",
        "correction": "PEMBETULAN",
    },
    "km": {
        "votes": "សំឡេង",
        "reported": "បានរាយការណ៍",
        "seats": "អាសនៈ",
        "seat": "អាសនៈ",
        "winner": "ជាប់ឆ្នោត",
        "called": "លទ្ធផលត្រូវបានប្រកាស",
        "unofficial": "លទ្ធផលបណ្ដោះអាសន្ន",
        "tally": "ចំនួនអាសនៈ",
        "declared": "បានប្រកាស",
        "majority": "ភាគច្រើន",
        "test": "ទិន្នន័យសាកល្បង - មិនមែនលទ្ធផលពិត",
        "of": "ក្នុងចំណោម",
        "correction": "ការកែតម្រូវ",
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
    covered = [_coverage(p) for p in paths]
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
    return [(t, _font(paths[i], size)) for t, i in out]


def text_width(text: str, size: int, bold: bool = False) -> float:
    return sum(font.getlength(t) for t, font in runs(text, size, bold))


def fit(text: str, size: int, width: float, bold: bool = False) -> str:
    """The text, cut with an ellipsis so that it fits `width` pixels."""
    if text_width(text, size, bold) <= width:
        return text
    lo, hi = 0, len(text)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if text_width(text[:mid] + "…", size, bold) <= width:
            lo = mid
        else:
            hi = mid - 1
    return text[:lo].rstrip() + "…"


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
    for part, font in runs(text, size, bold):
        draw.text((x, y), part, font=font, fill=fill)
        x += font.getlength(part)
    return width


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
    """Draw the card for a post's template variables into `out` (PNG or JPEG per `spec`)."""
    labels = LABELS.get(locale.language, LABELS["en"])
    f = make_filters(locale)
    width, height = spec.width, spec.height
    # Sizes are designed for a 1080 px square and scale with the shorter side (landscape cards
    # get a little more, since they are shown wide).
    scale = min(width, height * 1.25) / 1080
    img = Image.new("RGB", (width, height), style.background)
    draw = ImageDraw.Draw(img)
    pad = int(48 * scale)
    election = variables["election"]

    # Header band: title and, on test data, an unmistakable banner.
    band = int(110 * scale)
    draw.rectangle((0, 0, width, band), fill=style.accent)
    title = style.title or election["name"]
    logo_w = _paste_logo(img, style.logo, band, width, pad)
    draw_text(
        draw,
        (pad, int(32 * scale)),
        fit(title, int(38 * scale), width - 2 * pad - logo_w, True),
        int(38 * scale),
        "#FFFFFF",
        bold=True,
    )
    y = band + int(28 * scale)
    if election["is_test"]:
        banner = int(56 * scale)
        draw.rectangle(
            (0, y - int(12 * scale), width, y - int(12 * scale) + banner), fill="#C62828"
        )
        draw_text(
            draw, (pad, y - int(2 * scale)), labels["test"], int(28 * scale), "#FFFFFF", bold=True
        )
        y += banner + int(8 * scale)

    contest = variables.get("contest")
    if contest is not None:
        y = _contest_body(draw, variables, contest, labels, f, style, pad, y, width, height, scale)
    else:
        y = _tally_body(draw, variables, labels, f, style, pad, y, width, height, scale)

    # Footer: time and issuer.
    when = f["time"](election["generated_at"])
    footer = f"{labels['unofficial']} · {when} · {election['issuer'] or ''}"
    draw.line(
        (pad, height - int(86 * scale), width - pad, height - int(86 * scale)),
        fill=style.track,
        width=max(1, int(2 * scale)),
    )
    draw_text(
        draw,
        (pad, height - int(66 * scale)),
        fit(footer.strip(" ·"), int(26 * scale), width - 2 * pad),
        int(26 * scale),
        style.muted,
    )

    out.parent.mkdir(parents=True, exist_ok=True)
    if spec.format.upper() == "JPEG":
        img.save(out, "JPEG", quality=90, optimize=True)
    else:
        img.save(out, "PNG", compress_level=3)
    return out


def _paste_logo(img: Image.Image, logo: Path | None, band: int, width: int, pad: int) -> int:
    if logo is None:
        return 0
    try:
        with Image.open(logo) as src:
            mark = src.convert("RGBA")
    except OSError as exc:
        raise CardError(f"cannot read the card logo {logo}: {exc}") from None
    side = band - 24
    mark.thumbnail((side * 3, side))
    img.paste(mark, (width - pad - mark.width, (band - mark.height) // 2), mark)
    return mark.width + pad


def _heading(
    draw: ImageDraw.ImageDraw,
    heading: str,
    style: CardStyle,
    pad: int,
    y: int,
    width: int,
    scale: float,
) -> int:
    """The card's heading, bold, cut to the width; returns where the body goes on."""
    size = int(48 * scale)
    draw_text(
        draw, (pad, y), fit(heading, size, width - 2 * pad, True), size, style.foreground, bold=True
    )
    return y + int(72 * scale)


def _contest_body(
    draw: ImageDraw.ImageDraw,
    variables: dict[str, Any],
    contest: dict[str, Any],
    labels: dict[str, str],
    f: dict[str, Any],
    style: CardStyle,
    pad: int,
    y: int,
    width: int,
    height: int,
    scale: float,
) -> int:
    event = variables["event"]
    heading = contest["name"]
    if event["kind"] == "corrected":
        heading = f"{labels['correction']}: {heading}"
    y = _heading(draw, heading, style, pad, y, width, scale)
    status = []
    if contest["called"]:
        status.append(labels["called"])
    if contest["percent_reported"] is not None:
        status.append(
            f"{f['pct'](contest['percent_reported'], 0)} {labels['reported']} "
            f"({f['number'](contest['reported'])}/{f['number'](contest['units_total'])})"
        )
    draw_text(draw, (pad, y), " · ".join(status), int(28 * scale), style.muted)
    y += int(56 * scale)

    rows = contest["selections"][:6]
    footer_top = height - int(100 * scale)
    row_h = min(int(112 * scale), (footer_top - y) // max(1, len(rows)))
    name_size = max(16, min(int(34 * scale), int(row_h * 0.32)))
    bar_h = max(6, int(row_h * 0.16))
    top_votes = max((s["votes"] for s in rows), default=0) or 1
    for s in rows:
        label = s["name"]
        if s["party_abbr"] and s["party"] != s["name"]:
            label += f" ({s['party_abbr']})"
        right = f"{f['pct'](s['share'])}"
        right_w = text_width(right, name_size, True)
        draw_text(
            draw,
            (pad, y),
            fit(label, name_size, width - 2 * pad - right_w - 24 * scale, s["winner"]),
            name_size,
            style.foreground,
            bold=bool(s["winner"] or (s["seats"] or 0) > 0),
        )
        draw_text(
            draw, (width - pad, y), right, name_size, style.foreground, bold=True, anchor_right=True
        )
        bar_y = y + int(name_size * 1.45)
        colour = s.get("party_color") or style.accent
        draw.rectangle((pad, bar_y, width - pad, bar_y + bar_h), fill=style.track)
        filled = pad + (width - 2 * pad) * (s["votes"] / top_votes)
        draw.rectangle((pad, bar_y, int(filled), bar_y + bar_h), fill=colour)
        detail = f"{f['number'](s['votes'])} {labels['votes']}"
        if (s["seats"] or 0) > 0:
            unit = labels["seats"] if s["seats"] != 1 else labels["seat"]
            detail += f" · {f['number'](s['seats'])} {unit}"
        if s["winner"]:
            detail += f" · {labels['winner']}"
        draw_text(
            draw, (pad, bar_y + bar_h + int(6 * scale)), detail, int(name_size * 0.72), style.muted
        )
        y += row_h
    return y


def _tally_body(
    draw: ImageDraw.ImageDraw,
    variables: dict[str, Any],
    labels: dict[str, str],
    f: dict[str, Any],
    style: CardStyle,
    pad: int,
    y: int,
    width: int,
    height: int,
    scale: float,
) -> int:
    tally = variables["tally"]
    heading = labels["tally"]
    holder = variables["event"].get("holder")
    if holder:
        heading = f"{holder['name']}: {labels['majority']}"
    y = _heading(draw, heading, style, pad, y, width, scale)
    n = f["number"]
    sub = (
        f"{n(tally['declared_seats'])} {labels['of']} {n(tally['total_seats'])} "
        f"{labels['seats']} {labels['declared']} · {labels['majority']}: {n(tally['majority'])}"
    )
    draw_text(draw, (pad, y), sub, int(28 * scale), style.muted)
    y += int(56 * scale)
    rows = list(tally["coalitions"][:2]) + list(tally["parties"][:6])
    footer_top = height - int(100 * scale)
    row_h = min(int(96 * scale), (footer_top - y) // max(1, len(rows)))
    size = max(16, min(int(34 * scale), int(row_h * 0.34)))
    bar_h = max(6, int(row_h * 0.2))
    total = max(1, tally["total_seats"])
    for r in rows:
        draw_text(
            draw,
            (pad, y),
            fit(r["name"], size, width * 0.7, True),
            size,
            style.foreground,
            bold=True,
        )
        draw_text(
            draw,
            (width - pad, y),
            f["number"](r["seats"]),
            size,
            style.foreground,
            bold=True,
            anchor_right=True,
        )
        bar_y = y + int(size * 1.45)
        draw.rectangle((pad, bar_y, width - pad, bar_y + bar_h), fill=style.track)
        filled = pad + (width - 2 * pad) * (r["seats"] / total)
        draw.rectangle(
            (pad, bar_y, int(filled), bar_y + bar_h), fill=r.get("color") or style.accent
        )
        # The majority line, so a bar's distance to it reads at a glance.
        mx = pad + (width - 2 * pad) * (tally["majority"] / total)
        draw.line(
            (mx, bar_y - 4, mx, bar_y + bar_h + 4),
            fill=style.foreground,
            width=max(1, int(2 * scale)),
        )
        y += row_h
    return y


# Bump when the drawing itself changes, so that a card folder kept from an earlier version is
# never taken for the new design.
CARD_DESIGN = 1
DRAWN = ("election", "event", "contest", "tally")  # the variables a card shows
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
