"""docs/templates.md stays true: every documented example renders to its documented output, and
every variable and filter available to templates is documented."""

from __future__ import annotations

import re

import pytest

from broadcaster.content.context import View
from broadcaster.content.render import Locale, Renderer, make_filters
from broadcaster.content.samples import sample_vars
from broadcaster.domain.events import CONTEST_KINDS, TEMPLATED_KINDS, EventKind
from broadcaster.ingest.parsers import parse
from tests.conftest import DEMO, ROOT

DOC = (ROOT / "docs" / "templates.md").read_text(encoding="utf-8")
EXAMPLE = re.compile(r"```jinja([^\n]*)\n(.*?)```\s*```text\n(.*?)```", re.S)
EXAMPLES = EXAMPLE.findall(DOC)


def options(info: str) -> dict[str, str]:
    opts = {"event": "called", "contest": "cc-D05", "lang": "en", "digits": "false"}
    for word in info.split():
        if "=" in word:
            key, value = word.split("=", 1)
            opts[key] = value
        else:
            opts["event"] = word
    return opts


def test_the_document_has_examples():
    assert len(EXAMPLES) >= 12


@pytest.mark.parametrize(
    ("info", "source", "expected"), EXAMPLES, ids=[f"ex{i}" for i in range(len(EXAMPLES))]
)
def test_documented_example_renders_as_documented(info, source, expected):
    opts = options(info)
    snapshot = parse(sorted(DEMO.glob("*.json"))[-1].read_bytes())
    kind = EventKind(opts["event"])
    contest = opts["contest"] if kind in CONTEST_KINDS and kind is not EventKind.POSTPONED else None
    _, variables = sample_vars(snapshot, kind, contest_id=contest, timezone="Asia/Bangkok")
    variables = {**variables, "account": View(name="x-main", platform="x", language=opts["lang"])}
    locale = Locale(opts["lang"], opts["digits"] == "true", "Asia/Bangkok")
    renderer = Renderer(locale=locale)
    template = renderer.env.from_string(source.rstrip("\n"))
    assert renderer.render_template(template, variables) == expected.strip()


def documented_names() -> set[str]:
    return set(re.findall(r"`([a-z_]+(?:\.[a-z_]+)?)`", DOC))


def test_every_variable_and_filter_is_documented():
    snapshot = parse(sorted(DEMO.glob("*.json"))[-1].read_bytes())
    documented = documented_names()
    missing = set()
    for kind in TEMPLATED_KINDS:
        contest = "cc-D05" if kind in CONTEST_KINDS and kind is not EventKind.POSTPONED else None
        _, variables = sample_vars(snapshot, kind, contest_id=contest)
        for top in ("election", "event", "tally"):
            missing |= {f"{top}.{k}" for k in variables[top] if f"{top}.{k}" not in documented}
        if variables["contest"] is not None:
            contest_view = variables["contest"]
            missing |= {f"contest.{k}" for k in contest_view if f"contest.{k}" not in documented}
            for key in contest_view["selections"][0]:
                if f"s.{key}" not in documented:
                    missing.add(f"s.{key}")
    for name in make_filters(Locale()):
        if name not in documented:
            missing.add(f"filter {name}")
    assert not missing, f"undocumented in docs/templates.md: {sorted(missing)}"
