"""Result cards stay the same pictures while their drawing is made cheaper.

The hashes below are of the decoded pixels of cards drawn by the code before text, widths and
logos were cached and PNGs written without Pillow's encoder (commit afd0925). Each card is drawn
with every cache empty, then again with the caches warm from all the others, so a cache keyed
too loosely (a mask reused for another size, font or offset; a width for another string) changes
a hash. Regenerate the hashes only for a deliberate change of design (and bump CARD_DESIGN).
"""

from __future__ import annotations

import hashlib
import io
import math
import os
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageChops, ImageDraw

from broadcaster.content.cards import draw as cards
from broadcaster.content.cards.draw import (
    BOLD,
    REGULAR,
    CardError,
    CardStyle,
    clear_caches,
    draw_text,
    render_card,
    runs,
)
from broadcaster.content.cards.png import png_bytes, save_png
from broadcaster.content.render import Locale
from broadcaster.content.samples import sample_vars
from broadcaster.domain.events import EventKind
from broadcaster.ingest.parsers import parse
from broadcaster.publishers import capabilities_for
from broadcaster.publishers.base import CardSpec
from tests.conftest import DEMO

FACEBOOK = capabilities_for("facebook").card
X = capabilities_for("x").card
EN = Locale("en")
KM = Locale("km", khmer_digits=True)

# name: (snapshot: first or last of the demo night, kind, contest, spec, locale, with a logo)
CASES: dict[str, tuple[str, EventKind, str | None, CardSpec | None, Locale, bool]] = {
    "contest": ("last", EventKind.CALLED, "cc-D04", FACEBOOK, EN, False),
    "contest-km": ("last", EventKind.CALLED, "pc-P1", FACEBOOK, KM, False),
    "tally": ("last", EventKind.TALLY, None, X, EN, False),
    "tally-km": ("last", EventKind.TALLY, None, X, KM, False),
    "counting": ("first", EventKind.SUMMARY, None, X, EN, False),
    "counting-km": ("first", EventKind.SUMMARY, None, FACEBOOK, KM, False),
    "contest-logo": ("last", EventKind.CALLED, "cc-D04", FACEBOOK, EN, True),
}
PIXELS = {
    "contest": "c59f8eedc894ba702600637eaa2d3191010d44aaf0caa688e0725c60df22e617",
    "contest-km": "8f7208e57063705a7df0f88af5bbaa0c077acc758302b073c2ec9368b91fd173",
    "tally": "6d30463556af5750881f91638f09da4752ff337cf928ec0d88f4c0b9e9812b1f",
    "tally-km": "5b542613a7f0cb0559af9805b6540f7afe6243f71156d8fa282e3558cbc98072",
    "counting": "7cf4f8d7f98da017a74a1a812d372ab43072662e2deb5c9197faf1806ecffbf3",
    "counting-km": "beee54dfc7ee086a23134ee69cb7dfcdfad9eb8c0a5821c618cbd15648da9ad0",
    "contest-logo": "ced621db5f7f57c8c2ccddf1e104167cbf25152af6f65c84816e9596706adc7e",
}


def pixels(path: Path) -> str:
    with Image.open(path) as img:
        img.load()
        return hashlib.sha256(f"{img.mode} {img.size}".encode() + img.tobytes()).hexdigest()


def write_logo(path: Path, colour: str = "#F2B705", size: tuple[int, int] = (300, 120)) -> Path:
    logo = Image.new("RGBA", size, (0, 0, 0, 0))
    sketch = ImageDraw.Draw(logo)
    sketch.ellipse((4, 4, size[1] - 4, size[1] - 4), fill=colour)
    sketch.rectangle((size[1] + 10, 30, size[0] - 6, size[1] - 30), fill="#FFFFFF")
    logo.save(path)
    return path


@pytest.fixture(scope="module")
def snapshots() -> dict[str, Any]:
    files = sorted(DEMO.glob("*.json"))
    return {"first": parse(files[0].read_bytes()), "last": parse(files[-1].read_bytes())}


def draw_case(name: str, snapshots: dict[str, Any], folder: Path) -> Path:
    which, kind, contest, spec, locale, logo = CASES[name]
    assert spec is not None
    _, variables = sample_vars(snapshots[which], kind, contest_id=contest)
    style = CardStyle()
    if logo:
        path = folder / "logo.png"
        if not path.exists():
            write_logo(path)
        style = CardStyle(accent="#0B6E4F", title="Election night", logo=path)
    return render_card(variables, spec, locale, style, folder / f"{name}.{spec.format.lower()}")


def test_cards_are_the_same_pixels_cold_and_warm(tmp_path, snapshots):
    cold = {}
    for name in CASES:
        clear_caches()
        cold[name] = pixels(draw_case(name, snapshots, tmp_path))
    assert cold == PIXELS
    # Warm, in another order: every card now reuses what the others left in the caches.
    for name in reversed(CASES):
        assert pixels(draw_case(name, snapshots, tmp_path)) == PIXELS[name], name


def test_draw_text_matches_pillow_drawing_each_run(tmp_path):
    """The cached masks give what ImageDraw.text gives, whatever the colour, font, size and
    sub-pixel position (the old way of drawing: one draw.text per run)."""
    texts = ["Seat tally", "ជាប់ឆ្នោត ៥២.៣% (RVM)", "D04 Kampung Baru · 12,345 votes", "TEST"]
    positions = [(48, 40), (48.37, 40), (48.81, 91.5), (500.5, 200)]
    fills = ["#1A1A1A", "#FFFFFF", "#C62828"]
    clear_caches()
    ours = Image.new("RGB", (1080, 1000), "#1F4E79")
    theirs = ours.copy()
    mine, ref = ImageDraw.Draw(ours), ImageDraw.Draw(theirs)
    for _ in range(2):  # the second round draws every mask from the cache
        for i, text in enumerate(texts):
            for j, (x, y) in enumerate(positions):
                # The same string in both weights and two sizes at the same sub-pixel offset.
                for k, (size, bold) in enumerate([(26, False), (26, True), (34, False)]):
                    top = y + 240 * k + 60 * i
                    fill = fills[(i + j + k) % len(fills)]
                    width = draw_text(mine, (x, top), text, size, fill, bold=bold)
                    left = x
                    for part, font in runs(text, size, bold):
                        ref.text((left, top), part, font=font, fill=fill)
                        left += font.getlength(part)
                    assert math.isclose(width, left - x)
        assert ImageChops.difference(ours, theirs).getbbox() is None


def test_masks_are_kept_within_their_budget(monkeypatch):
    masks = cards._Masks(budget=10_000)
    monkeypatch.setattr(cards, "_MASKS", masks)
    img = Image.new("RGB", (1200, 200), "#FFFFFF")
    for n in range(30):
        draw_text(ImageDraw.Draw(img), (10, 10), f"Candidate number {n}", 20, "#000000")
    assert 0 < masks._used <= 10_000
    assert 0 < len(masks._items) < 30  # the oldest were dropped
    draw_text(ImageDraw.Draw(img), (10, 10), "x" * 400, 60, "#000000")  # over budget alone
    assert 0 < masks._used <= 10_000
    masks.clear()
    assert masks._used == 0


def test_png_writer_is_lossless(tmp_path):
    img = Image.new("RGB", (333, 77), "#FFFFFF")
    ImageDraw.Draw(img).text((5, 5), "Seat tally 45.3%", fill="#1F4E79")
    for x in range(0, 333, 7):  # every byte value somewhere, including row starts and ends
        img.putpixel((x, 40), (x % 256, (x * 7) % 256, (x * 13) % 256))
    img.putpixel((332, 76), (1, 2, 3))
    data = png_bytes(img)
    with Image.open(io.BytesIO(data)) as back:
        back.verify()
    with Image.open(io.BytesIO(data)) as back:
        assert back.format == "PNG"
        assert back.mode == "RGB"
        assert back.size == (333, 77)
        assert back.tobytes() == img.tobytes()
    # Other modes go through Pillow's encoder.
    save_png(img.convert("RGBA"), tmp_path / "rgba.png")
    with Image.open(tmp_path / "rgba.png") as back:
        assert back.mode == "RGBA"
        assert back.convert("RGB").tobytes() == img.tobytes()
    with pytest.raises(ValueError, match="RGB"):
        png_bytes(img.convert("L"))


def test_a_changed_logo_file_is_read_again(tmp_path, snapshots):
    logo = write_logo(tmp_path / "logo.png")
    _, variables = sample_vars(snapshots["last"], EventKind.TALLY)
    style = CardStyle(logo=logo)
    assert FACEBOOK is not None
    first = pixels(render_card(variables, FACEBOOK, EN, style, tmp_path / "a.png"))
    write_logo(logo, colour="#00A0E0", size=(240, 120))
    os.utime(logo, ns=(1, 1))  # another version even on a coarse clock
    second = pixels(render_card(variables, FACEBOOK, EN, style, tmp_path / "b.png"))
    assert first != second
    clear_caches()
    assert pixels(render_card(variables, FACEBOOK, EN, style, tmp_path / "c.png")) == second
    logo.unlink()
    with pytest.raises(CardError, match="cannot read the card logo"):
        render_card(variables, FACEBOOK, EN, style, tmp_path / "d.png")


def test_fonts_cover_the_same_scripts_as_before():
    # runs() still splits by coverage, independent of size: Latin, then Khmer.
    assert [(t, Path(f.path).name) for t, f in runs("D04 ជាប់", 30)] == [
        ("D04 ", Path(REGULAR[0]).name),
        ("ជាប់", Path(REGULAR[1]).name),
    ]
    assert Path(runs("X", 12, bold=True)[0][1].path) == BOLD[0]
