"""Adding a platform is adding one module and one registry entry: nothing else names it."""

from __future__ import annotations

from pathlib import Path

import pytest

from broadcaster.core.clock import FeedClock
from broadcaster.core.config import ConfigError
from broadcaster.publishers import registry
from broadcaster.publishers.base import PublisherEnv
from broadcaster.runtime.configuration import load_config
from tests.conftest import write_config

PIGEON = '\n[[accounts]]\nname = "loft-1"\nplatform = "pigeon"\ndry_run = false\nloft = "north"\n'


@pytest.fixture
def pigeon(monkeypatch):
    monkeypatch.setitem(registry.REGISTRY, "pigeon", "tests.fixtures.pigeon:PigeonPublisher")
    registry.publisher_class.cache_clear()
    yield
    registry.publisher_class.cache_clear()


def test_a_registered_platform_is_configured_limited_and_created(tmp_path: Path, pigeon):
    config = load_config(write_config(tmp_path / "c.toml", source="f", accounts=PIGEON))
    (account,) = config.accounts
    assert registry.capabilities_for("pigeon").text.limit == 50
    assert registry.text_limits("pigeon", {"pigeon": 20})[0].limit == 20
    env = PublisherEnv(clock=FeedClock(), posts_path=tmp_path / "posts.jsonl")
    publisher = registry.create_publisher(account, env, dry_run=False)
    assert type(publisher).__name__ == "PigeonPublisher"
    assert registry.publisher_class("pigeon").doctor(account, env) == "loft north ready"
    dry = registry.create_publisher(account, env, dry_run=True)
    assert dry.platform == "dryrun"


def test_its_settings_are_checked_by_its_own_model(tmp_path: Path, pigeon):
    cfg = write_config(tmp_path / "c.toml", source="f", accounts=PIGEON.replace("loft =", "roof ="))
    with pytest.raises(ConfigError) as refused:
        load_config(cfg)
    assert "accounts[0] (loft-1).roof: unknown key" in str(refused.value)
    assert "accounts[0] (loft-1).loft: required key is missing" in str(refused.value)


def test_an_unregistered_platform_is_refused_naming_the_known_ones(tmp_path: Path):
    cfg = write_config(tmp_path / "c.toml", source="f", accounts=PIGEON)
    with pytest.raises(ConfigError, match=r"unknown platform 'pigeon'; expected one of dryrun"):
        load_config(cfg)
    with pytest.raises(registry.UnknownPlatform):
        registry.publisher_class("pigeon")
