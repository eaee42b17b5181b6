"""Rendering posts from the operators' Jinja templates, safely.

Templates are untrusted input. They run in Jinja's immutable sandbox with StrictUndefined: a
misspelt variable is an error and not an empty string, Python internals are out of reach, and
nothing can be modified. Each render is bounded in time and output size, so a template that loops
a million times is stopped and reported instead of stalling the daemon.

Files are looked up as `<language>/<platform>/<event kind>.j2`, then `<language>/default/<event
kind>.j2`; each first in the account's folder, then the configured folder, then the bundled
defaults, so operators override the defaults file by file. A language never falls back to
another: a Khmer account with no Khmer template holds its posts rather than post in English.

`refresh()` is the hot reload: once per cycle it notices edited files, checks the new version
with the lint callback, and switches to it only if it passes; otherwise the last good version
stays in use and the problem is reported (file and line) until the file is fixed.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from babel import Locale as BabelLocale
from babel.dates import format_date, format_time
from babel.numbers import NumberPattern, parse_pattern
from jinja2 import (
    ChoiceLoader,
    FileSystemLoader,
    StrictUndefined,
    Template,
    TemplateError,
    TemplateSyntaxError,
    UndefinedError,
)
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError
from jinja2.utils import Cycler, Joiner, Namespace

from broadcaster.context import View
from broadcaster.paths import DEFAULT_TEMPLATES

log = logging.getLogger(__name__)

# Platforms without a file of their own for an event kind use `<language>/default/<kind>.j2`.
FALLBACK = "default"
LANGUAGES = ("en", "ms", "km")
KHMER_DIGITS = str.maketrans("0123456789", "០១២៣៤៥៦៧៨៩")


class RenderError(Exception):
    """A template could not produce a post. `where` is `path:line` when known."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}")
        self.where = where
        self.message = message


class RenderLimitError(Exception):
    """A render ran out of time or produced too much (raised inside the template)."""


@dataclass(frozen=True, slots=True)
class Budget:
    seconds: float = 1.0
    max_chars: int = 100_000
    max_range: int = 10_000


class _Meter(threading.local):
    deadline: float = 0.0
    budget: Budget = Budget()
    ticks: int = 0

    def tick(self) -> None:
        self.ticks += 1
        if self.ticks & 0xFF == 0 and time.monotonic() > self.deadline:
            raise RenderLimitError(f"took longer than {self.budget.seconds:g} s")


_meter = _Meter()


def _bounded_range(*args: int) -> Iterator[int]:
    rng = range(*args)
    if len(rng) > _meter.budget.max_range:
        raise RenderLimitError(f"range of {len(rng)} items is over {_meter.budget.max_range}")
    for i in rng:
        _meter.tick()
        yield i


class PostEnvironment(ImmutableSandboxedEnvironment):
    """The immutable sandbox, bounded, with a fast path for our own read-only variables.

    A key of a `View` is data, never code, so `contest.name` is answered straight from the
    mapping; anything else (methods, other types) goes through the full sandbox checks.
    """

    intercepted_binops = frozenset(["*", "**", "%", "//"])

    def getattr(self, obj: Any, attribute: str) -> Any:
        _meter.tick()
        if type(obj) is View and attribute in obj:
            return obj[attribute]
        return super().getattr(obj, attribute)

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        _meter.tick()
        numbers = (int, float)
        if operator == "%" and not (isinstance(left, numbers) and isinstance(right, numbers)):
            raise SecurityError("% formatting is not allowed in templates; use the filters")
        if operator == "**" and (abs(right) > 64 if isinstance(right, numbers) else True):
            raise SecurityError("power too large")
        if operator == "*":
            seq, n = (left, right) if isinstance(right, int) else (right, left)
            sized = isinstance(seq, str | list | tuple) and isinstance(n, int)
            if sized and len(seq) * n > _meter.budget.max_chars:
                raise RenderLimitError("repetition would exceed the size limit")
        return super().call_binop(context, operator, left, right)


@dataclass(frozen=True, slots=True)
class Locale:
    """How numbers, percentages, dates and times are written for one account."""

    language: str = "en"
    khmer_digits: bool = False
    timezone: str = "UTC"
    time_format: str = "HH:mm"
    date_format: str = "long"

    def digits(self, text: str) -> str:
        return text.translate(KHMER_DIGITS) if self.khmer_digits else text


def make_filters(loc: Locale) -> dict[str, Callable[..., str]]:
    """The filters available to templates (documented in docs/templates.md)."""
    tz = ZoneInfo(loc.timezone)
    babel_locale = BabelLocale.parse(loc.language)
    patterns: dict[int, NumberPattern] = {}

    formatted: dict[tuple[int, type, float | int], str] = {}

    def decimal(value: float | int, decimals: int) -> str:
        # Babel's format_decimal parses its pattern and locale on every call; a post renders
        # dozens of numbers, and each event is rendered for every account: patterns are
        # prepared once, and recent results remembered.
        key = (decimals, type(value), value)
        try:
            cached = formatted.get(key)
        except TypeError:  # an unhashable value: let Babel say what it makes of it
            cached = None
            key = None  # type: ignore[assignment]
        if cached is not None:
            return cached
        pattern = patterns.get(decimals)
        if pattern is None:
            if decimals > 20:
                raise RenderLimitError("too many decimals")
            pattern = parse_pattern("#,##0." + "0" * decimals if decimals else "#,##0")
            patterns[decimals] = pattern
        text = pattern.apply(value, babel_locale)
        if key is not None:
            if len(formatted) > 20_000:
                formatted.clear()
            formatted[key] = text
        return text

    def number(value: Any, decimals: int | None = None) -> str:
        if value is None:
            return "-"
        if decimals is None:
            fractional = isinstance(value, float) and not value.is_integer()
            decimals = 1 if fractional else 0
        return loc.digits(decimal(value, int(decimals)))

    def pct(value: Any, decimals: int = 1) -> str:
        if value is None:
            return "-"
        return loc.digits(decimal(float(value), int(decimals)) + "%")

    def time_(value: datetime, pattern: str | None = None) -> str:
        return loc.digits(
            format_time(value.astimezone(tz), pattern or loc.time_format, locale=loc.language)
        )

    def date_(value: datetime, pattern: str | None = None) -> str:
        return loc.digits(
            format_date(value.astimezone(tz), pattern or loc.date_format, locale=loc.language)
        )

    def digits(value: Any) -> str:
        return loc.digits(str(value))

    return {"number": number, "pct": pct, "time": time_, "date": date_, "digits": digits}


_BLANK_RUNS = re.compile(r"\n{3,}")


def tidy(text: str) -> str:
    """Strip trailing spaces and surplus blank lines that template logic leaves behind."""
    lines = [line.rstrip() for line in text.strip().splitlines()]
    return _BLANK_RUNS.sub("\n\n", "\n".join(lines))


@dataclass(slots=True)
class _Loaded:
    template: Template
    source: str  # the file it came from
    mtime: int


LintFn = Callable[["Renderer", Template, str, str], None]


class Renderer:
    """Renders `<language>/<platform>/<kind>.j2` from a stack of folders, most specific first."""

    def __init__(
        self,
        folders: Sequence[Path] = (),
        *,
        locale: Locale | None = None,
        budget: Budget | None = None,
    ) -> None:
        self.locale = locale or Locale()
        self.budget = budget or Budget()
        self.folders = [*folders, DEFAULT_TEMPLATES]
        self.env = PostEnvironment(
            loader=ChoiceLoader([FileSystemLoader(str(f)) for f in self.folders]),
            undefined=StrictUndefined,
            autoescape=False,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=False,
            auto_reload=True,
        )
        self.env.filters.update(make_filters(self.locale))
        # Only harmless helpers: the default globals include lipsum (large output on demand).
        self.env.globals = {
            "range": _bounded_range,
            "namespace": Namespace,
            "cycler": Cycler,
            "joiner": Joiner,
        }
        self._good: dict[tuple[str, str], _Loaded] = {}
        self.problems: dict[tuple[str, str], RenderError] = {}
        self._reported: set[tuple[str, int]] = set()

    # -- lookup --

    def template_names(self, platform: str, kind: str) -> list[str]:
        lang = self.locale.language
        return [f"{lang}/{platform}/{kind}.j2", f"{lang}/{FALLBACK}/{kind}.j2"]

    def source_of(self, platform: str, kind: str) -> tuple[str, int] | None:
        """The file that provides this template now, and its modification time."""
        for name in self.template_names(platform, kind):
            for folder in self.folders:
                path = folder / name
                try:
                    return str(path), path.stat().st_mtime_ns
                except OSError:
                    continue
        return None

    # -- loading and hot reload --

    def preload(self, platform: str, kinds: Sequence[str], lint: LintFn | None = None) -> None:
        """Load (and check) the templates an account will use; problems land in `problems`."""
        for kind in kinds:
            self._load(platform, kind, lint)

    def refresh(self, lint: LintFn | None = None) -> list[tuple[str, str]]:
        """Pick up edited template files that pass `lint`. Returns the keys that changed."""
        changed = []
        for platform, kind in list({*self._good, *self.problems}):
            if self._load(platform, kind, lint):
                changed.append((platform, kind))
        return changed

    def _load(self, platform: str, kind: str, lint: LintFn | None) -> bool:
        key = (platform, kind)
        found = self.source_of(platform, kind)
        good = self._good.get(key)
        if found is not None and good is not None and (good.source, good.mtime) == found:
            return False
        if found is None:
            self._problem(key, RenderError(self.template_names(platform, kind)[0], "no template"))
            return False
        source, mtime = found
        if (source, mtime) in self._reported:
            return False  # this version was already checked and refused
        try:
            template = self.env.select_template(self.template_names(platform, kind))
            if lint is not None:
                lint(self, template, platform, kind)
        except TemplateSyntaxError as exc:
            where = f"{exc.filename or source}:{exc.lineno}"
            self._refuse(key, source, mtime, RenderError(where, f"syntax error: {exc.message}"))
            return False
        except TemplateError as exc:  # unknown filter or test, at compile time
            self._refuse(key, source, mtime, RenderError(source, str(exc)))
            return False
        except RenderError as exc:
            self._refuse(key, source, mtime, exc)
            return False
        except (SyntaxError, RecursionError, MemoryError) as exc:
            # Jinja compiles to Python; absurd nesting fails in Python's own compiler.
            detail = getattr(exc, "msg", None) or type(exc).__name__
            self._refuse(key, source, mtime, RenderError(source, f"template too complex: {detail}"))
            return False
        was_broken = key in self.problems
        self._good[key] = _Loaded(template, source, mtime)
        self.problems.pop(key, None)
        if good is not None or was_broken:
            log.info("template %s reloaded", source)
        return True

    def _refuse(self, key: tuple[str, str], source: str, mtime: int, error: RenderError) -> None:
        self._reported.add((source, mtime))
        keeping = key in self._good
        log.error(
            "template problem: %s%s",
            error,
            "; the last good version stays in use" if keeping else "; its posts are held",
        )
        self._problem(key, error)

    def _problem(self, key: tuple[str, str], error: RenderError) -> None:
        self.problems[key] = error

    # -- rendering --

    def render(self, platform: str, kind: str, variables: dict[str, Any]) -> str:
        """The tidied post text; RenderError (with path:line) on any template problem."""
        key = (platform, kind)
        loaded = self._good.get(key)
        if loaded is None:
            self._load(platform, kind, None)
            loaded = self._good.get(key)
            if loaded is None:
                raise self.problems.get(key) or RenderError(
                    self.template_names(platform, kind)[0], "no template"
                )
        return self.render_template(loaded.template, variables)

    def render_template(self, template: Template, variables: dict[str, Any]) -> str:
        budget = self.budget
        _meter.budget = budget
        _meter.deadline = time.monotonic() + budget.seconds
        _meter.ticks = 0
        filename = template.filename or template.name or "template"
        pieces: list[str] = []
        size = 0
        try:
            for piece in template.generate(variables):
                size += len(piece)
                if size > budget.max_chars:
                    raise RenderLimitError(f"output longer than {budget.max_chars} characters")
                if time.monotonic() > _meter.deadline:
                    raise RenderLimitError(f"took longer than {budget.seconds:g} s")
                pieces.append(piece)
        except RenderLimitError as exc:
            raise RenderError(_where(filename, exc), f"stopped: {exc}") from None
        except SecurityError as exc:
            raise RenderError(_where(filename, exc), f"not allowed: {exc}") from None
        except UndefinedError as exc:
            raise RenderError(_where(filename, exc), f"unknown variable: {exc.message}") from None
        except TemplateError as exc:
            raise RenderError(_where(filename, exc), str(exc)) from None
        except RecursionError:
            raise RenderError(filename, "stopped: recursion too deep") from None
        except Exception as exc:  # a filter given nonsense, a division by zero...
            raise RenderError(_where(filename, exc), f"{type(exc).__name__}: {exc}") from None
        text = tidy("".join(pieces))
        if not text:
            raise RenderError(filename, "the template produced an empty post")
        return text


def _where(filename: str, exc: BaseException) -> str:
    """`file:line` of the template line being run when `exc` was raised (Jinja maps template
    lines into the traceback), or the file alone."""
    tb = exc.__traceback__
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == filename:
            line = tb.tb_lineno
        tb = tb.tb_next
    return f"{filename}:{line}" if line else filename
