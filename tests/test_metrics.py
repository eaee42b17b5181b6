"""GET /metrics from a real server, read back with prometheus_client's own parser: every metric
keeps its name, type and labels, the latency is a histogram, and the feed's health is there."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from broadcaster.core.clock import FeedClock
from broadcaster.delivery.dispatcher import Dispatcher
from broadcaster.ingest.health import FeedHealth
from broadcaster.ingest.sources import make_fetched
from broadcaster.outbox.state import PauseRecord, State
from broadcaster.outbox.store import Store
from broadcaster.publishers import PublisherEnv
from broadcaster.runtime.configuration import load_config
from broadcaster.runtime.cycle import Pipeline
from broadcaster.runtime.live_health import STATES
from broadcaster.runtime.metrics import LATENCY_BUCKETS
from broadcaster.runtime.service import HealthServer
from tests.conftest import write_config

SERVICE = '[service]\nlisten = "127.0.0.1:0"\n'
ODD = 'rtmp "backup" \\ 2\nline'  # a destination name that needs escaping

# name -> type, as Prometheus reads them (a counter's family drops its _total).
EXPECTED = {
    "broadcaster_up": "gauge",
    "broadcaster_polls": "counter",
    "broadcaster_poll_failures": "counter",
    "broadcaster_snapshots": "counter",
    "broadcaster_events": "counter",
    "broadcaster_posts": "gauge",
    "broadcaster_post_latency_seconds": "histogram",
    "broadcaster_budget_remaining_posts": "gauge",
    "broadcaster_account_paused": "gauge",
    "broadcaster_last_feed_change_timestamp_seconds": "gauge",
    "broadcaster_last_poll_timestamp_seconds": "gauge",
    "broadcaster_feed_consecutive_failures": "gauge",
    "broadcaster_feed_seconds_since_good_poll": "gauge",
    "broadcaster_feed_last_good_poll_timestamp_seconds": "gauge",
    "broadcaster_live_up": "gauge",
    "broadcaster_live_frames": "counter",
    "broadcaster_live_late_frames": "counter",
    "broadcaster_live_data_latency_seconds": "gauge",
    "broadcaster_live_destination_state": "gauge",
    "broadcaster_live_bitrate_bits": "gauge",
    "broadcaster_live_dropped_frames": "counter",
    "broadcaster_live_sent_frames": "counter",
    "broadcaster_live_reconnects": "counter",
}


@pytest.fixture
def night(tmp_path: Path, demo_files) -> Iterator[tuple[Any, Store]]:
    """Half the demo night ingested and sent (dry run), x-test paused, a live channel report."""
    config = load_config(write_config(tmp_path / "c.toml", source="feed.json", extra=SERVICE))
    store = Store(config.database_url)
    clock = FeedClock(datetime(2030, 7, 28, 12, tzinfo=UTC))
    pipeline = Pipeline(config, store, clock=clock, dry_run=True)
    for p in demo_files[:8]:
        pipeline.ingest(make_fetched(p.read_bytes(), p.name), "test")
    env = PublisherEnv(clock=clock, posts_path=tmp_path / "posts.jsonl", timezone="Asia/Bangkok")
    Dispatcher(config, store, clock=clock, env=env, dry_run=True).drain()
    State(store).set_pause("x-test", PauseRecord("checking the X account"))
    State(store).set_live_status(
        {
            "updated_at": time.time(),
            "running": True,
            "frames": 900,
            "late_frames": 3,
            "data_latency": 1.5,
            "destinations": {
                "youtube": {"state": "live", "bitrate": 3_000_000, "frames_sent": 880},
                ODD: {"state": "reconnecting", "dropped_frames": 42, "connects": 3},
            },
        }
    )
    yield config, store
    store.close()


def scrape(server: HealthServer) -> tuple[str, dict[str, Any]]:
    answer = requests.get(f"{server.address}/metrics", timeout=30)
    assert answer.status_code == 200
    families = {f.name: f for f in text_string_to_metric_families(answer.text)}
    return answer.headers["Content-Type"], families


def samples(family: Any, suffix: str = "") -> list[Sample]:
    return [s for s in family.samples if s.name == family.name + suffix]


def test_metrics_from_a_real_server_keep_every_name_and_type(night):
    config, store = night
    now = time.time()
    health = FeedHealth(started_at=now - 900, last_poll=now, last_good=now - 100, failures=2)
    counters = {"polls": 7, "poll_failures": 2, "last_poll": now}
    server = HealthServer(
        config, store, counters=counters, alive=lambda: True, dry_run=True, feed_health=health
    ).start()
    try:
        ctype, families = scrape(server)
    finally:
        server.stop()
    assert ctype.startswith("text/plain")
    assert {name: f.type for name, f in families.items() if name in EXPECTED} == EXPECTED
    assert samples(families["broadcaster_polls"], "_total")[0].value == 7
    assert samples(families["broadcaster_poll_failures"], "_total")[0].value == 2
    snapshots = {
        s.labels["outcome"]: s.value for s in samples(families["broadcaster_snapshots"], "_total")
    }
    assert snapshots == {"accepted": 8, "rejected": 0}

    paused = {s.labels["account"]: s.value for s in samples(families["broadcaster_account_paused"])}
    assert paused == {"facebook-test": 0, "youtube-test": 0, "tiktok-test": 0, "x-test": 1}

    # The feed's health, as /healthz judges it.
    assert samples(families["broadcaster_feed_consecutive_failures"])[0].value == 2
    since = samples(families["broadcaster_feed_seconds_since_good_poll"])[0].value
    assert 100 <= since < 160
    last_good = samples(families["broadcaster_feed_last_good_poll_timestamp_seconds"])[0]
    assert last_good.value == pytest.approx(now - 100)

    # Latency: a histogram per platform over every sent post, no quantile-as-gauge any more.
    sent: dict[str, float] = {}
    for s in samples(families["broadcaster_posts"]):
        if s.labels["state"] == "sent":
            sent[s.labels["platform"]] = sent.get(s.labels["platform"], 0) + s.value
    assert set(sent) == {"facebook", "youtube", "tiktok", "x"}
    assert all(n > 0 for n in sent.values())
    latency = families["broadcaster_post_latency_seconds"]
    assert not [s for s in latency.samples if "quantile" in s.labels]
    counts = {s.labels["platform"]: s.value for s in samples(latency, "_count")}
    assert counts == sent
    for platform, count in counts.items():
        buckets = [s for s in samples(latency, "_bucket") if s.labels["platform"] == platform]
        bounds = [s.labels["le"] for s in buckets]
        assert bounds == [*(str(b) for b in LATENCY_BUCKETS), "+Inf"]
        values = [s.value for s in buckets]
        assert values == sorted(values), "buckets are cumulative"
        assert values[-1] == count

    # The live channel, an awkward destination name included, escaped and read back whole.
    states = {
        (s.labels["destination"], s.labels["state"]): s.value
        for s in samples(families["broadcaster_live_destination_state"])
    }
    assert states[(ODD, "reconnecting")] == 1
    assert states[("youtube", "live")] == 1
    assert sum(states.values()) == 2
    assert len(states) == 2 * len(STATES)
    dropped = samples(families["broadcaster_live_dropped_frames"], "_total")
    assert {s.labels["destination"]: s.value for s in dropped} == {ODD: 42, "youtube": 0}
    reconnects = samples(families["broadcaster_live_reconnects"], "_total")
    assert {s.labels["destination"]: s.value for s in reconnects} == {ODD: 2, "youtube": 0}
    assert samples(families["broadcaster_live_data_latency_seconds"])[0].value == 1.5


def test_two_servers_in_one_process_each_report_their_own_night(night, tmp_path: Path):
    config, store = night
    (tmp_path / "other").mkdir()
    other_config = load_config(
        write_config(tmp_path / "other" / "c.toml", source="feed.json", extra=SERVICE)
    )
    other_store = Store(other_config.database_url)
    servers = [
        HealthServer(c, s, counters={"polls": n}, alive=lambda: True, dry_run=True).start()
        for c, s, n in ((config, store, 5), (other_config, other_store, 1))
    ]
    try:
        first, second = (scrape(server)[1] for server in servers)
    finally:
        for server in servers:
            server.stop()
        other_store.close()
    assert samples(first["broadcaster_polls"], "_total")[0].value == 5
    assert samples(second["broadcaster_polls"], "_total")[0].value == 1
    assert samples(first["broadcaster_posts"])
    assert not samples(second["broadcaster_posts"]), "the second night sent nothing"
    assert not samples(second["broadcaster_post_latency_seconds"], "_count")
    # No daemon has polled the second night's feed: no feed-health figures are invented.
    assert "broadcaster_feed_consecutive_failures" not in second
