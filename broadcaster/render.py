"""Rendering posts from the operators' Jinja templates, safely.

Templates are untrusted input: they run in Jinja's sandbox with StrictUndefined, so a misspelt
variable is an error and not an empty string, and Python internals are out of reach. Template
files are looked up as `<platform>/<event kind>.j2`, then `default/<event kind>.j2`; each first in
the account's folder, then in the configured folder, then in the bundled defaults, so operators
override the defaults file by file.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2 import (
    ChoiceLoader,
    FileSystemLoader,
    StrictUndefined,
    TemplateError,
    TemplateNotFound,
    TemplateSyntaxError,
    UndefinedError,
)
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

from broadcaster.context import View
from broadcaster.paths import DEFAULT_TEMPLATES

# Platforms without a file of their own for an event kind use `default/<kind>.j2`.
FALLBACK = "default"


class RenderError(Exception):
    """A template could not produce a post. `where` is `path:line` when known."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}")
        self.where = where
        self.message = message


def fmt_number(value: Any) -> str:
    """1234567 -> '1,234,567'; None -> '-'."""
    if value is None:
        return "-"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.1f}"
    return f"{int(value):,}"


def fmt_pct(value: Any, digits: int = 1) -> str:
    """52.345 -> '52.3%'; None -> '-'."""
    if value is None:
        return "-"
    return f"{float(value):.{int(digits)}f}%"


def fmt_time(value: datetime, pattern: str = "%H:%M") -> str:
    return value.strftime(pattern)


def fmt_date(value: datetime, pattern: str = "%d %b %Y") -> str:
    return value.strftime(pattern)


_BLANK_RUNS = re.compile(r"\n{3,}")


def tidy(text: str) -> str:
    """Strip trailing spaces and surplus blank lines that template logic leaves behind."""
    lines = [line.rstrip() for line in text.strip().splitlines()]
    return _BLANK_RUNS.sub("\n\n", "\n".join(lines))


class PostEnvironment(ImmutableSandboxedEnvironment):
    """The sandbox, with a fast path for our own read-only variables.

    A key of a `View` is data, never code, so `contest.name` is answered straight from the
    mapping; anything else (methods, other types) goes through the full sandbox checks, which
    refuse internals such as `__class__` and any method that would modify a value.
    """

    def getattr(self, obj: Any, attribute: str) -> Any:
        if type(obj) is View and attribute in obj:
            return obj[attribute]
        return super().getattr(obj, attribute)


class Renderer:
    """Renders `<platform>/<kind>.j2` from a stack of template folders, most specific first."""

    def __init__(self, folders: Sequence[Path] = ()) -> None:
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
        # Templates resolved once per cycle (see refresh), not once per post.
        self._selected: dict[tuple[str, str], Any] = {}
        self.env.filters.update(number=fmt_number, pct=fmt_pct, time=fmt_time, date=fmt_date)

    def preload(self, platform: str, kinds: list[str]) -> list[RenderError]:
        """Compile the templates an account will use, so a syntax error shows at start-up and
        the first busy cycle does not pay for compiling. Returns the problems found."""
        problems = []
        for kind in kinds:
            try:
                self._selected[(platform, kind)] = self.env.select_template(
                    self.template_names(platform, kind)
                )
            except TemplateNotFound:
                problems.append(RenderError(f"{platform}/{kind}.j2", "no template"))
            except TemplateSyntaxError as exc:
                problems.append(
                    RenderError(f"{exc.filename}:{exc.lineno}", f"syntax error: {exc.message}")
                )
        return problems

    def refresh(self) -> None:
        """Forget resolved templates, so edited files are picked up (called once per cycle)."""
        self._selected.clear()

    def template_names(self, platform: str, kind: str) -> list[str]:
        """Candidates in lookup order: the platform's own file, then the shared long form."""
        return [f"{platform}/{kind}.j2", f"{FALLBACK}/{kind}.j2"]

    def source_path(self, name: str) -> str:
        for folder in self.folders:
            candidate = folder / name
            if candidate.is_file():
                return str(candidate)
        return name

    def render(self, platform: str, kind: str, variables: dict[str, Any]) -> str:
        """The tidied post text; RenderError (with path:line) on any template problem."""
        names = self.template_names(platform, kind)
        name = names[0]
        try:
            template = self._selected.get((platform, kind))
            if template is None:
                template = self.env.select_template(names)
                self._selected[(platform, kind)] = template
        except TemplateNotFound:
            raise RenderError(name, f"no template for {platform} {kind} posts") from None
        except TemplateSyntaxError as exc:
            raise RenderError(
                f"{exc.filename or self.source_path(name)}:{exc.lineno}",
                f"syntax error: {exc.message}",
            ) from None
        try:
            text = template.render(variables)
        except SecurityError as exc:
            raise RenderError(self._where(template, exc), f"not allowed: {exc}") from None
        except UndefinedError as exc:
            raise RenderError(
                self._where(template, exc), f"unknown variable: {exc.message}"
            ) from None
        except TemplateError as exc:
            raise RenderError(self._where(template, exc), str(exc)) from None
        except Exception as exc:  # a filter given nonsense, a division by zero...
            raise RenderError(self._where(template, exc), f"{type(exc).__name__}: {exc}") from None
        text = tidy(text)
        if not text:
            raise RenderError(template.filename or name, "the template produced an empty post")
        return text

    @staticmethod
    def _where(template: Any, exc: BaseException) -> str:
        filename = template.filename or template.name
        line = _template_line(exc, filename)
        return f"{filename}:{line}" if line else filename


def _template_line(exc: BaseException, filename: str) -> int | None:
    """The template line being run when `exc` was raised (Jinja maps it in the traceback)."""
    tb = exc.__traceback__
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == filename:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line
