from __future__ import annotations

from pathlib import Path

import pytest

from broadcaster.core.config import ConfigError
from broadcaster.domain.events import EventKind
from broadcaster.runtime.configuration import load_config
from tests.conftest import ROOT, write_config


def test_annotated_example_and_bundled_config_load():
    example = load_config(ROOT / "config" / "example.toml")
    assert [a.platform for a in example.accounts] == [
        "facebook",
        "x",
        "youtube",
        "tiktok",
        "telegram",
    ]
    assert example.accounts[1].wants(EventKind.CALLED)
    assert not example.accounts[1].wants(EventKind.PROGRESS)
    assert example.database_url == f"sqlite:///{ROOT / 'config' / 'broadcaster.db'}"
    bundled = load_config(None)
    assert {a.platform for a in bundled.accounts} == {"facebook", "youtube", "tiktok", "x"}
    assert all(a.dry_run for a in bundled.accounts)
    assert bundled.feed.is_test


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("[feed]\nsource='x'\npoll_intervall = 3\n", "feed.poll_intervall: unknown key"),
        (
            "[feed]\nsource='x'\npoll_interval = 'soon'\n",
            "feed.poll_interval: Input should be a valid number",
        ),
        (
            "[feed]\nsource='x'\nformat = 'xml'\n",
            "feed.format: Input should be 'auto', 'nist', 'csv', 'eml' or 'mapped'",
        ),
        (
            "[feed]\nsource='x'\n[election]\ntimezone='Mars/Olympus'\n",
            "election.timezone: expected an IANA timezone name",
        ),
        (
            "[feed]\nsource='x'\n[events]\nthresholds=[0, 50]\n",
            "events.thresholds: expected percentages between 1 and 100",
        ),
        ("[feed]\nsource='x'\n", "accounts: required key is missing"),
        ("[election]\n", "feed: required key is missing"),
    ],
)
def test_wrong_key_type_or_value_is_named(tmp_path: Path, extra: str, expected: str):
    cfg = tmp_path / "c.toml"
    accounts = "" if "accounts:" in expected else '\n[[accounts]]\nname="a"\nplatform="x"\n'
    cfg.write_text(extra + accounts)
    with pytest.raises(ConfigError) as info:
        load_config(cfg)
    assert expected in str(info.value)
    assert str(cfg) in str(info.value)


def test_account_errors_name_the_account(tmp_path: Path):
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        "[feed]\nsource='x'\n"
        '[[accounts]]\nname="ok"\nplatform="x"\n'
        '[[accounts]]\nname="bad"\nplatform="myspace"\n'
    )
    with pytest.raises(
        ConfigError,
        match=r"accounts\[1\] \(bad\)\.platform: unknown platform 'myspace'; expected one of "
        r"dryrun, facebook",
    ):
        load_config(cfg)
    cfg.write_text(
        "[feed]\nsource='x'\n"
        '[[accounts]]\nname="dup"\nplatform="x"\n'
        '[[accounts]]\nname="dup"\nplatform="facebook"\n'
    )
    with pytest.raises(ConfigError, match="two accounts are named 'dup'"):
        load_config(cfg)


def test_broken_toml_and_missing_file(tmp_path: Path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[feed\nsource='x'\n")
    with pytest.raises(ConfigError, match=r"not valid TOML \(.*line 1"):
        load_config(cfg)
    with pytest.raises(ConfigError, match="cannot read the configuration"):
        load_config(tmp_path / "absent.toml")


def test_cli_exits_2_with_the_key_named(tmp_path: Path, cli):
    cfg = write_config(
        tmp_path / "c.toml", source="feed.json", extra="[events]\ntally_every = -1\n"
    )
    result = cli("run", "--config", str(cfg), "--dry-run")
    assert result.returncode == 2
    assert "events.tally_every" in result.stderr
    assert "greater than or equal to 0" in result.stderr
