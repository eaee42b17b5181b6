"""The bounded Jinja sandbox that operators' templates run in.

Jinja's immutable sandbox keeps templates away from Python's internals and from changing
anything. This module also keeps a template from using up the daemon, whatever it is written to
do: every operator on numbers, strings and lists is checked *before* it is computed (the size of
its operands and of its result), every width a format or a filter or string method can be given
is bounded, the text a render makes along the way is counted, and the time limit is checked at
every step that can repeat (each operator, call, filter, loop turn, output, and attribute of
anything but our own read-only data). Nothing in a template is evaluated when it is compiled,
so loading a template can never run it.

A render's limits (`Budget`) are set by `metered()`, around each render; outside one, the
default limits apply with no time limit.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import math
import operator
import re
import threading
import time
import types
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Set, ValuesView
from dataclasses import dataclass
from typing import Any

from jinja2 import nodes, pass_eval_context
from jinja2.compiler import CodeGenerator, Frame
from jinja2.filters import make_attrgetter
from jinja2.nodes import EvalContext
from jinja2.runtime import Context, Undefined, markup_join, str_join
from jinja2.sandbox import (
    ImmutableSandboxedEnvironment,
    SandboxedEscapeFormatter,
    SandboxedFormatter,
    SecurityError,
)
from jinja2.utils import Namespace
from markupsafe import Markup

from broadcaster.content.context import View


class RenderLimitError(Exception):
    """A render ran out of time or would have made too much (raised inside the template)."""


@dataclass(frozen=True, slots=True)
class Budget:
    """What one render may use."""

    seconds: float = 1.0
    max_chars: int = 100_000  # the post, and any one string, list or format width on the way
    max_range: int = 10_000  # items of range()
    max_int_bits: int = 1024  # any number (about 10**308)
    max_work: int = 5_000_000  # characters of text made along the way, all told


class _Meter(threading.local):
    """The limits of the render running on this thread, and what it has used so far."""

    def __init__(self) -> None:
        self.budget = Budget()
        self.deadline = math.inf
        self.work = 0

    def size(self, n: int, what: str) -> None:
        """Refuse a string or list of `n` characters or items before it is made."""
        if n > self.budget.max_chars:
            raise RenderLimitError(
                f"{what} would be {n:,} long; the limit is {self.budget.max_chars:,}"
            )

    def charge(self, n: int) -> None:
        """Count `n` characters (or items) made; refuse once the render has made too many."""
        self.work += n
        if self.work > self.budget.max_work:
            raise RenderLimitError(
                f"made more than {self.budget.max_work:,} characters of text along the way"
            )

    def made(self, n: int, what: str) -> None:
        """`size` and `charge` at once, for what has just been made."""
        budget = self.budget
        if n > budget.max_chars:
            self.size(n, what)
        self.work = work = self.work + n
        if work > budget.max_work:
            self.charge(0)

    def width(self, n: Any, what: str) -> None:
        """Refuse a width, padding or count that would make text longer than allowed."""
        if isinstance(n, int) and n > self.budget.max_chars:
            raise RenderLimitError(f"{what} {n:,} is over the limit of {self.budget.max_chars:,}")

    def number(self, value: Any) -> None:
        if isinstance(value, int) and value.bit_length() > self.budget.max_int_bits:
            raise RenderLimitError(
                f"a number of {value.bit_length():,} bits is over the limit of "
                f"{self.budget.max_int_bits:,}"
            )


_meter = _Meter()


_clock = time.monotonic


def tick() -> None:
    """Stop the render on this thread if it has run out of time. Called at every step that
    can be repeated (a loop's turn, a call, a filter, an operator, an output), so no work that
    is not bounded by the template's own length runs between two checks."""
    if _clock() > _meter.deadline:
        raise RenderLimitError(f"took longer than {_meter.budget.seconds:g} s")


@contextlib.contextmanager
def metered(budget: Budget) -> Iterator[None]:
    """Apply `budget` to what runs inside, on this thread (a render and its lint)."""
    saved = (_meter.budget, _meter.deadline, _meter.work)
    _meter.budget = budget
    _meter.deadline = _clock() + budget.seconds
    _meter.work = 0
    try:
        yield
    finally:
        _meter.budget, _meter.deadline, _meter.work = saved


# -- how long the text of a value would be ---------------------------------------------------

_SHORT = (bool, float, type(None), Undefined)
_TEXT = (str, bytes)
_NUMBER = (int, float)
_ITEMS = (list, tuple, Set, ValuesView)


def text_weight(value: Any, limit: int) -> int:
    """At least how many characters `str(value)` would have, counted no further than just past
    `limit`: a list holding the same long string 10,000 times is found too long after a few
    items, without making its text. Every item counts at least one, so it always ends."""
    if isinstance(value, _TEXT):
        return len(value)
    total = 0
    stack = [value]
    while stack and total <= limit:
        item = stack.pop()
        if isinstance(item, _TEXT):
            total += len(item) + 2  # quoted inside a container
        elif isinstance(item, int) and not isinstance(item, bool):
            total += max(1, item.bit_length() * 3 // 10)
        elif isinstance(item, _SHORT):
            total += 1
        elif isinstance(item, Mapping):
            total += 2 + 2 * len(item)
            for key, val in item.items():
                stack.append(key)
                stack.append(val)
                if len(stack) > limit:
                    return limit + 1
        elif isinstance(item, _ITEMS):
            total += 2 + len(item)
            stack.extend(item)
        elif isinstance(item, Namespace):
            stack.append(object.__getattribute__(item, "_Namespace__attrs"))
            total += 12
        else:
            total += 1  # other objects print a short description of themselves
    return min(total, limit + 1)


# Values whose text is their own size or short: measured without walking anything.
_PLAIN = frozenset({str, Markup, int, float, bool, type(None)})


def _check_text(value: Any, what: str) -> int:
    """Refuse a value whose text would be too long, before it is made; its length (at least)."""
    limit = _meter.budget.max_chars
    kind = type(value)
    if kind is str or kind is Markup:
        if len(value) > limit:
            _meter.size(len(value), what)
        return len(value)
    if kind in _PLAIN and kind is not int:
        return 1
    weight = text_weight(value, limit)
    if weight > limit:
        if isinstance(value, _TEXT):
            _meter.size(weight, what)
        raise RenderLimitError(f"{what} would be longer than {limit:,} characters")
    return weight


# -- operators ---------------------------------------------------------------------------------

_SIZED = (str, bytes, list, tuple)
_BINOPS: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
    "//": operator.floordiv,
    "%": operator.mod,
    "**": operator.pow,
}
_UNOPS: dict[str, Callable[[Any], Any]] = {"+": operator.pos, "-": operator.neg}


def _operand(value: Any) -> None:
    _meter.number(value)
    if isinstance(value, _SIZED):
        _meter.size(len(value), "a value")


def bounded_binop(op: str, left: Any, right: Any) -> Any:
    """`left op right`, refused beforehand when an operand or the result would be too large."""
    m = _meter
    tick()
    _operand(left)
    _operand(right)
    ints = isinstance(left, int) and isinstance(right, int)
    if op == "%" and not (isinstance(left, _NUMBER) and isinstance(right, _NUMBER)):
        raise SecurityError("% formatting is not allowed in templates; use the format filter")
    if op == "**" and ints and right > 0 and abs(left) > 1:
        bits = right * math.log2(abs(left))  # the result's size, known before computing it
        if bits > m.budget.max_int_bits:
            shown = f"{bits:,.0f}" if bits < 1e15 else "astronomically many"
            raise RenderLimitError(
                f"power too large: {shown} bits; the limit is {m.budget.max_int_bits:,}"
            )
    elif op == "*":
        if ints:
            if left.bit_length() + right.bit_length() > m.budget.max_int_bits:
                raise RenderLimitError(
                    f"product too large: over the limit of {m.budget.max_int_bits:,} bits"
                )
        else:
            seq, n = (left, right) if isinstance(right, int) else (right, left)
            if isinstance(seq, _SIZED) and isinstance(n, int):
                m.made(len(seq) * max(n, 0), "the repeated text or list")
    elif op in ("+", "-"):
        if ints:
            if max(left.bit_length(), right.bit_length()) + 1 > m.budget.max_int_bits:
                raise RenderLimitError(
                    f"number too large: over the limit of {m.budget.max_int_bits:,} bits"
                )
        elif isinstance(left, _SIZED) and isinstance(right, _SIZED):
            m.made(len(left) + len(right), "the joined text or list")
    result = _BINOPS[op](left, right)
    m.number(result)
    return result


def bounded_unop(op: str, value: Any) -> Any:
    tick()
    _operand(value)
    return _UNOPS[op](value)


def bounded_concat(autoescape: bool, parts: Iterable[Any]) -> str:
    """The `~` operator: the parts' text joined, refused before it is made if too long."""
    m = _meter
    tick()
    parts = list(parts)
    total = 0
    for part in parts:
        total += text_weight(part, m.budget.max_chars)
        m.size(total, "the joined text")
    m.charge(total)
    return markup_join(parts) if autoescape else str_join(parts)


def bounded_buffer_join(pieces: Iterable[str]) -> str:
    """Jinja's `concat`, for captured blocks (`{% set x %}`, macros, `{% filter %}`)."""
    m = _meter
    tick()
    pieces = list(pieces)
    total = sum(len(p) for p in pieces)
    m.made(total, "the captured text")
    return "".join(pieces)


def bounded_range(*args: int) -> Iterator[int]:
    """range() for templates: at most `Budget.max_range` items, one step each."""
    for arg in args:
        _meter.number(arg)
    rng = range(*args)
    most = _meter.budget.max_range
    try:
        n = len(rng)
    except OverflowError:  # more items than an index can count
        raise RenderLimitError(f"range of more than {most} items") from None
    if n > most:
        raise RenderLimitError(f"range of {n} items is over {most}")
    for i in rng:
        tick()
        yield i


@pass_eval_context
def bounded_output(_eval_ctx: EvalContext, value: Any) -> Any:
    """Every `{{ ... }}`: a value whose text would be too long is refused before it is made.
    (Needing the evaluation context also keeps Jinja from printing constants at compile time.)"""
    tick()
    if type(value) is str:
        _meter.made(len(value), "the printed value")
    else:
        _meter.charge(_check_text(value, "the printed value"))
    return value


# -- formats -----------------------------------------------------------------------------------

_PRINTF = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?([a-zA-Z%])")
_DIGITS = re.compile(r"\d+")


def _spec_number(digits: str, what: str) -> int:
    if len(digits) > 9:  # also keeps int() away from absurd digit strings
        shown = digits if len(digits) <= 12 else digits[:12] + "..."
        raise RenderLimitError(f"{what} {shown} is over the limit of {_meter.budget.max_chars:,}")
    n = int(digits)
    _meter.width(n, what)
    return n


def check_printf(fmt: str, values: Iterable[Any]) -> None:
    """Refuse a `%` format (the `format` filter) whose widths, precisions or values would make
    text longer than allowed."""
    widest = 0
    directives = 0
    for match in _PRINTF.finditer(fmt):
        if match.group(3) == "%":
            continue
        directives += 1
        for number in (match.group(1), match.group(2)):
            if number == "*":
                raise SecurityError("'*' widths are not allowed in templates' formats")
            if number:
                widest = max(widest, _spec_number(number, "format width"))
    heaviest = max((_check_text(v, "a formatted value") for v in values), default=0)
    _meter.size(len(fmt) + directives * (widest + heaviest), "the formatted text")


class _BoundedFormatting:
    """str.format and format_map from templates: every field's width and value bounded, and
    every field's text counted."""

    def format_field(self, value: Any, format_spec: str) -> Any:
        tick()
        for digits in _DIGITS.findall(format_spec):
            _spec_number(digits, "format width")
        _check_text(value, "a formatted value")
        text = super().format_field(value, format_spec)  # type: ignore[misc]
        _meter.made(len(text), "a formatted field")
        return text

    def convert_field(self, value: Any, conversion: str | None) -> Any:
        _check_text(value, "a formatted value")
        return super().convert_field(value, conversion)  # type: ignore[misc]


class BoundedFormatter(_BoundedFormatting, SandboxedFormatter):
    pass


class BoundedEscapeFormatter(_BoundedFormatting, SandboxedEscapeFormatter):
    pass


# -- str, bytes and int methods ------------------------------------------------------------------


def _arg(args: tuple[Any, ...], kwargs: dict[str, Any], i: int, name: str, default: Any) -> Any:
    if len(args) > i:
        return args[i]
    return kwargs.get(name, default)


def _replaced_length(s: str | bytes, old: Any, new: Any, count: Any) -> int:
    if not isinstance(old, _TEXT) or not isinstance(new, _TEXT):
        return len(s)
    if type(old) is not type(s) or type(new) is not type(s):
        return len(s)
    hits = len(s) + 1 if not old else s.count(old)  # type: ignore[arg-type]
    if isinstance(count, int) and count >= 0:
        hits = min(hits, count)
    return len(s) + hits * max(0, len(new) - len(old))


def _check_method(obj: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
    """Refuse a str, bytes or int method call whose result would be too large; returns the
    arguments to call it with (an iterable given to `join` is read once, here)."""
    owner = getattr(obj, "__self__", None)
    name = getattr(obj, "__name__", "")
    m = _meter
    if isinstance(owner, _TEXT):
        if name in ("center", "ljust", "rjust", "zfill"):
            m.width(_arg(args, kwargs, 0, "width", 0), "width")
        elif name == "expandtabs":
            tab = _arg(args, kwargs, 0, "tabsize", 8)
            tabs = owner.count("\t" if isinstance(owner, str) else b"\t")  # type: ignore[arg-type]
            if isinstance(tab, int):
                m.size(len(owner) + tabs * max(tab, 0), "the expanded text")
        elif name == "replace":
            old, new = _arg(args, kwargs, 0, "old", ""), _arg(args, kwargs, 1, "new", "")
            count = _arg(args, kwargs, 2, "count", -1)
            m.size(_replaced_length(owner, old, new, count), "the replaced text")
        elif name == "join" and args:
            items = list(_counted(args[0]))
            length = sum(len(i) for i in items if isinstance(i, _TEXT))
            m.size(length + len(owner) * max(len(items) - 1, 0), "the joined text")
            return (items, *args[1:])
        elif name == "translate":
            raise SecurityError("translate is not available in templates; use replace")
    elif isinstance(owner, int) and name == "to_bytes":
        m.width(_arg(args, kwargs, 0, "length", 1), "length")
    return args


def _counted(iterable: Iterable[Any]) -> Iterator[Any]:
    for n, item in enumerate(iterable, 1):
        _meter.size(n, "the list")
        tick()
        yield item


# -- filters -----------------------------------------------------------------------------------

# Filters that work on lists and values without making text of them (and can be given large
# data, such as every selection of a contest); every other filter makes text of its value.
_CONTAINER_FILTERS = frozenset(
    {
        *("attr", "batch", "count", "d", "default", "dictsort", "first", "groupby", "items"),
        *("join", "last", "length", "list", "map", "max", "min", "random", "reject"),
        *("rejectattr", "reverse", "select", "selectattr", "slice", "sort", "sum", "unique"),
        *("abs", "round", "int", "float", "tojson"),
    }
)


def _check_filter_call(name: str, bound: inspect.BoundArguments) -> None:
    """Filter-specific checks, made before the filter runs (arguments bound to its
    parameters, so `center(width=...)` and `center(...)` are seen alike)."""
    check = _FILTER_CHECKS.get(name)
    if check is not None:
        check(bound.arguments)


def _check_center(a: dict[str, Any]) -> None:
    _meter.width(a.get("width", 80), "width")


def _check_indent(a: dict[str, Any]) -> None:
    s, width = str(a.get("s", "")), a.get("width", 4)
    pad = len(width) if isinstance(width, str) else width if isinstance(width, int) else 0
    _meter.width(pad, "indent")
    _meter.size(len(s) + (s.count("\n") + 1) * max(pad, 0), "the indented text")


def _check_format(a: dict[str, Any]) -> None:
    values = [*a.get("args", ()), *a.get("kwargs", {}).values()]
    check_printf(str(a.get("value", "")), values)


def _check_replace(a: dict[str, Any]) -> None:
    s = a.get("s", "")
    if isinstance(s, str):
        _meter.size(
            _replaced_length(s, a.get("old"), a.get("new"), a.get("count")),
            "the replaced text",
        )


def _check_wordwrap(a: dict[str, Any]) -> None:
    s, width = str(a.get("s", "")), a.get("width", 79)
    wrap = a.get("wrapstring") or "\n"
    if isinstance(width, int) and width > 0 and isinstance(wrap, str):
        lines = len(s) // width + s.count("\n") + 1
        _meter.size(len(s) + lines * len(wrap), "the wrapped text")


def _check_tojson(a: dict[str, Any]) -> None:
    indent = a.get("indent")
    if isinstance(indent, int | str) and not isinstance(indent, bool):
        size = indent if isinstance(indent, int) else len(indent)
        if size > 16:
            raise RenderLimitError(f"tojson indent {size} is over the limit of 16")
    _check_text(a.get("value"), "the value written as JSON")


def _check_join(a: dict[str, Any]) -> None:
    # The items are read once here (counted) and handed to the filter as a list, so a
    # generator is not consumed twice and an attribute is not looked up twice.
    items = list(_counted(a.get("value", ())))
    attribute = a.get("attribute")
    if attribute is not None:
        getter = make_attrgetter(a["eval_ctx"].environment, attribute)
        items = [getter(i) for i in items]
        a["attribute"] = None
    a["value"] = items
    total = sum(text_weight(i, _meter.budget.max_chars) for i in items)
    sep = a.get("d", "")
    _meter.size(total + len(str(sep)) * max(len(items) - 1, 0), "the joined text")


def _check_sum(a: dict[str, Any]) -> None:
    if not isinstance(a.get("start", 0), _NUMBER):
        raise SecurityError("sum adds numbers only in templates")


_FILTER_CHECKS: dict[str, Callable[[dict[str, Any]], None]] = {
    "center": _check_center,
    "indent": _check_indent,
    "format": _check_format,
    "replace": _check_replace,
    "wordwrap": _check_wordwrap,
    "batch": lambda a: _meter.width(a.get("linecount", 0), "batch size"),
    "slice": lambda a: _meter.width(a.get("slices", 0), "number of slices"),
    "tojson": _check_tojson,
    "join": _check_join,
    "sum": _check_sum,
}
_CHECKED_FILTERS = frozenset(_FILTER_CHECKS)


@dataclass(frozen=True, slots=True)
class Positional:
    """How a filter's positional arguments bind: `names` are the parameters they fill, in order
    (up to any `*args`); at least `required` must be given, and nothing else is required."""

    names: tuple[str, ...]
    required: int
    only: bool  # no keyword-only parameter lacks a default


def positional_names(signature: inspect.Signature) -> Positional:
    """The positional parameters of `signature` (see Positional)."""
    names: list[str] = []
    required = 0
    params = list(signature.parameters.values())
    for parameter in params:
        if parameter.kind not in (parameter.POSITIONAL_ONLY, parameter.POSITIONAL_OR_KEYWORD):
            break
        names.append(parameter.name)
        if parameter.default is parameter.empty:
            required = len(names)
    only = all(p.default is not p.empty for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY)
    return Positional(tuple(names), required, only)


def bind(
    signature: inspect.Signature,
    positional: Positional,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> inspect.BoundArguments:
    """`signature.bind(*args, **kwargs)`; for positional arguments alone that fill named
    parameters (the common call), made directly: the same result at a tenth of the cost, and
    a filter runs for every item of a summary."""
    if not kwargs and positional.only and positional.required <= len(args) <= len(positional.names):
        arguments = OrderedDict(zip(positional.names, args, strict=False))
        return inspect.BoundArguments(signature, arguments)
    return signature.bind(*args, **kwargs)


def _metered_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """`func` with a time check first, the checks above, and its result measured."""
    passes = 1 if hasattr(func, "jinja_pass_arg") else 0
    signature: inspect.Signature | None = None
    prefix = 0  # leading arguments Jinja passes that the signature does not list
    positional = Positional((), 0, only=False)
    if name in _CHECKED_FILTERS:
        signature = inspect.signature(func)
        positional = positional_names(signature)
        # Jinja's async variants add the evaluation context in front of a function whose
        # signature (the one inspect finds) does not have it.
        if passes and not hasattr(inspect.unwrap(func), "jinja_pass_arg"):
            prefix = 1
    makes_text = name not in _CONTAINER_FILTERS
    of_value = f"the text of the {name} filter's value"
    of_result = f"the result of the {name} filter"

    @functools.wraps(func)
    def run(*args: Any, **kwargs: Any) -> Any:
        tick()
        if makes_text:
            for value in args[passes:]:
                if type(value) not in _PLAIN:
                    _check_text(value, of_value)
            for value in kwargs.values():
                if type(value) not in _PLAIN:
                    _check_text(value, of_value)
        if signature is not None:
            bound = bind(signature, positional, args[prefix:], kwargs)
            _check_filter_call(name, bound)
            args, kwargs = (*args[:prefix], *bound.args), bound.kwargs
        result = func(*args, **kwargs)
        if isinstance(result, _SIZED):
            _meter.made(len(result), of_result)
        return result

    return run


class MeteredFilters(dict[str, Callable[..., Any]]):
    """The environment's filters, each handed out metered, however it was added."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._wrapped: dict[str, tuple[Callable[..., Any], Callable[..., Any]]] = {}

    def __getitem__(self, name: str) -> Callable[..., Any]:
        func = super().__getitem__(name)
        cached = self._wrapped.get(name)
        if cached is None or cached[0] is not func:
            cached = (func, _metered_filter(name, func))
            self._wrapped[name] = cached
        return cached[1]

    def get(self, name: str, default: Any = None) -> Any:
        if name not in self:
            return default
        return self[name]


# -- compiling ----------------------------------------------------------------------------------


class BoundedCodeGenerator(CodeGenerator):
    """Jinja's code generator, with `~` and loops routed through the meter. Jinja compiles
    `~` to a plain join (`str_join`) that the sandbox never sees, and loops to plain Python
    loops; here they call the environment like every other operator."""

    def visit_Template(self, node: nodes.Template, frame: Frame | None = None) -> None:
        # Jinja allows no new node types: remember which expressions are loops' iterables.
        self._loop_iterables = {id(loop.iter) for loop in node.find_all(nodes.For)}
        super().visit_Template(node, frame)

    def visit(self, node: nodes.Node, *args: Any, **kwargs: Any) -> Any:
        if id(node) in getattr(self, "_loop_iterables", ()):
            self.write("environment.metered_iter(")
            result = super().visit(node, *args, **kwargs)
            self.write(")")
            return result
        return super().visit(node, *args, **kwargs)

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.call_concat(context, (")
        for part in node.nodes:
            self.visit(part, frame)
            self.write(", ")
        self.write("))")

    def visit_EvalContextModifier(self, node: nodes.EvalContextModifier, frame: Frame) -> None:
        # Jinja evaluates `{% autoescape expr %}` at compile time: only constants here.
        for keyword in node.options:
            if not isinstance(keyword.value, nodes.Const):
                self.fail("autoescape takes true or false", node.lineno)
        super().visit_EvalContextModifier(node, frame)


PARSED_KEPT = 8


class PostEnvironment(ImmutableSandboxedEnvironment):
    """The immutable sandbox, bounded as this module describes, with a fast path for our own
    read-only variables: a key of a `View` is data, never code, so `contest.name` is answered
    straight from the mapping; anything else goes through the full sandbox checks."""

    intercepted_binops = frozenset(_BINOPS)
    intercepted_unops = frozenset(_UNOPS)
    code_generator_class = BoundedCodeGenerator
    concat = staticmethod(bounded_buffer_join)

    def __init__(self, **options: Any) -> None:
        # No constant folding: Jinja would run template expressions while compiling them.
        super().__init__(optimized=False, finalize=bounded_output, **options)
        self.filters = MeteredFilters(self.filters)
        # The last few texts parsed: loading a template parses it to compile it, and at once
        # again to see which variables it reads (render.reads_variable). Never changed once
        # made (compiling and reading only walk it).
        self._parsed: OrderedDict[tuple[str, str | None], nodes.Template] = OrderedDict()

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        key = (source, name)
        found = self._parsed.get(key)
        if found is None:
            found = super()._parse(source, name, filename)
            self._parsed[key] = found
            if len(self._parsed) > PARSED_KEPT:
                self._parsed.popitem(last=False)
        return found

    def getattr(self, obj: Any, attribute: str) -> Any:
        if type(obj) is View and attribute in obj:
            return obj[attribute]  # a dictionary lookup: no step worth a check
        tick()
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        tick()
        return super().getitem(obj, argument)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        return bounded_binop(operator, left, right)

    def call_unop(self, context: Context, operator: str, arg: Any) -> Any:
        return bounded_unop(operator, arg)

    def call_concat(self, context: Context, parts: tuple[Any, ...]) -> str:
        return bounded_concat(context.eval_ctx.autoescape, parts)

    def metered_iter(self, iterable: Any) -> Iterator[Any]:
        for item in iterable:
            tick()
            yield item

    def call(self, context: Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        tick()
        if isinstance(obj, types.BuiltinMethodType | types.MethodType):
            args = _check_method(obj, args, kwargs)
        result = super().call(context, obj, *args, **kwargs)
        if isinstance(result, _SIZED):
            _meter.made(len(result), "the result")
        return result

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        """`str.format` and `str.format_map`, through the bounded formatter."""
        if not isinstance(value, types.MethodType | types.BuiltinMethodType):
            return None
        if value.__name__ not in ("format", "format_map"):
            return None
        text = value.__self__
        if not isinstance(text, str):
            return None
        formatter: SandboxedFormatter
        if isinstance(text, Markup):
            formatter = BoundedEscapeFormatter(self, escape=text.escape)
        else:
            formatter = BoundedFormatter(self)
        as_map = value.__name__ == "format_map"
        kind = type(text)

        def bounded_format(*args: Any, **kwargs: Any) -> str:
            if as_map:
                if kwargs or len(args) != 1:
                    raise TypeError("format_map() takes exactly one mapping")
                return kind(formatter.vformat(text, (), args[0]))
            return kind(formatter.vformat(text, args, kwargs))

        return functools.update_wrapper(bounded_format, value)
