"""The live channel's picture: the layout template (sandboxed, last good kept), the scenes and
the per-frame compositor, the data it shows, and the [live] configuration."""

from __future__ import annotations

import textwrap
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from PIL import ImageChops

from broadcaster.core.config import ConfigError, parse_config
from broadcaster.core.paths import DEMO_SNAPSHOTS
from broadcaster.domain.model import ResultsStatus
from broadcaster.live.data import EMPTY, replay_steps, results_status
from broadcaster.live.layout import LayoutError
from broadcaster.live.picture import Compositor, Focus, Painter, layout_variables
from broadcaster.runtime.configuration import load_config

SIZE = (640, 360)


@pytest.fixture(scope="module")
def config():
    return load_config(None)


@pytest.fixture(scope="module")
def steps(config):
    return replay_steps(config, sorted(DEMO_SNAPSHOTS.glob("*.json")))


def changed_pixels(a, b, box=None) -> int:
    if box is not None:
        a, b = a.crop(box), b.crop(box)
    diff = ImageChops.difference(a.convert("RGB"), b.convert("RGB")).getbbox()
    return 0 if diff is None else (diff[2] - diff[0]) * (diff[3] - diff[1])


@pytest.mark.parametrize("language", ["en", "ms", "km"])
@pytest.mark.parametrize("orientation", ["landscape", "portrait"])
def test_default_layout_draws_every_language_and_orientation(config, steps, language, orientation):
    size = SIZE if orientation == "landscape" else SIZE[::-1]
    painter = Painter(config, size, orientation, language=language)
    for data in (EMPTY, steps[5].data, steps[-1].data):
        scene = painter.scene(data)
        assert painter.template.problem is None
        assert scene.base.size == size
    assert scene.rotating, "the ticker and the panel rotate"


def test_replay_finds_calls_in_order_and_the_tally(steps):
    last = steps[-1].data
    assert last.tally is not None
    assert last.tally.contests_called == 15
    # Every seat is declared but the postponed one, which stays in the chamber's size.
    assert last.tally.declared_seats == last.tally.total_seats - last.tally.seats_not_reporting
    assert [c.at for c in last.calls] == sorted((c.at for c in last.calls), reverse=True)
    assert len({c.contest_id for c in last.calls}) == len(last.calls)
    assert steps[0].data.calls == ()


def test_status_text_comes_from_one_function(steps):
    snapshot = steps[5].data.snapshot  # before any seat is declared official
    assert results_status(None) == "waiting"
    assert results_status(replace(snapshot, status=ResultsStatus.PARTIAL)) == "provisional"
    assert results_status(replace(snapshot, status=ResultsStatus.OFFICIAL)) == "official"
    assert results_status(replace(snapshot, status=ResultsStatus.CERTIFIED)) == "certified"
    assert results_status(replace(snapshot, status=ResultsStatus.CORRECTION)) == "corrected"


def test_tally_region_changes_with_the_tally_and_nothing_else_redraws(config, steps):
    painter = Painter(config, (1280, 720), "landscape")
    compositor = Compositor(painter)
    at = steps[8].at
    before, _ = compositor.frame(painter.scene(steps[8].data), at, 0.0)
    before = before.copy()
    # The same moment again: nothing to redraw, the encoder reuses its frame.
    scene = painter.scene(steps[8].data)
    compositor.frame(scene, at, 0.0)
    _, changed = compositor.frame(scene, at, 0.5)
    assert changed is False
    # The clock's next second redraws only the clock's box.
    later, changed = compositor.frame(scene, at + timedelta(seconds=1), 0.6)
    assert changed
    clock = scene.clock_box
    assert changed_pixels(before, later) > 0
    assert changed_pixels(before, later, (0, clock[3], 1280, 720)) == 0
    # New seats: the tally region (left column, under the heading) differs.
    after, _ = compositor.frame(painter.scene(steps[12].data), at, 0.0)
    assert steps[8].data.tally.signature != steps[12].data.tally.signature
    assert changed_pixels(before, after, (40, 260, 760, 540)) > 0


def test_rotating_panel_and_ticker_pages_follow_the_clock(config, steps):
    painter = Painter(config, SIZE, "landscape")
    scene = painter.scene(steps[10].data)
    compositor = Compositor(painter)
    at = steps[10].at
    first = compositor.frame(scene, at, 0.0)[0].copy()
    panel = next(r for r in scene.rotating if len(r.pages) > 1)
    other = compositor.frame(scene, at, panel.seconds + 0.1)[0]
    assert changed_pixels(first, other, panel.box) > 0


def test_layout_variables_for_a_short_focus_on_one_contest(config, steps):
    data = steps[-1].data
    contest = data.calls[0].contest_id
    variables = layout_variables(
        config, data, orientation="portrait", language="en", focus=Focus(contest)
    )
    assert variables["focus"]["kind"] == "contest"
    assert variables["focus"]["contest"]["id"] == contest
    tally = layout_variables(config, data, orientation="portrait", language="en", focus=Focus())
    assert tally["focus"]["kind"] == "tally"


def operator_config(tmp_path: Path, layout: str) -> object:
    folder = tmp_path / "templates" / "live"
    folder.mkdir(parents=True)
    (folder / "channel.j2").write_text(textwrap.dedent(layout), encoding="utf-8")
    (tmp_path / "config.toml").write_text(
        textwrap.dedent(
            """
            [feed]
            source = "snapshots"
            [templates]
            dir = "templates"
            [[accounts]]
            name = "a"
            platform = "dryrun"
            """
        ),
        encoding="utf-8",
    )
    return load_config(tmp_path / "config.toml")


GOOD = """
background = "#000000"
[[text]]
x = 10
y = 10
w = 300
h = 40
text = {{ (election.name if election else "waiting")|tojson }}
"""


def test_operator_layout_is_used_and_a_broken_edit_keeps_the_last_good(tmp_path, steps, caplog):
    config = operator_config(tmp_path, GOOD)
    painter = Painter(config, SIZE, "landscape")
    good = painter.scene(steps[3].data).base
    assert good.getpixel((600, 300)) == (0, 0, 0)  # the operator's background, not ours
    path = tmp_path / "templates" / "live" / "channel.j2"
    path.write_text(GOOD.replace('background = "#000000"', 'background = "#00000"'), "utf-8")
    assert painter.template_changed()
    again = painter.scene(steps[3].data)
    assert again.base.getpixel((600, 300)) == (0, 0, 0)
    problem = painter.template.problem
    assert problem is not None
    assert "channel.j2" in problem.where
    assert "background" in problem.message
    assert "the last good layout stays on screen" in caplog.text
    path.write_text(GOOD.replace("#000000", "#FFFFFF"), "utf-8")
    fixed = painter.scene(steps[3].data)
    assert painter.template.problem is None
    assert fixed.base.getpixel((600, 300)) == (255, 255, 255)


@pytest.mark.parametrize(
    ("layout", "expected"),
    [
        ('background = {{ "{0.__class__}".format(1)|tojson }}', "not allowed"),
        ("background = {{ nothing_here }}", "unknown variable"),
        ("{% for i in range(10**9) %}x{% endfor %}", "range"),
        ("[[text]]\nx = 1", "text"),
        ("this is = not toml", "not valid TOML"),
    ],
)
def test_layout_template_runs_in_the_post_sandbox(tmp_path, layout, expected):
    config = operator_config(tmp_path, layout)
    painter = Painter(config, SIZE, "landscape")
    with pytest.raises(LayoutError) as caught:
        painter.template.render(
            layout_variables(config, EMPTY, orientation="landscape", language="en")
        )
    assert expected in str(caught.value)
    assert str(tmp_path) in caught.value.where
    # Broken from the start: the bundled layout is drawn meanwhile, the problem is reported.
    scene = painter.scene(EMPTY)
    assert scene.base.getpixel((5, 5)) != scene.base.getpixel((5, 300))  # header band drawn
    assert painter.template.problem is not None


def live_toml(destinations: str, accounts: str = "") -> dict:
    import tomllib

    return tomllib.loads(
        f"""
[feed]
source = "x"
[[accounts]]
name = "yt"
platform = "youtube"
{accounts}
[live]
enabled = true
{destinations}
"""
    )


@pytest.mark.parametrize(
    ("destination", "message"),
    [
        ('kind = "youtube"', "needs `account`"),
        ('kind = "youtube"\naccount = "nobody"', "no youtube account 'nobody'"),
        ('kind = "facebook"\naccount = "yt"', "no facebook account 'yt'"),
        ('kind = "tiktok"\nurl = "rtmp://push.example/live"', "stream_key"),
        ('kind = "rtmp"\nurl = "http://example/live"', "url"),
        ('kind = "rtmp"\nurl = "rtmp://a/b"\nstream_key = "K"\npassword = "x"', "unknown key"),
    ],
)
def test_live_configuration_errors_name_the_key(tmp_path, destination, message):
    data = live_toml(f'[[live.destinations]]\nname = "d"\n{destination}')
    with pytest.raises(ConfigError) as caught:
        parse_config(data, "night.toml", tmp_path)
    assert message in str(caught.value)
    assert "live" in str(caught.value)


def test_live_configuration_defaults(tmp_path):
    data = live_toml(
        '[[live.destinations]]\nname = "yt"\nkind = "youtube"\naccount = "yt"\n'
        '[[live.destinations]]\nname = "tt"\nkind = "tiktok"\nurl = "rtmps://push.example/live"'
        '\nstream_key = "TIKTOK_STREAM_KEY"\norientation = "portrait"'
    )
    config = parse_config(data, "night.toml", tmp_path)
    assert (config.live.width, config.live.height, config.live.fps) == (1280, 720, 30)
    assert config.live.bitrate == 3_000_000
    assert config.live.destinations[1].orientation == "portrait"


def test_test_data_is_never_streamed_to_a_real_destination(tmp_path):
    from broadcaster.live.runner import refuse_test_stream
    from broadcaster.outbox.store import Store

    data = live_toml(
        '[[live.destinations]]\nname = "own"\nkind = "rtmp"\nurl = "rtmp://media.example/live"'
    )
    data["feed"]["is_test"] = True
    config = parse_config(data, "night.toml", tmp_path)
    store = Store(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        with pytest.raises(ConfigError, match="own"):
            refuse_test_stream(config, store, dry_run=False)
        refuse_test_stream(config, store, dry_run=True)
        data["live"]["destinations"][0]["allow_test_data"] = True
        allowed = parse_config(data, "night.toml", tmp_path)
        refuse_test_stream(allowed, store, dry_run=False)
    finally:
        store.close()
