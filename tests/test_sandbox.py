"""Operators' templates are untrusted: escapes are refused and runaway templates are stopped."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from broadcaster.content.render import Budget, Renderer, RenderError
from broadcaster.content.samples import sample_vars
from broadcaster.domain.events import EventKind
from broadcaster.ingest.parsers import parse
from tests.conftest import DEMO


@pytest.fixture(scope="module")
def variables():
    snapshot = parse(sorted(DEMO.glob("*.json"))[-1].read_bytes())
    return sample_vars(snapshot, EventKind.CALLED)[1]


def render(tmp_path: Path, source: str, variables, budget: Budget | None = None) -> str:
    folder = tmp_path / "en" / "x"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "called.j2").write_text(source)
    return Renderer([tmp_path], budget=budget).render("x", "called", variables)


UNSAFE = "not allowed: access to attribute"
UNKNOWN = "unknown variable"
ESCAPES = [
    ("{{ contest.__class__ }}", f"{UNSAFE} '__class__' of 'View' object is unsafe"),
    ("{{ contest.__class__.__mro__ }}", f"{UNSAFE} '__class__' of 'View' object is unsafe"),
    ("{{ ''.__class__.__mro__[1].__subclasses__() }}", f"{UNSAFE} '__class__' of 'str'"),
    ("{{ contest.name.format.__globals__ }}", f"{UNSAFE} '__globals__' of 'function'"),
    ("{{ contest.__getattr__.__globals__ }}", f"{UNSAFE} '__getattr__' of 'View'"),
    ("{{ (contest|attr('__class__')).__bases__ }}", f"{UNSAFE} '__class__' of 'View'"),
    # The list's __class__ is refused as an undefined value; the next step is what raises.
    (
        "{{ contest.selections.__class__.__init__.__globals__ }}",
        f"{UNSAFE} '__init__' of 'StrictUndefined' object is unsafe",
    ),
    ("{{ cycler.__init__.__globals__.os.system('id') }}", f"{UNSAFE} '__init__' of 'type'"),
    ("{{ namespace.__init__.__globals__ }}", f"{UNSAFE} '__init__' of 'type'"),
    ("{{ self.__init__.__globals__ }}", f"{UNSAFE} '__init__' of 'TemplateReference'"),
    ("{{ '{0.__class__.__mro__}'.format(contest) }}", f"{UNSAFE} '__class__' of 'View'"),
    ("{{ '%s' % contest }}", "not allowed: % formatting is not allowed in templates"),
    ("{{ contest.selections.append(1) }}", f"{UNSAFE} 'append' of 'list' object is unsafe"),
    ("{{ contest.update({'name': 'x'}) }}", f"{UNSAFE} 'update' of 'View' object is unsafe"),
    ("{{ contest.clear() }}", f"{UNSAFE} 'clear' of 'View' object is unsafe"),
    ("{{ lipsum(100000) }}", f"{UNKNOWN}: 'lipsum' is undefined"),
    ("{{ config }}", f"{UNKNOWN}: 'config' is undefined"),
    ("{{ request }}", f"{UNKNOWN}: 'request' is undefined"),
    (
        "{% for x in ().__class__.__base__.__subclasses__() %}{{ x }}{% endfor %}",
        f"{UNSAFE} '__class__' of 'tuple'",
    ),
    ("{{ 'abc'.translate({97: 'x' * 100000}) }}", "not allowed: translate is not available"),
    ("{{ '%*d'|format(2000000000, 1) }}", "not allowed: '*' widths are not allowed"),
]


@pytest.mark.parametrize(("source", "reason"), ESCAPES)
def test_escape_attempts_are_refused(tmp_path: Path, variables, source: str, reason: str):
    with pytest.raises(RenderError) as info:
        render(tmp_path, source, variables)
    assert info.value.where == f"{tmp_path / 'en' / 'x' / 'called.j2'}:1"
    assert info.value.message.startswith(reason), info.value.message


def test_data_is_still_reachable(tmp_path: Path, variables):
    text = render(
        tmp_path,
        "{{ contest.name }} {{ contest['name'] }} {{ contest.selections|length }} "
        "{% set ns = namespace(n=0) %}{% for s in contest.selections %}{% set ns.n = ns.n + 1 %}"
        "{% endfor %}{{ ns.n }}",
        variables,
    )
    name = variables["contest"]["name"]
    assert text.startswith(f"{name} {name} ")


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{% for i in range(1000000) %}x{% endfor %}", "stopped: range of 1000000"),
        (
            "{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}",
            "stopped: took longer than",
        ),
        ("{{ 'x' * 100000000 }}", "stopped: the repeated text or list would be 100,000,000"),
        ("{% for i in range(9000) %}{{ contest.name * 20 }}{% endfor %}", "stopped: output longer"),
        ("{{ 2 ** 100000000 }}", "stopped: power too large"),
        ("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", "stopped: recursion too deep"),
        ("{{ range(10 ** 100)|list }}", "stopped: range of"),
        ("{{ 'x' * 99999 ~ 'yy' }}", "stopped: the joined text would be 100,001 long"),
        ("{% set l = ['x' * 50000] * 3 %}{{ l }}", "stopped: the printed value would be longer"),
    ],
)
def test_runaway_templates_are_stopped_and_reported(tmp_path: Path, variables, source, expected):
    started = time.monotonic()
    with pytest.raises(RenderError) as info:
        render(tmp_path, source, variables, Budget(seconds=0.5))
    assert expected in str(info.value)
    assert str(tmp_path / "en" / "x" / "called.j2") in str(info.value)
    assert time.monotonic() - started < 10


def _shapes(positional: tuple[str, ...]) -> list[tuple[tuple[object, ...], dict[str, object]]]:
    """Calls of every shape: positional only (each count, and one more than there are named
    parameters), keywords only, and mixed."""
    values = ["text", 3, True, "x", None, 2]
    shapes: list[tuple[tuple[object, ...], dict[str, object]]] = [
        (tuple(values[:n]), {}) for n in range(len(positional) + 2)
    ]
    if len(positional) > 1:
        shapes.append(((values[0],), {positional[1]: values[1]}))
        shapes.append(((), {name: values[i] for i, name in enumerate(positional)}))
    return shapes


def test_filter_arguments_are_bound_as_signature_bind_binds_them() -> None:
    """The checked filters' arguments are bound without `Signature.bind` for plain positional
    calls (its cost was a sixth of a large summary's render): the same arguments every time,
    and the same refusal where `bind` refuses."""
    import inspect

    from broadcaster.content.render import Locale, make_filters
    from broadcaster.content.sandbox import (
        _CHECKED_FILTERS,
        PostEnvironment,
        bind,
        positional_names,
    )

    env = PostEnvironment()
    env.filters.update(make_filters(Locale()))
    checked = 0
    for name in sorted(_CHECKED_FILTERS):
        func = dict.__getitem__(env.filters, name)
        signature = inspect.signature(func)
        positional = positional_names(signature)
        for args, kwargs in _shapes(positional.names):
            try:
                expected = signature.bind(*args, **kwargs)
            except TypeError:
                with pytest.raises(TypeError):
                    bind(signature, positional, args, kwargs)
                continue
            got = bind(signature, positional, args, kwargs)
            assert (got.arguments, got.args, got.kwargs) == (
                expected.arguments,
                expected.args,
                expected.kwargs,
            ), (name, args, kwargs)
            checked += 1
    assert checked > 3 * len(_CHECKED_FILTERS)
