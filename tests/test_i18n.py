"""Posts in English, Malay and Khmer: every default template, locale-aware numbers and dates,
Khmer digits, and display names and colours from the configuration."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from broadcaster.content.compose import Composer
from broadcaster.content.render import Locale, make_filters
from broadcaster.content.samples import SampleError, display_from, sample_vars
from broadcaster.domain.events import TEMPLATED_KINDS, EventKind
from broadcaster.ingest.parsers import parse
from broadcaster.runtime.configuration import load_config
from tests.conftest import DEMO, write_config

KHMER = re.compile(r"[\u1780-\u17ff]")
ENGLISH_WORDS = re.compile(r"\b(votes|wins|seats|reported|Source|Unofficial|majority|lead)\b")


@pytest.fixture(scope="module")
def snapshots():
    files = sorted(DEMO.glob("*.json"))
    return parse(files[8].read_bytes()), parse(files[-1].read_bytes())


def composer_for(tmp_path: Path, language: str, digits: bool = False, extra: str = "") -> Composer:
    accounts = "".join(
        f'\n[[accounts]]\nname = "{p}-{language}"\nplatform = "{p}"\nlanguage = "{language}"\n'
        f"khmer_digits = {'true' if digits else 'false'}\n"
        for p in ("facebook", "youtube", "tiktok", "x")
    )
    cfg = load_config(write_config(tmp_path / "c.toml", source="f", accounts=accounts, extra=extra))
    return Composer(cfg, dry_run=True)


def all_posts(composer: Composer, snapshots) -> list[tuple[str, str, str]]:
    out = []
    for snapshot in snapshots:
        for kind in TEMPLATED_KINDS:
            contests = (
                ["cc-D03", "pc-P1"]
                if kind.value in ("progress", "leader", "called", "corrected")
                else [None]
            )
            for contest in contests:
                try:
                    event, variables = sample_vars(
                        snapshot,
                        kind,
                        contest_id=contest,
                        timezone="Asia/Bangkok",
                        display=display_from(composer.config),
                    )
                except SampleError:
                    continue
                for account in composer.config.accounts:
                    parts = composer.compose_text(event, account, variables)
                    out.extend((account.platform, kind.value, p.text) for p in parts)
    return out


@pytest.mark.parametrize("language", ["en", "ms", "km"])
def test_every_default_template_renders_in_every_language(tmp_path, snapshots, language):
    posts = all_posts(composer_for(tmp_path, language), snapshots)
    kinds = {(platform, kind) for platform, kind, _ in posts}
    assert len(kinds) == 4 * len(TEMPLATED_KINDS), "a platform/kind pair has no post"
    for platform, kind, text in posts:
        assert text.startswith("[TEST]"), text
        assert "None" not in text
        if language == "km":
            assert KHMER.search(text), (platform, kind, text)
        if language != "en":
            # Template wording is translated; only names from the feed stay as they are.
            leftover = ENGLISH_WORDS.search(without_feed_names(text, snapshots))
            assert leftover is None, (platform, kind, text)


def without_feed_names(text: str, snapshots) -> str:
    """The text with the names the feed gave (contests, candidates, parties, the issuer) removed."""
    names = {"Demoland Election Commission (fictional, TEST DATA)"}
    for snapshot in snapshots:
        names.add(snapshot.election)
        names.update(c.name for c in snapshot.contests)
        names.update(s.name for c in snapshot.contests for s in c.selections)
        names.update(p.name for p in snapshot.parties.values())
        names.update(c.name for c in snapshot.coalitions.values())
    for name in sorted(names, key=len, reverse=True):
        text = text.replace(name, "")
    # Names that templates cut to fit (by whole words, with an ellipsis) are feed names too.
    for name in sorted(names, key=len, reverse=True):
        for k in range(len(name) - 1, 0, -1):
            text = text.replace(name[:k].rstrip(" ,;:/-") + "…", "")
    return text


def test_khmer_digits_are_used_for_every_number(tmp_path, snapshots):
    posts = all_posts(composer_for(tmp_path, "km", digits=True), snapshots)
    with_numbers = 0
    for _, _, text in posts:
        # ASCII digits may remain only inside names given by the feed (e.g. "D03").
        assert not re.search("[0-9]", without_feed_names(text, snapshots)), text
        with_numbers += bool(re.search("[០-៩]", text))
    assert with_numbers > len(posts) * 0.9


def test_babel_filters_per_language():
    when = datetime(2030, 7, 28, 14, 5, tzinfo=UTC)  # 21:05 in Bangkok
    en = make_filters(Locale("en", timezone="Asia/Bangkok"))
    assert en["number"](1234567) == "1,234,567"
    assert en["pct"](52.345) == "52.3%"
    assert en["pct"](25, 0) == "25%"
    assert en["time"](when) == "21:05"
    assert en["date"](when) == "July 28, 2030"
    ms = make_filters(Locale("ms", timezone="Asia/Bangkok"))
    assert ms["date"](when) == "28 Julai 2030"
    km = make_filters(Locale("km", khmer_digits=True, timezone="Asia/Bangkok"))
    assert km["number"](1234567) == "១,២៣៤,៥៦៧"
    assert km["pct"](52.345) == "៥២.៣%"
    assert km["time"](when) == "២១:០៥"
    assert km["date"](when) == "២៨ កក្កដា ២០៣០"
    assert en["number"](None) == en["pct"](None) == "-"


def test_display_names_and_colours_from_configuration(tmp_path, snapshots):
    extra = '[parties."par-hbr"]\nname = "Parti Pelabuhan"\nshort = "PP"\ncolor = "#112233"\n'
    composer = composer_for(tmp_path, "ms", extra=extra)
    _, final = snapshots
    event, variables = sample_vars(
        final,
        EventKind.CALLED,
        contest_id="cc-D01",
        timezone="Asia/Bangkok",
        display=display_from(composer.config),
    )
    harbour = next(s for s in variables["contest"]["selections"] if s["party_id"] == "par-hbr")
    assert harbour["party"] == "Parti Pelabuhan"
    assert harbour["party_abbr"] == "PP"
    assert harbour["party_color"] == "#112233"
    x = next(a for a in composer.config.accounts if a.platform == "x")
    assert "(PP)" in composer.compose_text(event, x, variables)[0].text
    _, tally = sample_vars(final, EventKind.TALLY, display=display_from(composer.config))
    assert "Parti Pelabuhan" in [p["name"] for p in tally["tally"]["parties"]]
