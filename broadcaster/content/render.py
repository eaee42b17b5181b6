"""Rendering posts from the operators' Jinja templates, safely.

Templates are untrusted input. They run in a bounded, immutable Jinja sandbox
(broadcaster/content/sandbox.py) with StrictUndefined: a misspelt variable is an error and not an
empty string, Python internals are out of reach, nothing can be modified, and no operator, filter or
format can take more than its share of time or memory; a template that tries is stopped and
reported instead of stalling the daemon.

Files are looked up as `<language>/<platform>/<event kind>.j2`, then `<language>/default/<event
kind>.j2`; each first in the account's folder, then the configured folder, then the bundled
defaults, so operators override the defaults file by file. A language never falls back to
another: a Khmer account with no Khmer template holds its posts rather than post in English.
Only plain files inside those folders are read (broadcaster/content/templatefiles.py).

`refresh()` is the hot reload: once per cycle it notices any change in the files the templates
were read from (an edit, a new override file, an edited include), checks every template again
with the lint callback, and switches each one that passes to the new version; one that fails
keeps its last good version (with the files it included) and the problem is reported (file and
line) until it is fixed.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from babel import Locale as BabelLocale
from babel.dates import format_date, format_time
from babel.numbers import NumberPattern, parse_pattern
from jinja2 import (
    Environment,
    StrictUndefined,
    Template,
    TemplateError,
    TemplatesNotFound,
    TemplateSyntaxError,
    UndefinedError,
)
from jinja2.sandbox import SecurityError
from jinja2.utils import Cycler, Joiner, Namespace

from broadcaster.content.compiled import COMPILED, template_facts
from broadcaster.content.plurals import PLURAL_FORMS, plural_text, shorten_words, x_weight
from broadcaster.content.sandbox import (
    Budget,
    PostEnvironment,
    RenderLimitError,
    bounded_range,
    metered,
)
from broadcaster.content.templatefiles import ConfinedLoader, Forbidden, Identity, TemplateRefused
from broadcaster.core.paths import DEFAULT_TEMPLATES
from broadcaster.domain.status import label as status_label

__all__ = [
    "Budget",
    "Forbidden",
    "Locale",
    "RenderError",
    "RenderLimitError",
    "Renderer",
    "make_filters",
    "tidy",
]

log = logging.getLogger(__name__)

# Platforms without a file of their own for an event kind use `<language>/default/<kind>.j2`.
FALLBACK = "default"
FORMATTED_KEPT = 20_000  # numbers formatted, per locale, kept for reuse (least recently used go)
DATES_KEPT = 256  # times and dates formatted, per locale
LANGUAGES = ("en", "ms", "km")
KHMER_DIGITS = str.maketrans("0123456789", "០១២៣៤៥៦៧៨៩")


class RenderError(Exception):
    """A template could not produce a post. `where` is `path:line` when known."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}")
        self.where = where
        self.message = message


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


class _Formats:
    """Numbers, times and dates written in one locale through Babel, with what was written
    kept for reuse: Babel's format_decimal parses its pattern and locale on every call, a post
    renders dozens of numbers and each event is rendered for every account, so patterns are
    prepared once and the most recently used results remembered (the least recently used
    make room); most times and dates in posts are the snapshot's, one per snapshot."""

    def __init__(self, loc: Locale) -> None:
        self.loc = loc
        self.tz = ZoneInfo(loc.timezone)
        self.babel = BabelLocale.parse(loc.language)
        self.patterns: dict[int, NumberPattern] = {}
        self.formatted = functools.lru_cache(maxsize=FORMATTED_KEPT)(self._apply)
        self.time_of = functools.lru_cache(maxsize=DATES_KEPT)(self._time)
        self.date_of = functools.lru_cache(maxsize=DATES_KEPT)(self._date)

    def pattern_for(self, decimals: int) -> NumberPattern:
        pattern = self.patterns.get(decimals)
        if pattern is None:
            if decimals > 20:
                raise RenderLimitError("too many decimals")
            pattern = parse_pattern("#,##0." + "0" * decimals if decimals else "#,##0")
            self.patterns[decimals] = pattern
        return pattern

    def _apply(self, decimals: int, is_float: bool, value: float | int) -> str:
        # `is_float` keeps 1 and 1.0 (equal, so one cache key otherwise) apart.
        return self.pattern_for(decimals).apply(value, self.babel)

    def decimal(self, value: float | int, decimals: int) -> str:
        try:
            hash(value)
        except TypeError:  # an unhashable value: let Babel say what it makes of it
            return self.pattern_for(decimals).apply(value, self.babel)
        return self.formatted(decimals, isinstance(value, float), value)

    def _time(self, value: datetime, pattern: str) -> str:
        return self.loc.digits(
            format_time(value.astimezone(self.tz), pattern, locale=self.loc.language)
        )

    def _date(self, value: datetime, pattern: str) -> str:
        return self.loc.digits(
            format_date(value.astimezone(self.tz), pattern, locale=self.loc.language)
        )

    def time(self, value: datetime, pattern: str | None) -> str:
        pattern = pattern or self.loc.time_format
        if isinstance(value, datetime) and isinstance(pattern, str):
            return self.time_of(value, pattern)
        return self._time(value, pattern)  # not a time: Babel's own error

    def date(self, value: datetime, pattern: str | None) -> str:
        pattern = pattern or self.loc.date_format
        if isinstance(value, datetime) and isinstance(pattern, str):
            return self.date_of(value, pattern)
        return self._date(value, pattern)


def make_filters(loc: Locale) -> dict[str, Callable[..., str]]:
    """The filters available to templates (documented in docs/templates.md)."""
    formats = _Formats(loc)
    decimal = formats.decimal

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
        return formats.time(value, pattern)

    def date_(value: datetime, pattern: str | None = None) -> str:
        return formats.date(value, pattern)

    def digits(value: Any) -> str:
        return loc.digits(str(value))

    def label(value: Any) -> str:
        # The words for a results stage or a contest state: one place for posts, cards and
        # the live channel (broadcaster/domain/status.py).
        try:
            return status_label(str(value), loc.language)
        except KeyError:
            raise ValueError(f"label: no words for {str(value)[:40]!r}") from None

    def plural(value: Any, **forms: str) -> str:
        # The form CLDR's plural rules choose for the number in the account's language (one,
        # other...; Malay and Khmer have only `other`), with `#` replaced by the number.
        unknown = set(forms) - PLURAL_FORMS
        if unknown:
            raise ValueError(f"plural: unknown form {sorted(unknown)[0]!r}")
        if "other" not in forms:
            raise ValueError('plural: the "other" form is required')
        return plural_text(value, forms, loc.language, number)

    def shorten(value: Any, most: int = 40, weighted: bool = False) -> str:
        # weighted: count the way X does (Khmer and most non-Latin scripts count double).
        return shorten_words(str(value), int(most), x_weight if weighted else None)

    return {
        "number": number,
        "pct": pct,
        "time": time_,
        "date": date_,
        "digits": digits,
        "label": label,
        "plural": plural,
        "shorten": shorten,
    }


_BLANK_RUNS = re.compile(r"\n{3,}")


def tidy(text: str) -> str:
    """Strip trailing spaces and surplus blank lines that template logic leaves behind."""
    lines = [line.rstrip() for line in text.strip().splitlines()]
    return _BLANK_RUNS.sub("\n\n", "\n".join(lines))


class _Generation:
    """One version of the template folders: the files read from them, and the templates
    compiled from those. Nothing in it changes once read; a change makes a new one."""

    def __init__(self, renderer: Renderer) -> None:
        self.loader = ConfinedLoader(renderer.folders, forbidden=renderer.forbidden)
        self.env = PostEnvironment(
            loader=self.loader,
            undefined=StrictUndefined,
            autoescape=False,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=False,
            auto_reload=False,
            bytecode_cache=COMPILED,  # each file compiled once, whatever the environments
        )
        self.env.filters.update(renderer.filters)
        # Only harmless helpers: the default globals include lipsum (large output on demand).
        self.env.globals = {
            "range": bounded_range,
            "namespace": Namespace,
            "cycler": Cycler,
            "joiner": Joiner,
        }


@dataclass(slots=True)
class _Loaded:
    template: Template
    source: str  # the file it came from
    identity: Identity  # that file, as it was when read
    generation: _Generation  # what its includes resolve against
    # Whether its text can depend on the account it is rendered for: when not, one render of
    # an event serves every account that uses this template (Renderer.render's memo).
    reads_account: bool = True


def reads_variable(env: Environment, name: str, variable: str) -> bool:
    """Whether template `name`, or any template it includes, imports or extends, looks up
    `variable` in its context. True whenever that cannot be told for certain: a template
    named at render time, or one that cannot be read or parsed."""
    seen: set[str] = set()
    todo = [name]
    try:
        while todo:
            current = todo.pop()
            if current in seen:
                continue
            seen.add(current)
            if env.loader is None:
                return True
            source, _, _ = env.loader.get_source(env, current)
            facts = template_facts(env, source, current)
            if variable in facts.undeclared:
                return True
            for ref in facts.referenced:
                if ref is None:
                    return True
                todo.append(ref)
    except Exception:  # unreadable here means unknown, and unknown means "it may"
        return True
    return False


LintFn = Callable[["Renderer", Template, str, str], None]


class Renderer:
    """Renders `<language>/<platform>/<kind>.j2` from a stack of folders, most specific first.

    `forbidden` names files no template may read even through a hard link (the secrets file and
    the token store)."""

    def __init__(
        self,
        folders: Sequence[Path] = (),
        *,
        locale: Locale | None = None,
        budget: Budget | None = None,
        forbidden: Sequence[Forbidden] = (),
    ) -> None:
        self.locale = locale or Locale()
        self.budget = budget or Budget()
        self.folders = [*(Path(f) for f in folders), DEFAULT_TEMPLATES]
        self.forbidden = list(forbidden)
        self.filters = make_filters(self.locale)
        self._generation = _Generation(self)
        self._good: dict[tuple[str, str], _Loaded] = {}
        self.problems: dict[tuple[str, str], RenderError] = {}
        self._checked: set[tuple[str, str]] = set()  # against the current generation

    @property
    def env(self) -> PostEnvironment:
        """The environment of the current version of the folders."""
        return self._generation.env

    # -- lookup --

    def template_names(self, platform: str, kind: str) -> list[str]:
        lang = self.locale.language
        return [f"{lang}/{platform}/{kind}.j2", f"{lang}/{FALLBACK}/{kind}.j2"]

    def source_of(self, platform: str, kind: str) -> tuple[str, int] | None:
        """The file that provides this template now, and its modification time."""
        for name in self.template_names(platform, kind):
            found = self._generation.loader.resolve(name)
            if found is not None:
                return str(found[0]), found[1]
        return None

    # -- loading and hot reload --

    def preload(self, platform: str, kinds: Sequence[str], lint: LintFn | None = None) -> None:
        """Load (and check) the templates an account will use; problems land in `problems`.
        Never raises: whatever goes wrong makes that template broken, not the caller."""
        for kind in kinds:
            if (platform, kind) in self._checked:
                continue
            self._load(platform, kind, lint)

    def refresh(self, lint: LintFn | None = None) -> list[tuple[str, str]]:
        """Pick up changed template files: when any file a template was read from changed (or
        a new override appeared), check every template again and switch those that pass
        `lint`. Returns the keys that switched."""
        changed = self._generation.loader.changed()
        if not changed:
            return []
        shown = ", ".join(sorted(changed)[:5]) + (" ..." if len(changed) > 5 else "")
        log.info("template files changed (%s): checking every template again", shown)
        self._generation = _Generation(self)
        self._checked.clear()
        switched = []
        for platform, kind in sorted({*self._good, *self.problems}):
            if self._load(platform, kind, lint):
                switched.append((platform, kind))
        return switched

    def _load(self, platform: str, kind: str, lint: LintFn | None) -> bool:
        """Load and check one template in the current version of the folders; True when it
        passed and is now the one in use. Never raises."""
        try:
            return self._try_load(platform, kind, lint)
        except Exception as exc:  # a last net: _try_load already reports template problems
            where = self.template_names(platform, kind)[0]
            self._refuse((platform, kind), RenderError(where, f"cannot be checked: {exc!r}"))
            return False

    def _try_load(self, platform: str, kind: str, lint: LintFn | None) -> bool:
        key = (platform, kind)
        names = self.template_names(platform, kind)
        generation = self._generation
        self._checked.add(key)
        previous = self._good.get(key)
        try:
            template = generation.env.select_template(names)
            if lint is not None:
                lint(self, template, platform, kind)
        except Exception as exc:  # whatever it is, the template is broken, not the caller
            self._refuse(key, self._problem(platform, kind, exc))
            return False
        source = template.filename or names[0]
        identity = generation.loader.identity(template.name or "")
        reads_account = reads_variable(generation.env, template.name or names[0], "account")
        self._good[key] = _Loaded(template, source, identity, generation, reads_account)
        was_broken = self.problems.pop(key, None) is not None
        if was_broken or (previous and (previous.source, previous.identity) != (source, identity)):
            log.info("template %s reloaded", source)
        return True

    def _problem(self, platform: str, kind: str, exc: Exception) -> RenderError:
        """What to report for a template that could not be loaded or failed its check."""
        found = self.source_of(platform, kind)
        source = found[0] if found else self.template_names(platform, kind)[0]
        if isinstance(exc, RenderError):
            return exc
        if isinstance(exc, TemplatesNotFound):
            return RenderError(self.template_names(platform, kind)[0], "no template")
        if isinstance(exc, TemplateRefused):
            return RenderError(exc.path, f"refused: {exc.why}")
        if isinstance(exc, TemplateSyntaxError):
            where = f"{exc.filename or source}:{exc.lineno}"
            return RenderError(where, f"syntax error: {exc.message}")
        if isinstance(exc, TemplateError):  # unknown filter or test, at compile time
            return RenderError(source, _brief(str(exc)))
        if isinstance(exc, SyntaxError | RecursionError | MemoryError):
            # Jinja compiles to Python; absurd nesting fails in Python's own compiler.
            detail = getattr(exc, "msg", None) or type(exc).__name__
            return RenderError(source, f"template too complex: {detail}")
        return RenderError(source, f"cannot be used: {type(exc).__name__}: {_brief(str(exc))}")

    def _refuse(self, key: tuple[str, str], error: RenderError) -> None:
        keeping = key in self._good
        log.error(
            "template problem: %s%s",
            error,
            "; the last good version stays in use" if keeping else "; its posts are held",
        )
        self.problems[key] = error

    # -- rendering --

    def render(
        self,
        platform: str,
        kind: str,
        variables: dict[str, Any],
        *,
        memo: dict[Any, str | RenderError] | None = None,
        memo_key: str | None = None,
    ) -> str:
        """The tidied post text; RenderError (with path:line) on any template problem.

        With a `memo` (the caller's, kept while `variables` for `memo_key` stay the same), a
        template that does not read `account` is rendered once per `memo_key`: the other
        accounts using it get the same text, or the same error."""
        key = (platform, kind)
        loaded = self._good.get(key)
        if loaded is None:
            if key not in self._checked:
                self._load(platform, kind, None)
                loaded = self._good.get(key)
            if loaded is None:
                raise self.problems.get(key) or RenderError(
                    self.template_names(platform, kind)[0], "no template"
                )
        if memo is None or memo_key is None or loaded.reads_account:
            return self.render_template(loaded.template, variables)
        slot = (loaded.template, memo_key)
        done = memo.get(slot)
        if done is None:
            try:
                done = self.render_template(loaded.template, variables)
            except RenderError as exc:
                done = exc
            memo[slot] = done
        if isinstance(done, RenderError):
            raise RenderError(done.where, done.message)
        return done

    def render_template(self, template: Template, variables: dict[str, Any]) -> str:
        budget = self.budget
        filename = template.filename or template.name or "template"
        pieces: list[str] = []
        size = 0
        try:
            with metered(budget):
                for piece in template.generate(variables):
                    size += len(piece)
                    if size > budget.max_chars:
                        raise RenderLimitError(f"output longer than {budget.max_chars} characters")
                    pieces.append(piece)
        except RenderLimitError as exc:
            raise RenderError(_where(filename, exc), f"stopped: {exc}") from None
        except SecurityError as exc:
            raise RenderError(_where(filename, exc), f"not allowed: {_brief(str(exc))}") from None
        except UndefinedError as exc:
            raise RenderError(_where(filename, exc), f"unknown variable: {exc.message}") from None
        except TemplateError as exc:
            raise RenderError(_where(filename, exc), _brief(str(exc))) from None
        except RecursionError:
            raise RenderError(filename, "stopped: recursion too deep") from None
        except Exception as exc:  # a filter given nonsense, a division by zero...
            message = f"{type(exc).__name__}: {_brief(str(exc))}"
            raise RenderError(_where(filename, exc), message) from None
        text = tidy("".join(pieces))
        if not text:
            raise RenderError(filename, "the template produced an empty post")
        return text


def _brief(text: str, most: int = 300) -> str:
    """An error's text cut to a readable length: it may quote what the template made."""
    return text if len(text) <= most else text[: most - 1] + "…"


def _where(filename: str, exc: BaseException) -> str:
    """`file:line` of the template line being run when `exc` was raised: the innermost one,
    which may be in an included file (Jinja maps template lines into the traceback, in frames
    of their own), or the file alone."""
    tb = exc.__traceback__
    where = None
    while tb is not None:
        frame = tb.tb_frame
        if "__jinja_exception__" in frame.f_globals or frame.f_code.co_filename == filename:
            where = f"{frame.f_code.co_filename}:{tb.tb_lineno}"
        tb = tb.tb_next
    return where or filename
