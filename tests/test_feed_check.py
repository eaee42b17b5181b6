"""`broadcaster feed check`: what an IT team runs while wiring up its feed."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import DEMO
from tests.test_parse_mapped import example


def test_feed_check_prints_what_it_understood(cli):
    result = cli("feed", "check", str(sorted(DEMO.glob("*.json"))[12]))
    assert result.returncode == 0, result.stderr
    assert "Demoland" in result.stdout
    assert "cc-D01" in result.stdout
    assert "contests declared" in result.stdout
    assert "test data: yes" in result.stdout


def test_feed_check_with_a_mapping_and_its_problems(cli, tmp_path: Path):
    feed = tmp_path / "live.json"
    feed.write_text(example("json-feed"))
    mapping = tmp_path / "mapping.toml"
    mapping.write_text(example("json-mapping"))
    ok = cli("feed", "check", str(feed), "--mapping", str(mapping))
    assert ok.returncode == 0, ok.stderr
    assert "Northbay (TEST)" in ok.stdout
    assert "Dina Kovac" in ok.stdout
    assert "12/20 (60 %)" in ok.stdout
    feed.write_text(example("json-feed").replace('"votes": 5210', '"votes": "5,210"'))
    bad = cli("feed", "check", str(feed), "--mapping", str(mapping))
    assert bad.returncode == 1
    assert "mapping selections.votes = 'votes' (contest 'P001', selection #1)" in bad.stderr
    html = tmp_path / "page.html"
    html.write_text("<!DOCTYPE html><html><body>Service unavailable</body></html>")
    page = cli("feed", "check", str(html))
    assert page.returncode == 1
    assert "an HTML page was served instead of a results feed" in page.stderr


def test_feed_check_flags_an_implausible_snapshot(cli, tmp_path: Path):
    feed = tmp_path / "live.json"
    feed.write_text(example("json-feed").replace('"ballots": 9320', '"ballots": 9000'))
    mapping = tmp_path / "mapping.toml"
    mapping.write_text(example("json-mapping"))
    result = cli("feed", "check", str(feed), "--mapping", str(mapping))
    assert result.returncode == 0, result.stderr
    assert "implausible (votes_over_ballots): Northbay (TEST): 9115 votes counted but 9000" in (
        result.stdout
    )
