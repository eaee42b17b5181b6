"""The channel's picture, drawn with Pillow: a scene per data change, a frame per tick.

`Painter.scene()` runs when the data or the layout changes (in the channel's data thread, off
the frame clock): it renders the layout template, draws every region that only changes with the
data onto a base image, and pre-draws the pages of the rotating regions (the ticker, the panel).
`Compositor.frame()` runs every frame: it pastes the page due now and redraws the clock, only
when one of them changed, and otherwise hands back the same image (the encoder then reuses the
frame it already converted). Text is shaped with raqm through the cards' own helpers, so Khmer
is drawn as on the result cards.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from PIL import Image, ImageDraw

from broadcaster.content.cards.draw import CardError, draw_text, fit, text_width
from broadcaster.content.context import View, contest_view, tally_view
from broadcaster.content.render import Budget, Locale, Renderer, make_filters
from broadcaster.content.samples import display_from
from broadcaster.core.config import Config
from broadcaster.domain.model import Contest, Snapshot
from broadcaster.live.data import ChannelData, in_progress, reporting, results_status
from broadcaster.live.layout import (
    DESIGN,
    Bar,
    Clock,
    Layout,
    LayoutError,
    LayoutTemplate,
    Page,
    Panel,
    Progress,
    Tally,
    Text,
    Ticker,
)

log = logging.getLogger(__name__)
_FONTS = threading.RLock()

# Distinct colours for parties the feed and the configuration give none.
PALETTE = ("#4E79A7", "#F28E2B", "#E15759", "#76B7B2", "#59A14F", "#EDC948", "#B07AA1", "#FF9DA7")
MAX_COUNTING = 12


def colour_of(key: str) -> str:
    digest = hashlib.sha256(key.encode()).digest()
    return PALETTE[digest[0] % len(PALETTE)]


def _hex(value: str | None) -> str | None:
    if not value:
        return None
    value = value if value.startswith("#") else f"#{value}"
    return value if len(value) == 7 else None


@dataclass(frozen=True, slots=True)
class Focus:
    """What a short video is about: one contest, or the national tally."""

    contest_id: str | None = None


def layout_variables(
    config: Config,
    data: ChannelData,
    *,
    orientation: str,
    language: str,
    focus: Focus | None = None,
) -> dict[str, Any]:
    """The variables the layout template sees (documented in docs/live.md)."""
    tz = ZoneInfo(config.election.timezone)
    display = display_from(config)
    width, height = DESIGN[orientation]
    snapshot = data.snapshot
    cards = config.cards
    style = View(
        background=cards.background,
        foreground=cards.foreground,
        accent=cards.accent,
        title=cards.title,
    )
    variables: dict[str, Any] = {
        "language": language,
        "orientation": orientation,
        "width": width,
        "height": height,
        "status": results_status(snapshot),
        "style": style,
        "election": None,
        "tally": None,
        "colors": {},
        "calls": [],
        "counting": [],
        "reporting": View(declared=0, contests=0, percent=None),
        "focus": None,
    }
    if snapshot is None or data.tally is None:
        return variables
    parties, coalitions, colors = _parties(snapshot, display)
    views: dict[str, View] = {}

    def view(contest: Contest) -> View:
        if contest.id not in views:
            views[contest.id] = contest_view(contest, parties, coalitions, display)
        return views[contest.id]

    calls = []
    for call in data.calls:
        contest = snapshot.contest(call.contest_id)
        if contest is None or not contest.called:
            continue
        cview = view(contest)
        winners = [
            (f"{w['party_abbr'] or w['name']} {w['seats']}" if w["seats"] else w["name"])
            for w in cview["winners"]
        ]
        calls.append(View(contest=cview, at=call.at.astimezone(tz), winners=winners))
    declared, contests, percent = reporting(snapshot)
    variables.update(
        election=View(
            name=config.election.name or snapshot.election,
            status=snapshot.status.value,
            is_test=snapshot.is_test,
            issuer=config.election.issuer or snapshot.issuer,
            generated_at=snapshot.generated_at.astimezone(tz),
        ),
        tally=tally_view(data.tally, display),
        colors=colors,
        calls=calls,
        counting=[view(c) for c in in_progress(snapshot)[:MAX_COUNTING]],
        reporting=View(declared=declared, contests=contests, percent=percent),
    )
    if focus is not None:
        contest = snapshot.contest(focus.contest_id) if focus.contest_id else None
        variables["focus"] = (
            View(kind="contest", contest=view(contest))
            if contest is not None
            else View(kind="tally", contest=None)
        )
    return variables


def _parties(
    snapshot: Snapshot, display: Mapping[str, Any]
) -> tuple[dict[str, list[Any]], dict[str, list[Any]], dict[str, str]]:
    parties = {
        p.id: [p.name, p.abbreviation, p.coalition_id, p.color] for p in snapshot.parties.values()
    }
    coalitions = {c.id: [c.name, c.abbreviation, c.color] for c in snapshot.coalitions.values()}
    colors: dict[str, str] = {}
    for cid, c in snapshot.coalitions.items():
        shown = display.get(cid)
        colors[cid] = _hex(shown and shown.color) or _hex(c.color) or colour_of(cid)
    for pid, p in snapshot.parties.items():
        shown = display.get(pid)
        colors[pid] = _hex(shown and shown.color) or _hex(p.color) or colour_of(pid)
    colors.setdefault("independent", "#9E9E9E")
    return parties, coalitions, colors


# -- drawing ----------------------------------------------------------------------------------


@dataclass
class Rotating:
    """A region whose pages take turns, each shown `seconds`."""

    box: tuple[int, int, int, int]
    seconds: float
    pages: list[Image.Image]

    def index(self, elapsed: float) -> int:
        return int(elapsed // self.seconds) % len(self.pages) if self.pages else 0


@dataclass
class Scene:
    """Everything a frame needs until the data or the layout changes again."""

    key: object
    base: Image.Image
    clock: Clock | None = None
    clock_box: tuple[int, int, int, int] | None = None
    rotating: list[Rotating] = field(default_factory=list)
    data: ChannelData | None = None


class Painter:
    """Draws scenes of one picture size and orientation."""

    def __init__(
        self,
        config: Config,
        size: tuple[int, int],
        orientation: str,
        *,
        language: str | None = None,
    ) -> None:
        self.config = config
        self.size = size
        self.orientation = orientation
        self.language = language or config.live.language or config.templates.language
        design_w, _ = DESIGN[orientation]
        self.scale = size[0] / design_w
        self.locale = Locale(
            language=self.language,
            khmer_digits=config.templates.khmer_digits,
            timezone=config.election.timezone,
            time_format=config.templates.time_format,
            date_format=config.templates.date_format,
        )
        folders = [p for p in [config.path(config.templates.dir)] if p is not None]
        self.renderer = Renderer(
            folders, locale=self.locale, budget=Budget(seconds=config.templates.render_seconds)
        )
        self.template = LayoutTemplate(self.renderer, config.live.layout)
        # The bundled layout, for when the operator's has never worked (a broken file at start).
        bundled = Renderer([], locale=self.locale, budget=self.renderer.budget)
        self.fallback = LayoutTemplate(bundled, "live/channel.j2")
        self._on_fallback = False
        self.filters = make_filters(self.locale)
        self.logo = config.path(config.cards.logo) if config.cards.logo else None
        self._logo_image: Image.Image | None = None
        self._template_obj: object = None

    def template_changed(self) -> bool:
        """True when the layout file (or a file it includes) was edited since the last scene:
        the renderer starts a new version of the folders when any file it read changed."""
        self.renderer.refresh()
        try:
            current = self.renderer.env.get_template(self.template.name)
        except Exception:
            current = None
        return current is not self._template_obj

    def scene(self, data: ChannelData, focus: Focus | None = None) -> Scene:
        """Render the layout for `data` and draw its base image and rotating pages."""
        self.renderer.refresh()  # an edited layout (or include) is checked and used from now
        variables = layout_variables(
            self.config, data, orientation=self.orientation, language=self.language, focus=focus
        )
        try:
            self._template_obj = self.renderer.env.get_template(self.template.name)
        except Exception:
            self._template_obj = None
        try:
            layout = self.template.render(variables)
            self._on_fallback = False
        except LayoutError:
            if not self._on_fallback:
                log.error("live: drawing the bundled layout until %s works", self.template.name)
            self._on_fallback = True
            layout = self.fallback.render(variables)
        return self.draw(layout, data)

    def draw(self, layout: Layout, data: ChannelData | None = None) -> Scene:
        img = Image.new("RGB", self.size, layout.background)
        draw = ImageDraw.Draw(img)
        for shape in layout.box:
            draw.rectangle(self._rect(shape.box), fill=shape.color)
        for text in layout.text:
            self._text(img, text)
        if layout.logo is not None and self.logo is not None:
            self._paste_logo(img, self._rect(layout.logo.box))
        if layout.tally is not None:
            self._tally(img, layout.tally)
        if layout.progress is not None:
            self._progress(img, layout.progress)
        scene = Scene(key=object(), base=img, data=data)
        if layout.clock is not None:
            scene.clock = layout.clock
            scene.clock_box = self._rect(layout.clock.box)
            self._background(img, scene.clock_box, layout.clock.background)
        if layout.panel is not None:
            box = self._rect(layout.panel.box)
            self._background(img, box, layout.panel.background)
            pages = [self._panel_page(img, box, layout.panel, p) for p in layout.panel.pages]
            if not pages:
                pages = [self._empty(img, box, layout.panel.empty, layout.panel)]
            scene.rotating.append(Rotating(box, layout.panel.seconds, pages))
        if layout.ticker is not None:
            box = self._rect(layout.ticker.box)
            self._background(img, box, layout.ticker.background)
            scene.rotating.append(
                Rotating(box, layout.ticker.seconds, self._ticker_pages(img, box, layout.ticker))
            )
        return scene

    # -- helpers --

    def _rect(self, box: tuple[float, float, float, float]) -> tuple[int, int, int, int]:
        s = self.scale
        x, y, w, h = box
        return (round(x * s), round(y * s), round((x + w) * s), round((y + h) * s))

    def _px(self, size: float) -> int:
        return max(8, round(size * self.scale))

    @staticmethod
    def _background(img: Image.Image, rect: tuple[int, int, int, int], colour: str | None) -> None:
        if colour:
            ImageDraw.Draw(img).rectangle((rect[0], rect[1], rect[2] - 1, rect[3] - 1), colour)

    def _line(
        self,
        draw: ImageDraw.ImageDraw,
        rect: tuple[int, int, int, int],
        text: str,
        size: int,
        colour: str,
        *,
        bold: bool = False,
        align: str = "left",
        y: float | None = None,
    ) -> None:
        """One line of shaped text, cut to the box's width, vertically centred unless `y`."""
        x0, y0, x1, y1 = rect
        with _FONTS:
            shown = fit(text, size, max(1, x1 - x0), bold)
            width = text_width(shown, size, bold)
        if align == "right":
            x = x1 - width
        elif align == "center":
            x = x0 + (x1 - x0 - width) / 2
        else:
            x = x0
        top = y if y is not None else y0 + (y1 - y0 - size * 1.36) / 2
        with _FONTS:  # the data thread and the frame loop share the cached font objects
            draw_text(draw, (x, top), shown, size, colour, bold=bold)

    def _text(self, img: Image.Image, t: Text) -> None:
        rect = self._rect(t.box)
        self._background(img, rect, t.background)
        draw = ImageDraw.Draw(img)
        self._line(draw, rect, t.text, self._px(t.size), t.color, bold=t.bold, align=t.align)

    def _paste_logo(self, img: Image.Image, rect: tuple[int, int, int, int]) -> None:
        if self._logo_image is None:
            try:
                with Image.open(self.logo) as src:  # type: ignore[arg-type]
                    self._logo_image = src.convert("RGBA")
            except OSError as exc:
                raise CardError(f"cannot read the logo {self.logo}: {exc}") from None
        mark = self._logo_image.copy()
        mark.thumbnail((rect[2] - rect[0], rect[3] - rect[1]))
        img.paste(mark, (rect[0], rect[1]), mark)

    def _bars(
        self,
        draw: ImageDraw.ImageDraw,
        rect: tuple[int, int, int, int],
        rows: list[Bar],
        total: float,
        size: int,
        colour: str,
        muted: str,
        track: str,
        majority: float = 0,
    ) -> None:
        x0, y0, x1, y1 = rect
        if not rows:
            return
        row_h = (y1 - y0) / len(rows)
        size = min(size, max(8, int(row_h * 0.42)))
        bar_h = max(3, int(row_h * 0.22))
        total = total or max((r.value for r in rows), default=1) or 1
        for i, row in enumerate(rows):
            top = y0 + i * row_h
            label = row.label or f"{row.value:g}"
            with _FONTS:
                label_w = text_width(label, size, True)
            self._line(
                draw,
                (x0, int(top), int(x1 - label_w - size), int(top + size * 1.4)),
                row.name,
                size,
                colour,
                bold=True,
                y=top,
            )
            with _FONTS:
                draw_text(draw, (x1 - label_w, top), label, size, colour, bold=True)
            bar_y = int(top + size * 1.45)
            draw.rectangle((x0, bar_y, x1, bar_y + bar_h), fill=track)
            filled = x0 + (x1 - x0) * min(1.0, row.value / total)
            if filled > x0:
                draw.rectangle((x0, bar_y, int(filled), bar_y + bar_h), fill=row.color)
            if majority:
                mx = x0 + (x1 - x0) * min(1.0, majority / total)
                draw.line((mx, bar_y - 4, mx, bar_y + bar_h + 4), fill=colour, width=2)
            if row.detail and bar_y + bar_h + size < top + row_h:
                small = max(8, int(size * 0.7))
                self._line(
                    draw,
                    (x0, bar_y + bar_h + 2, x1, bar_y + bar_h + 2 + int(small * 1.4)),
                    row.detail,
                    small,
                    muted,
                    y=bar_y + bar_h + 3,
                )

    def _tally(self, img: Image.Image, t: Tally) -> None:
        rect = self._rect(t.box)
        self._background(img, rect, t.background)
        draw = ImageDraw.Draw(img)
        pad = self._px(14)
        size = self._px(t.size)
        x0, y0, x1, y1 = rect[0] + pad, rect[1] + pad, rect[2] - pad, rect[3] - pad
        head = int(size * 1.5)
        self._line(draw, (x0, y0, x1, y0 + head), t.title, size, t.color, bold=True)
        if t.majority_label:
            self._line(
                draw,
                (x0, y0, x1, y0 + head),
                t.majority_label,
                int(size * 0.8),
                t.color,
                align="right",
            )
        if not t.rows and t.empty:
            self._line(draw, (x0, y0 + head, x1, y1), t.empty, size, t.color, align="center")
        self._bars(
            draw,
            (x0, y0 + head + pad, x1, y1),
            t.rows,
            t.total,
            size,
            t.color,
            t.color,
            t.track,
            t.majority,
        )

    def _progress(self, img: Image.Image, p: Progress) -> None:
        rect = self._rect(p.box)
        self._background(img, rect, p.background)
        draw = ImageDraw.Draw(img)
        x0, y0, x1, y1 = rect
        size = self._px(p.size)
        self._line(draw, (x0, y0, x1, y0 + int(size * 1.4)), p.label, size, p.color, y=y0)
        bar_y = y0 + int(size * 1.5)
        bar_h = max(3, y1 - bar_y)
        draw.rectangle((x0, bar_y, x1, bar_y + bar_h), fill=p.track)
        filled = x0 + (x1 - x0) * p.value / 100
        if filled > x0:
            draw.rectangle((x0, bar_y, int(filled), bar_y + bar_h), fill=p.fill)

    def _panel_page(
        self, base: Image.Image, rect: tuple[int, int, int, int], panel: Panel, page: Page
    ) -> Image.Image:
        tile = base.crop(rect)
        draw = ImageDraw.Draw(tile)
        pad = self._px(14)
        size = self._px(panel.size)
        w, h = tile.size
        self._line(
            draw,
            (pad, pad, w - pad, pad + int(size * 1.5)),
            page.title,
            size,
            panel.color,
            bold=True,
        )
        sub_y = pad + int(size * 1.5)
        small = max(8, int(size * 0.8))
        self._line(
            draw, (pad, sub_y, w - pad, sub_y + int(small * 1.5)), page.subtitle, small, panel.muted
        )
        top = sub_y + int(small * 1.5) + pad
        self._bars(
            draw,
            (pad, top, w - pad, h - pad),
            page.rows,
            page.total,
            size,
            panel.color,
            panel.muted,
            panel.track,
        )
        return tile

    def _empty(
        self, base: Image.Image, rect: tuple[int, int, int, int], text: str, region: Any
    ) -> Image.Image:
        tile = base.crop(rect)
        if text:
            w, h = tile.size
            colour = getattr(region, "muted", None) or region.color
            self._line(
                ImageDraw.Draw(tile),
                (0, 0, w, h),
                text,
                self._px(region.size),
                colour,
                align="center",
            )
        return tile

    def _ticker_pages(
        self, base: Image.Image, rect: tuple[int, int, int, int], t: Ticker
    ) -> list[Image.Image]:
        size = self._px(t.size)
        pad = self._px(20)
        with _FONTS:
            label_w = int(text_width(t.label, size, True)) + 2 * pad if t.label else pad
        groups = [t.items[i : i + t.per_page] for i in range(0, len(t.items), t.per_page)]
        pages = []
        for group in groups or [[t.empty]]:
            tile = base.crop(rect)
            draw = ImageDraw.Draw(tile)
            w, h = tile.size
            if t.label:
                self._line(draw, (pad, 0, label_w, h), t.label, size, t.label_color, bold=True)
            line_h = (h - 2 * pad // 2) / max(1, len(group))
            for i, item in enumerate(group):
                y = pad // 2 + i * line_h
                self._line(draw, (label_w, int(y), w - pad, int(y + line_h)), item, size, t.color)
            pages.append(tile)
        return pages


class Compositor:
    """Turns a scene into the frame due now, redrawing only what changed since the last one."""

    def __init__(self, painter: Painter) -> None:
        self.painter = painter
        self.canvas: Image.Image | None = None
        self._scene_key: object = None
        self._shown: list[int] = []
        self._clock_text: str | None = None
        self.redraws = 0  # frames that differed from the one before

    def frame(self, scene: Scene, now: datetime, elapsed: float) -> tuple[Image.Image, bool]:
        """(the picture for this moment, whether it differs from the previous one)."""
        fresh = scene.key is not self._scene_key or self.canvas is None
        if fresh:
            self.canvas = scene.base.copy()
            self._scene_key = scene.key
            self._shown = [-1] * len(scene.rotating)
            self._clock_text = None
        canvas = self.canvas
        assert canvas is not None
        changed = fresh
        for i, region in enumerate(scene.rotating):
            index = region.index(elapsed)
            if region.pages and index != self._shown[i]:
                canvas.paste(region.pages[index], region.box[:2])
                self._shown[i] = index
                changed = True
        if scene.clock is not None and scene.clock_box is not None:
            text = self.painter.filters["time"](now, scene.clock.format)
            if text != self._clock_text:
                box = scene.clock_box
                canvas.paste(scene.base.crop(box), box[:2])
                draw = ImageDraw.Draw(canvas)
                self.painter._line(
                    draw,
                    box,
                    text,
                    self.painter._px(scene.clock.size),
                    scene.clock.color,
                    bold=scene.clock.bold,
                    align=scene.clock.align,
                )
                self._clock_text = text
                changed = True
        if changed:
            self.redraws += 1
        return canvas, changed


def logo_path(config: Config) -> Path | None:
    return config.path(config.cards.logo) if config.cards.logo else None
