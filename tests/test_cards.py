"""Result cards: shaped Khmer, no missing glyphs, the platforms' formats and sizes."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image, ImageFont, features

from broadcaster.content.cards.draw import (
    LABELS,
    REGULAR,
    CardStyle,
    missing_glyphs,
    render_card,
    runs,
)
from broadcaster.content.render import Locale
from broadcaster.content.samples import sample_vars
from broadcaster.domain.events import EventKind
from broadcaster.ingest.parsers import parse
from broadcaster.publishers import capabilities_for
from tests.conftest import DEMO, read_jsonl, write_config

KHMER_PHRASE = "ទិន្នន័យសាកល្បង ជាប់ឆ្នោត អាសនៈភាគច្រើន"  # subscripts (្ន, ្ប) and vowel signs


@pytest.fixture(scope="module")
def final():
    return parse(sorted(DEMO.glob("*.json"))[-1].read_bytes())


def test_raqm_is_available_and_shapes_khmer():
    assert features.check("raqm"), "Pillow was built without raqm: Khmer cannot be shaped"
    shaped = ImageFont.truetype(str(REGULAR[1]), 40, layout_engine=ImageFont.Layout.RAQM)
    basic = ImageFont.truetype(str(REGULAR[1]), 40, layout_engine=ImageFont.Layout.BASIC)
    # Shaping stacks subscript consonants under their base and places vowel signs, so the
    # shaped line is narrower than the same code points laid side by side.
    assert shaped.getlength(KHMER_PHRASE) < basic.getlength(KHMER_PHRASE) - 10
    # Each run is drawn with a font that covers it: Latin in Noto Sans, Khmer in Noto Sans Khmer.
    pieces = runs("D04 ជាប់ឆ្នោត (RVM) ៥២.៣%", 30)
    assert [Path(f.path).name for _, f in pieces][:2] == [
        "NotoSans-Regular.ttf",
        "NotoSansKhmer-Regular.ttf",
    ]


def test_no_tofu_in_anything_a_card_writes(final):
    for labels in LABELS.values():
        for text in labels.values():
            assert not missing_glyphs(text), text
            assert not missing_glyphs(text, bold=True), text
    for contest in final.contests:
        assert not missing_glyphs(contest.name)
        for s in contest.selections:
            assert not missing_glyphs(s.name)
    assert not missing_glyphs("០១២៣៤៥៦៧៨៩ 0123456789 %,.:·…-()/")
    assert missing_glyphs("漢字") == {"漢", "字"}  # the check can fail


@pytest.mark.parametrize(
    ("platform", "fmt", "size"),
    [
        ("tiktok", "JPEG", (1080, 1080)),
        ("x", "PNG", (1200, 675)),
        ("facebook", "PNG", (1080, 1080)),
    ],
)
@pytest.mark.parametrize("kind", [EventKind.CALLED, EventKind.TALLY])
def test_card_format_and_size_per_platform(tmp_path, final, platform, fmt, size, kind):
    spec = capabilities_for(platform).card
    assert spec is not None
    _, variables = sample_vars(
        final, kind, contest_id="pc-P1" if kind is EventKind.CALLED else None
    )
    out = render_card(
        variables, spec, Locale("km", khmer_digits=True), CardStyle(), tmp_path / "card"
    )
    with Image.open(out) as img:
        assert img.format == fmt
        assert img.size == size
        assert max(img.size) <= 1080 or platform != "tiktok"
        # Test data carries a red banner under the header.
        band = int(110 * min(size[0], size[1] * 1.25) / 1080)
        red = img.convert("RGB").getpixel((5, band + 25))
        assert all(abs(a - b) <= 8 for a, b in zip(red, (198, 40, 40), strict=True)), red
        # Something was drawn: plenty of dark pixels (text) on the white body.
        body = img.convert("L").crop((0, band + 80, size[0], size[1] - 100))
        dark = sum(body.histogram()[:100])
        assert dark > 2000


def test_youtube_takes_no_card_and_tiktok_requires_one():
    assert capabilities_for("youtube").card is None
    assert capabilities_for("tiktok").requires_media


def test_a_rehearsal_attaches_cards_where_platforms_take_media(tmp_path, cli):
    cfg = write_config(
        tmp_path / "c.toml",
        source="feed",
        cards=True,
        accounts='[[accounts]]\nname = "tt"\nplatform = "tiktok"\nevents = ["called", "majority"]\n'
        '[[accounts]]\nname = "yt"\nplatform = "youtube"\nevents = ["called"]\n',
    )
    result = cli(
        "rehearse", str(DEMO), "--fast", "--config", str(cfg), "--out", str(tmp_path / "o")
    )
    assert result.returncode == 0, result.stderr
    records = read_jsonl(tmp_path / "o" / "posts.jsonl")
    tiktok = [r for r in records if r["platform"] == "tiktok"]
    assert tiktok
    assert all(len(r["media"]) == 1 and r["media"][0].endswith(".jpg") for r in tiktok)
    assert all(Path(r["media"][0]).is_file() for r in tiktok)
    assert all(r["title"] and len(r["title"].encode("utf-16-le")) // 2 <= 90 for r in tiktok)
    assert all(r["media"] == [] for r in records if r["platform"] == "youtube")
