from __future__ import annotations

from pathlib import Path

import pytest
from twitter_text import parse_tweet

from broadcaster.content.render import Renderer, RenderError
from broadcaster.content.samples import sample_vars
from broadcaster.domain.events import TEMPLATED_KINDS, EventKind
from broadcaster.ingest.parsers import parse

PLATFORMS = ("facebook", "youtube", "tiktok", "x", "dryrun")


@pytest.fixture(scope="module")
def final_snapshot():
    from tests.conftest import DEMO

    return parse(sorted(DEMO.glob("*.json"))[-1].read_bytes())


@pytest.mark.parametrize("platform", PLATFORMS)
@pytest.mark.parametrize("kind", TEMPLATED_KINDS)
def test_every_default_template_renders(final_snapshot, platform, kind):
    contest = "pc-P1" if kind is EventKind.CALLED and platform == "x" else None
    event, variables = sample_vars(
        final_snapshot, kind, contest_id=contest, timezone="Asia/Bangkok"
    )
    text = Renderer().render(platform, kind.value, variables)
    assert text.strip()
    assert "None" not in text, text
    if event.contest_id:
        assert final_snapshot.contest(event.contest_id).name in text
    if platform == "youtube":
        assert len(text) <= 200
        assert "\n" not in text
    if platform == "x":
        # X counts weighted characters (CJK, Khmer and emoji weigh 2, any URL 23), not len().
        assert parse_tweet(text).weightedLength <= 280, text


def test_strict_undefined_names_file_and_line(tmp_path: Path, final_snapshot):
    (tmp_path / "en" / "x").mkdir(parents=True)
    (tmp_path / "en" / "x" / "called.j2").write_text(
        "Result\n{{ contest.name }}\n{{ contest.nmae }}\n"
    )
    _, variables = sample_vars(final_snapshot, EventKind.CALLED)
    with pytest.raises(RenderError) as info:
        Renderer([tmp_path]).render("x", "called", variables)
    assert info.value.where == f"{tmp_path / 'en' / 'x' / 'called.j2'}:3"
    assert "nmae" in info.value.message


def test_syntax_error_names_file_and_line(tmp_path: Path, final_snapshot):
    (tmp_path / "en" / "x").mkdir(parents=True)
    (tmp_path / "en" / "x" / "tally.j2").write_text(
        "ok\n{% for p in tally.parties %}\n{{ p.name }\n"
    )
    _, variables = sample_vars(final_snapshot, EventKind.TALLY)
    with pytest.raises(RenderError, match=r"tally\.j2:3: syntax error"):
        Renderer([tmp_path]).render("x", "tally", variables)


@pytest.mark.parametrize(
    ("source", "attribute"),
    [
        ("{{ contest.__class__ }}", "'__class__' of 'View'"),
        ("{{ ''.__class__.__mro__[1].__subclasses__() }}", "'__class__' of 'str'"),
        ("{{ contest.name.format.__globals__ }}", "'__globals__' of 'function'"),
        ("{{ cycler.__init__.__globals__.os.system('id') }}", "'__init__' of 'type'"),
    ],
)
def test_sandbox_refuses_python_internals(tmp_path: Path, final_snapshot, source, attribute):
    (tmp_path / "en" / "x").mkdir(parents=True)
    (tmp_path / "en" / "x" / "called.j2").write_text(source)
    _, variables = sample_vars(final_snapshot, EventKind.CALLED)
    with pytest.raises(RenderError, match=f"not allowed: access to attribute {attribute}"):
        Renderer([tmp_path]).render("x", "called", variables)


def test_operator_folder_overrides_file_by_file(tmp_path: Path, final_snapshot):
    (tmp_path / "en" / "x").mkdir(parents=True)
    (tmp_path / "en" / "x" / "called.j2").write_text("Ours: {{ contest.name }}")
    (tmp_path / "en" / "default").mkdir()
    (tmp_path / "en" / "default" / "tally.j2").write_text("Our tally: {{ tally.declared_seats }}")
    renderer = Renderer([tmp_path])
    _, called = sample_vars(final_snapshot, EventKind.CALLED)
    assert renderer.render("x", "called", called).startswith("Ours: ")
    _, tally = sample_vars(final_snapshot, EventKind.TALLY)
    # x has its own bundled tally template, which wins over our default/ fallback...
    assert not renderer.render("x", "tally", tally).startswith("Our tally")
    # ...while facebook falls back to default/, where ours overrides the bundled one.
    assert renderer.render("facebook", "tally", tally) == "Our tally: 24"
    # Everything else still comes from the bundled defaults.
    assert "wins" in renderer.render("youtube", "called", called)


def test_empty_output_is_an_error(tmp_path: Path, final_snapshot):
    (tmp_path / "en" / "x").mkdir(parents=True)
    (tmp_path / "en" / "x" / "called.j2").write_text("{% if false %}never{% endif %}\n  \n")
    _, variables = sample_vars(final_snapshot, EventKind.CALLED)
    with pytest.raises(RenderError, match="empty post"):
        Renderer([tmp_path]).render("x", "called", variables)
