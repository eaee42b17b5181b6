"""Operators' templates are untrusted: escapes are refused and runaway templates are stopped."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from broadcaster.events import EventKind
from broadcaster.parsers import parse
from broadcaster.render import Budget, Renderer, RenderError
from broadcaster.samples import sample_vars
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


ESCAPES = [
    "{{ contest.__class__ }}",
    "{{ contest.__class__.__mro__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ contest.name.format.__globals__ }}",
    "{{ contest.__getattr__.__globals__ }}",
    "{{ (contest|attr('__class__')).__bases__ }}",
    "{{ contest.selections.__class__.__init__.__globals__ }}",
    "{{ cycler.__init__.__globals__.os.system('id') }}",
    "{{ namespace.__init__.__globals__ }}",
    "{{ self.__init__.__globals__ }}",
    "{{ '{0.__class__.__mro__}'.format(contest) }}",
    "{{ '%s' % contest }}",
    "{{ contest.selections.append(1) }}",
    "{{ contest.update({'name': 'x'}) }}",
    "{{ contest.clear() }}",
    "{{ lipsum(100000) }}",
    "{{ config }}",
    "{{ request }}",
    "{% for x in ().__class__.__base__.__subclasses__() %}{{ x }}{% endfor %}",
]


@pytest.mark.parametrize("source", ESCAPES)
def test_escape_attempts_are_refused(tmp_path: Path, variables, source: str):
    with pytest.raises(RenderError):
        render(tmp_path, source, variables)


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
        ("{{ 'x' * 100000000 }}", "stopped: repetition"),
        ("{% for i in range(9000) %}{{ contest.name * 20 }}{% endfor %}", "stopped: output longer"),
        ("{{ 2 ** 100000000 }}", "not allowed: power too large"),
        ("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", "recursion"),
    ],
)
def test_runaway_templates_are_stopped_and_reported(tmp_path: Path, variables, source, expected):
    started = time.monotonic()
    with pytest.raises(RenderError) as info:
        render(tmp_path, source, variables, Budget(seconds=0.5))
    assert expected in str(info.value)
    assert str(tmp_path / "en" / "x" / "called.j2") in str(info.value)
    assert time.monotonic() - started < 10
