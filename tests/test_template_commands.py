"""`broadcaster templates lint` and `broadcaster preview` as an operator runs them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import DEMO, write_config

FINAL = sorted(DEMO.glob("*.json"))[-1]


def test_lint_passes_on_the_bundled_templates(cli):
    result = cli("templates", "lint")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 problems" in result.stdout


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("Result\n{{ contest.name }", ":2: syntax error"),
        ("{{ contest.name }}\n{{ contest.winner_name }}", ":2: unknown variable"),
        ("{{ contest.name|shout }}", ":1: unknown filter: No filter named 'shout'"),
        ("{% if false %}x{% endif %}", ": the template produced an empty post"),
        ("{% for i in range(40) %}{{ contest.name }} {% endfor %}", ": over the platform limit"),
        ("{% if true %}" * 120 + "x" + "{% endif %}" * 120, ": template too complex"),
    ],
)
def test_lint_reports_path_line_and_message(tmp_path: Path, cli, source: str, message: str):
    tpl = tmp_path / "tpl" / "en" / "x"
    tpl.mkdir(parents=True)
    (tpl / "called.j2").write_text(source)
    cfg = write_config(tmp_path / "c.toml", source="f", extra='[templates]\ndir = "tpl"\n')
    result = cli("templates", "lint", "--config", str(cfg))
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert any(line.startswith(str(tpl / "called.j2")) and message in line for line in lines), lines
    assert re.search(r"\b[1-9][\d,]* problems?\b", result.stderr), result.stderr


def test_lint_against_an_operators_snapshot(tmp_path: Path, cli):
    result = cli("templates", "lint", "--snapshot", str(FINAL))
    assert result.returncode == 0, result.stdout + result.stderr


def test_preview_in_khmer_for_an_account_with_a_card(tmp_path: Path, cli):
    accounts = (
        '[[accounts]]\nname = "nec-tiktok"\nplatform = "tiktok"\nlanguage = "km"\n'
        "khmer_digits = true\n"
    )
    cfg = write_config(tmp_path / "c.toml", source="f", accounts=accounts)
    image = tmp_path / "card.jpg"
    result = cli(
        "preview",
        "--snapshot",
        str(FINAL),
        "--account",
        "nec-tiktok",
        "--event",
        "called",
        "--contest",
        "cc-D05",
        "--image",
        str(image),
        "--config",
        str(cfg),
    )
    assert result.returncode == 0, result.stderr
    assert "ជាប់ឆ្នោតនៅ D05 Old Quarry" in result.stdout
    assert "[title] [TEST]" in result.stdout
    assert "១" in result.stdout or "២" in result.stdout
    with Image.open(image) as img:
        assert img.format == "JPEG"
        assert img.size == (1080, 1080)


def test_preview_language_override_and_thread(tmp_path: Path, cli):
    result = cli(
        "preview",
        "--snapshot",
        str(FINAL),
        "--platform",
        "youtube",
        "--lang",
        "ms",
        "--event",
        "tally",
    )
    assert result.returncode == 0, result.stderr
    assert "Majoriti" in result.stdout
    tpl = tmp_path / "tpl" / "en" / "x"
    tpl.mkdir(parents=True)
    (tpl / "tally.j2").write_text(
        "{% for p in tally.parties %}{{ p.name }} holds {{ p.seats }} seats of the assembly"
        " in this count.\n{% endfor %}" * 3
    )
    cfg = write_config(
        tmp_path / "c.toml",
        source="f",
        extra='[templates]\ndir = "tpl"\n[templates.overflow]\n"x/tally" = "thread"\n',
    )
    result = cli(
        "preview",
        "--snapshot",
        str(FINAL),
        "--platform",
        "x",
        "--event",
        "tally",
        "--config",
        str(cfg),
    )
    assert result.returncode == 0, result.stderr
    assert "--- reply ---" in result.stdout
    assert " 1/" in result.stdout


def test_preview_rejects_an_unknown_account(cli):
    result = cli("preview", "--snapshot", str(FINAL), "--account", "nobody")
    assert result.returncode == 2
    assert "no account 'nobody'" in result.stderr
