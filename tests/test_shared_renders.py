"""One render per event and template (issue 13): accounts that use the same template file and
locale get one render of an event between them, unless the template (or anything it includes,
imports or extends) reads `account`. The texts are the same as rendering per account."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from jinja2 import DictLoader

from broadcaster.content.render import Renderer, RenderError, reads_variable
from broadcaster.content.sandbox import PostEnvironment
from broadcaster.core.clock import FeedClock
from broadcaster.domain.posts import PostState
from broadcaster.ingest.sources import make_fetched
from broadcaster.outbox.store import Store
from broadcaster.runtime.configuration import load_config
from broadcaster.runtime.cycle import Pipeline
from tests.conftest import write_config
from tests.renders import count_renders

# Facebook and TikTok both use the default folder's templates; X its own.
ACCOUNTS = "".join(
    f'\n[[accounts]]\nname = "{name}"\nplatform = "{platform}"\nevents = ["called"]\n'
    "quota = [{posts = 10000, seconds = 86400}]\n"
    for name, platform in (("fb", "facebook"), ("tt", "tiktok"), ("x", "x"))
)


def _env(templates: dict[str, str]) -> PostEnvironment:
    return PostEnvironment(loader=DictLoader(templates))


@pytest.mark.parametrize(
    ("templates", "expected"),
    [
        ({"t": "{{ contest.name }}"}, False),
        ({"t": "{{ account.name }}"}, True),
        ({"t": "{% if account %}x{% endif %}"}, True),
        ({"t": "{% set account = 1 %}{{ account }}"}, False),  # its own, not the context's
        ({"t": "{% include 'i' %}", "i": "{{ account.platform }}"}, True),
        ({"t": "{% include 'i' %}", "i": "{{ contest.name }}"}, False),
        ({"t": "{% extends 'b' %}", "b": "{% block x %}{{ account }}{% endblock %}"}, True),
        (
            {
                "t": "{% from 'm' import f with context %}{{ f() }}",
                "m": "{% macro f() %}{{ account }}{% endmacro %}",
            },
            True,
        ),
        ({"t": "{% include which %}"}, True),  # chosen at render time: cannot tell
        ({"t": "{% include 'missing' %}"}, True),  # cannot be read: cannot tell
        ({"t": "{% include 't' %}{{ contest }}"}, False),  # a loop of includes ends
    ],
)
def test_whether_a_template_reads_the_account(templates: dict[str, str], expected: bool) -> None:
    assert reads_variable(_env(templates), "t", "account") is expected


def _renderer(folder: Path, text: str) -> Renderer:
    path = folder / "en" / "default" / "called.j2"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return Renderer([folder])


def test_a_memo_renders_an_account_free_template_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    renderer = _renderer(tmp_path, "{{ contest.name }} won")
    calls = count_renders(monkeypatch, renderer)
    memo: dict[Any, Any] = {}
    texts = {
        renderer.render(
            "default", "called", {"contest": {"name": "Seat A"}, "account": {"name": name}},
            memo=memo, memo_key="ev-1",
        )
        for name in ("a", "b", "c")
    }  # fmt: skip
    assert texts == {"Seat A won"}
    assert len(calls) == 1
    # Another event is another render; no memo is one render per call, as before.
    renderer.render("default", "called", {"contest": {"name": "B"}}, memo=memo, memo_key="ev-2")
    renderer.render("default", "called", {"contest": {"name": "B"}})
    assert len(calls) == 3


def test_a_template_that_reads_the_account_is_rendered_for_each(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    renderer = _renderer(tmp_path, "{{ contest.name }} for {{ account.name }}")
    calls = count_renders(monkeypatch, renderer)
    memo: dict[Any, Any] = {}
    texts = [
        renderer.render(
            "default", "called", {"contest": {"name": "Seat A"}, "account": {"name": name}},
            memo=memo, memo_key="ev-1",
        )
        for name in ("a", "b")
    ]  # fmt: skip
    assert texts == ["Seat A for a", "Seat A for b"]
    assert len(calls) == 2


def test_a_shared_render_that_fails_fails_for_every_account(tmp_path: Path) -> None:
    renderer = _renderer(tmp_path, "{{ contest.nope }}")
    memo: dict[Any, Any] = {}
    for _ in range(2):
        with pytest.raises(RenderError, match="unknown variable"):
            renderer.render(
                "default", "called", {"contest": {"name": "A"}}, memo=memo, memo_key="ev"
            )


def _night(
    tmp_path: Path, demo_files: list[Path], template: str, renders: list[str] | None = None
) -> list[Any]:
    folder = tmp_path / "tpl" / "en" / "default"
    folder.mkdir(parents=True)
    (folder / "called.j2").write_text(template, encoding="utf-8")
    cfg = load_config(
        write_config(
            tmp_path / "c.toml",
            source="f",
            accounts=ACCOUNTS,
            extra='[templates]\ndir = "tpl"\n',
        )
    )
    store = Store(cfg.database_url)
    pipeline = Pipeline(cfg, store, clock=FeedClock(), dry_run=True)
    if renders is not None:
        renders.clear()  # the templates' checks at start render samples
    for path in demo_files:
        pipeline.ingest(make_fetched(path.read_bytes(), path.name), "t")
    rows = store.posts_in_state(PostState.PENDING)
    store.close()
    return rows


def test_the_pipeline_shares_renders_between_accounts_and_keeps_the_texts(
    tmp_path: Path, demo_files: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    renders = count_renders(monkeypatch)
    rows = _night(tmp_path, demo_files, "Called: {{ contest.name }}", renders)
    by_account: dict[str, dict[str, str]] = {}
    for row in rows:
        by_account.setdefault(row.account, {})[row.event_key] = row.text
    called = len(by_account["fb"])
    assert called > 3
    assert by_account["fb"] == by_account["tt"]  # the same text from the one render
    assert all(t.startswith("[TEST] Called: ") for t in by_account["fb"].values())
    # One render per event for Facebook and TikTok together, one for X (its own template).
    assert renders.count("en/default/called.j2") == called
    assert renders.count("en/x/called.j2") == len(by_account["x"]) == called


def test_the_pipeline_renders_per_account_where_the_template_names_it(
    tmp_path: Path, demo_files: list[Path]
) -> None:
    rows = _night(tmp_path, demo_files, "{{ contest.name }} on {{ account.name }}")
    texts = {(row.account, row.event_key): row.text for row in rows}
    events = {key for _, key in texts}
    for key in events:
        assert texts[("fb", key)].endswith(" on fb")
        assert texts[("tt", key)].endswith(" on tt")
