"""Templates compiled once per process (issue 13): every account's renderer, and each new
version of the folders after an edit, reuse the code compiled from the same text with the same
settings, and the facts `reads_variable` needs are parsed once per text. An edited file, or an
environment that compiles differently, is compiled afresh."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from jinja2 import DictLoader, Environment, TemplateAssertionError

from broadcaster.content import compiled
from broadcaster.content.compiled import CompiledTemplates, settings_of
from broadcaster.content.render import Locale, Renderer, reads_variable
from broadcaster.content.sandbox import PostEnvironment


@pytest.fixture
def compiles(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names Jinja compiled from source during the test (the shared cache starts empty)."""
    compiled.COMPILED.clear()
    monkeypatch.setattr(compiled, "_facts", type(compiled._facts)())
    names: list[str] = []
    original = Environment.compile

    def counted(self: Environment, source: Any, name: str | None = None, *a: Any, **k: Any) -> Any:
        names.append(str(name))
        return original(self, source, name, *a, **k)

    monkeypatch.setattr(Environment, "compile", counted)
    return names


def _folder(tmp_path: Path, text: str) -> Path:
    folder = tmp_path / "templates"
    (folder / "en" / "x").mkdir(parents=True, exist_ok=True)
    (folder / "en" / "x" / "called.j2").write_text(text, encoding="utf-8")
    return folder


VARS = {"contest": {"name": "Batu Sapi"}}


def test_a_second_renderer_reuses_the_compiled_template(
    tmp_path: Path, compiles: list[str]
) -> None:
    folder = _folder(tmp_path, "Called: {{ contest.name }}")
    first, second = Renderer([folder]), Renderer([folder])
    assert first.render("x", "called", VARS) == "Called: Batu Sapi"
    assert compiles == ["en/x/called.j2"]
    assert second.render("x", "called", VARS) == "Called: Batu Sapi"
    assert compiles == ["en/x/called.j2"]  # not compiled again


def test_an_edited_file_is_compiled_afresh(tmp_path: Path, compiles: list[str]) -> None:
    folder = _folder(tmp_path, "Called: {{ contest.name }}")
    assert Renderer([folder]).render("x", "called", VARS) == "Called: Batu Sapi"
    _folder(tmp_path, "Won: {{ contest.name }}")
    assert Renderer([folder]).render("x", "called", VARS) == "Won: Batu Sapi"
    assert compiles == ["en/x/called.j2", "en/x/called.j2"]


def test_a_hot_reload_of_unchanged_templates_compiles_nothing(
    tmp_path: Path, compiles: list[str]
) -> None:
    folder = _folder(tmp_path, "Called: {{ contest.name }}")
    (folder / "en" / "x" / "corrected.j2").write_text("Fixed: {{ contest.name }}")
    renderer = Renderer([folder])
    renderer.preload("x", ["called", "corrected"])
    before = len(compiles)
    (folder / "en" / "x" / "corrected.j2").write_text("Corrected: {{ contest.name }}")
    assert ("x", "corrected") in renderer.refresh()  # every template is checked again...
    assert compiles[before:] == ["en/x/corrected.j2"]  # ...but only the edited one compiled
    assert renderer.render("x", "corrected", VARS) == "Corrected: Batu Sapi"


def test_environments_that_compile_differently_do_not_share(compiles: list[str]) -> None:
    source = {"t": "{{ 'x' | shout }}"}
    with_filter = PostEnvironment(loader=DictLoader(source), bytecode_cache=compiled.COMPILED)
    with_filter.filters["shout"] = str.upper
    assert with_filter.get_template("t").render() == "X"
    without = PostEnvironment(loader=DictLoader(source), bytecode_cache=compiled.COMPILED)
    assert settings_of(without) != settings_of(with_filter)
    with pytest.raises(TemplateAssertionError, match="shout"):
        without.get_template("t")  # compiled for this one, where the filter does not exist
    other_syntax = PostEnvironment(
        loader=DictLoader({"t": "<< 'x' >>"}),
        bytecode_cache=compiled.COMPILED,
        variable_start_string="<<",
        variable_end_string=">>",
    )
    assert other_syntax.get_template("t").render() == "x"
    assert compiles == ["t", "t", "t"]


def test_the_cache_is_bounded(compiles: list[str]) -> None:
    cache = CompiledTemplates(max_entries=2)
    env = PostEnvironment(
        loader=DictLoader({f"t{i}": f"{{{{ {i} }}}}" for i in range(3)}), bytecode_cache=cache
    )
    for i in range(3):
        assert env.get_template(f"t{i}").render() == str(i)
    assert len(cache._code) == 2
    fresh = PostEnvironment(loader=env.loader, bytecode_cache=cache)
    compiles.clear()
    assert fresh.get_template("t0").render() == "0"  # the oldest made room
    assert fresh.get_template("t2").render() == "2"
    assert compiles == ["t0"]


def test_what_a_template_reads_is_parsed_once_per_text(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(compiled, "_facts", type(compiled._facts)())
    parsed: list[str | None] = []
    original = Environment.parse

    def counted(self: Environment, source: str, name: str | None = None, *a: object) -> object:
        parsed.append(name)
        return original(self, source, name, *a)  # type: ignore[arg-type]

    monkeypatch.setattr(Environment, "parse", counted)
    templates = {"t": "{% include 'i' %}", "i": "{{ account.name }}", "u": "{{ contest }}"}
    for _ in range(3):
        env = PostEnvironment(loader=DictLoader(templates))
        assert reads_variable(env, "t", "account") is True
        assert reads_variable(env, "u", "account") is False
    assert sorted(map(str, parsed)) == ["i", "t", "u"]
    changed = PostEnvironment(loader=DictLoader({**templates, "i": "{{ contest }}"}))
    assert reads_variable(changed, "t", "account") is False  # a new text is parsed again


def test_renderers_in_different_languages_still_render_their_own(
    tmp_path: Path, compiles: list[str]
) -> None:
    folder = tmp_path / "templates"
    for lang, text in (("en", "Won {{ votes | number }}"), ("km", "ឈ្នះ {{ votes | number }}")):
        (folder / lang / "x").mkdir(parents=True)
        (folder / lang / "x" / "called.j2").write_text(text, encoding="utf-8")
    english = Renderer([folder], locale=Locale(language="en"))
    khmer = Renderer([folder], locale=Locale(language="km", khmer_digits=True))
    assert english.render("x", "called", {"votes": 12345}) == "Won 12,345"
    assert khmer.render("x", "called", {"votes": 12345}).startswith("ឈ្នះ ១២")


def test_loading_a_template_parses_each_file_once(
    tmp_path: Path, compiles: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Compiling a template and finding what it reads (and what it includes) share one parse
    of each file: loading them parsed every file twice."""
    folder = _folder(tmp_path, "{% include 'en/x/part.j2' %} {{ contest.name }}")
    (folder / "en" / "x" / "part.j2").write_text("Called:", encoding="utf-8")
    parsed: list[str | None] = []
    original = Environment._parse

    def counted(self: Environment, source: str, name: str | None, filename: str | None) -> Any:
        parsed.append(name)
        return original(self, source, name, filename)

    monkeypatch.setattr(Environment, "_parse", counted)
    renderer = Renderer([folder])
    renderer.preload("x", ["called"])
    assert renderer.render("x", "called", VARS) == "Called: Batu Sapi"
    assert sorted(map(str, parsed)) == ["en/x/called.j2", "en/x/part.j2"]


def test_filters_passed_different_first_arguments_do_not_share(compiles: list[str]) -> None:
    """Jinja fixes in the compiled code whether a filter is passed the context first: a filter
    of the same name that takes the context in one environment and not in another must not
    share code (it would be handed the template's variables as its value)."""
    from jinja2 import pass_context

    source = {"t": "{{ 'x' | mark }}"}

    @pass_context
    def with_context(_context: Any, value: str) -> str:
        return value + "!"

    first = PostEnvironment(loader=DictLoader(source), bytecode_cache=compiled.COMPILED)
    first.filters["mark"] = with_context
    second = PostEnvironment(loader=DictLoader(source), bytecode_cache=compiled.COMPILED)
    second.filters["mark"] = lambda value: value + "?"
    assert settings_of(first) != settings_of(second)
    assert first.get_template("t").render() == "x!"
    assert second.get_template("t").render() == "x?"
    assert compiles == ["t", "t"]
