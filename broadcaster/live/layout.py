"""The channel's layout: an operator-editable Jinja template that writes a TOML description of
the screen, rendered in the same sandbox as the post templates.

The template (`live/channel.j2`, looked up in `[templates] dir` and then the bundled folder, like
every post template) decides where each region goes, its colours and every word on screen; the
code draws the regions (bars, the majority line, the ticker, the rotating panel, the clock).
Coordinates are in design units: 1280 x 720 for the landscape picture, 720 x 1280 for portrait,
scaled to the configured size. A template that fails (Jinja error, bad TOML, a wrong field) is
reported with its file and what is wrong, and the last good layout stays on screen.
"""

from __future__ import annotations

import logging
import tomllib
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from broadcaster.content.render import Renderer, RenderError

log = logging.getLogger(__name__)

Colour = str  # "#RRGGBB"
COLOUR = r"^#[0-9A-Fa-f]{6}$"
DESIGN = {"landscape": (1280, 720), "portrait": (720, 1280)}


class _Region(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    x: float = Field(ge=0)
    y: float = Field(ge=0)
    w: float = Field(gt=0)
    h: float = Field(gt=0)

    @property
    def box(self) -> tuple[float, float, float, float]:
        return (self.x, self.y, self.w, self.h)


class Box(_Region):
    color: Colour = Field(pattern=COLOUR)


class Text(_Region):
    text: str
    size: float = Field(default=24, gt=0)
    color: Colour = Field(default="#FFFFFF", pattern=COLOUR)
    bold: bool = False
    align: Literal["left", "center", "right"] = "left"
    background: Colour | None = Field(default=None, pattern=COLOUR)


class Clock(_Region):
    format: str = "HH:mm:ss"  # a CLDR time pattern, as the `time` filter takes
    size: float = Field(default=28, gt=0)
    color: Colour = Field(default="#FFFFFF", pattern=COLOUR)
    bold: bool = True
    align: Literal["left", "center", "right"] = "right"
    background: Colour | None = Field(default=None, pattern=COLOUR)


class Bar(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    value: float = Field(ge=0)  # seats, or a share in %
    label: str = ""  # drawn at the right end of the row (default: the value)
    detail: str = ""  # a smaller line under the name
    color: Colour = Field(default="#1F4E79", pattern=COLOUR)


class Tally(_Region):
    title: str = ""
    rows: list[Bar] = Field(default_factory=list)
    total: float = Field(default=0, ge=0)  # the full length of a bar (all seats)
    majority: float = Field(default=0, ge=0)  # where the majority line goes (0: none)
    majority_label: str = ""
    empty: str = ""  # shown when no row has seats yet
    size: float = Field(default=24, gt=0)
    color: Colour = Field(default="#FFFFFF", pattern=COLOUR)
    track: Colour = Field(default="#33475B", pattern=COLOUR)
    background: Colour | None = Field(default=None, pattern=COLOUR)


class Page(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    title: str = ""
    subtitle: str = ""
    rows: list[Bar] = Field(default_factory=list)
    total: float = Field(default=100, gt=0)


class Panel(_Region):
    """Pages shown in turn, `seconds` each (contests in progress)."""

    pages: list[Page] = Field(default_factory=list)
    seconds: float = Field(default=8, ge=1)
    empty: str = ""  # shown when there are no pages
    size: float = Field(default=22, gt=0)
    color: Colour = Field(default="#FFFFFF", pattern=COLOUR)
    muted: Colour = Field(default="#A9B8C6", pattern=COLOUR)
    track: Colour = Field(default="#33475B", pattern=COLOUR)
    background: Colour | None = Field(default=None, pattern=COLOUR)


class Ticker(_Region):
    """The latest calls, a few at a time, changing every `seconds`."""

    label: str = ""
    items: list[str] = Field(default_factory=list)
    per_page: int = Field(default=2, ge=1, le=10)
    seconds: float = Field(default=5, ge=1)
    empty: str = ""
    size: float = Field(default=22, gt=0)
    color: Colour = Field(default="#FFFFFF", pattern=COLOUR)
    label_color: Colour = Field(default="#FFD166", pattern=COLOUR)
    background: Colour | None = Field(default=None, pattern=COLOUR)


class Progress(_Region):
    value: float = Field(default=0, ge=0, le=100)
    label: str = ""
    size: float = Field(default=20, gt=0)
    color: Colour = Field(default="#FFFFFF", pattern=COLOUR)
    fill: Colour = Field(default="#FFD166", pattern=COLOUR)
    track: Colour = Field(default="#33475B", pattern=COLOUR)
    background: Colour | None = Field(default=None, pattern=COLOUR)


class Logo(_Region):
    pass


class Layout(BaseModel):
    """What the layout template produces (validated; unknown keys are errors)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    background: Colour = Field(default="#0B1F33", pattern=COLOUR)
    box: list[Box] = Field(default_factory=list)
    text: list[Text] = Field(default_factory=list)
    logo: Logo | None = None
    clock: Clock | None = None
    tally: Tally | None = None
    panel: Panel | None = None
    ticker: Ticker | None = None
    progress: Progress | None = None


class LayoutError(Exception):
    """The layout template produced nothing usable; `where` is the template file (and line)."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}")
        self.where = where
        self.message = message


class LayoutTemplate:
    """Renders the layout template with the post templates' sandbox, keeping the last good one."""

    def __init__(self, renderer: Renderer, name: str) -> None:
        self.renderer = renderer
        self.name = name
        self.last_good: Layout | None = None
        self.problem: LayoutError | None = None
        self._reported: str | None = None

    def render(self, variables: dict[str, Any]) -> Layout:
        """A layout for these variables: the template's, or the last good one if it fails now.
        Raises LayoutError only when there has never been a good one."""
        try:
            layout = self._render(variables)
        except LayoutError as exc:
            self.problem = exc
            if str(exc) != self._reported:  # once per distinct problem, not every frame
                self._reported = str(exc)
                keeping = "; the last good layout stays on screen" if self.last_good else ""
                log.error("live layout problem: %s%s", exc, keeping)
            if self.last_good is None:
                raise
            return self.last_good
        if self.problem is not None:
            log.info("live layout %s works again", self.name)
        self.problem = None
        self._reported = None
        self.last_good = layout
        return layout

    def _render(self, variables: dict[str, Any]) -> Layout:
        env = self.renderer.env
        try:
            template = env.get_template(self.name)
        except Exception as exc:  # not found, syntax error: Jinja names the file and line
            lineno = getattr(exc, "lineno", None)
            where = self.name + (f":{lineno}" if lineno else "")
            message = f"{type(exc).__name__}: {getattr(exc, 'message', exc)}"
            raise LayoutError(where, message) from None
        source = template.filename or self.name
        try:
            text = self.renderer.render_template(template, variables)
        except RenderError as exc:
            raise LayoutError(exc.where, exc.message) from None
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise LayoutError(source, f"the layout it wrote is not valid TOML ({exc})") from None
        try:
            return Layout.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            loc = ".".join(str(p) for p in first["loc"]) or "(top level)"
            problem = "unknown key" if first["type"] == "extra_forbidden" else first["msg"]
            more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
            raise LayoutError(source, f"{loc}: {problem}{more}") from None
