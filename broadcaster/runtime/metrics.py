"""GET /metrics: every broadcaster metric, read afresh at each scrape.

One prometheus_client collector turns the status report (runtime/status.py), the daemon's own
counters and its feed health into metric families; prometheus_client writes the exposition
format (types, escaping, histogram buckets). Each HealthServer has its own registry: tests start
several servers in one process, and the library's global registry would mix them.

The latency from the snapshot that revealed an event to its post is a histogram over every post
sent (see `post_latency`), not quantiles of the last hour exported as a gauge: buckets counted
since the start of the night only grow, so Prometheus computes any quantile over any window
(`histogram_quantile(0.9, sum by (le) (rate(broadcaster_post_latency_seconds_bucket[1h])))`)
and can add platforms or daemons up, which precomputed quantiles never allow.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from broadcaster.core.config import Config
from broadcaster.ingest.health import FeedHealth
from broadcaster.outbox.reports import sent_latencies
from broadcaster.outbox.store import Store
from broadcaster.runtime.live_health import STATES
from broadcaster.runtime.status import collect_status

# Seconds. From a post sent within a poll or two of its snapshot to one the pacing held back
# for hours (a budget spread over the night); everything later falls in +Inf.
LATENCY_BUCKETS = (5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0)


class StatusCollector(Collector):
    """The daemon's metrics, from the database, its counters and its feed health."""

    def __init__(
        self,
        config: Config,
        store: Store,
        *,
        counters: Mapping[str, float],
        feed_health: FeedHealth | None = None,
        clock: Callable[[], float] = time.time,
        leadership: Any = None,
    ) -> None:
        self.config = config
        self.leadership = leadership  # runtime/leadership.py: active or standby
        self.store = store
        self.counters = counters
        self.feed_health = feed_health
        self.clock = clock

    def collect(self) -> Iterable[Metric]:
        report = collect_status(self.config, self.store, health=self.feed_health)
        yield from daemon_metrics(report, self.counters)
        yield from feed_metrics(report.get("feed_health"), self.clock())
        yield post_latency(sent_latencies(self.store))
        yield from live_metrics(report.get("live"))
        if self.leadership is not None:
            epoch = self.leadership.active_epoch()
            yield GaugeMetricFamily(
                "broadcaster_active",
                "1 on the instance that holds the lease (polls and publishes), 0 on a standby.",
                value=0 if epoch is None else 1,
            )
            yield GaugeMetricFamily(
                "broadcaster_lease_epoch",
                "The lease's epoch this instance leads at (0 on a standby).",
                value=epoch or 0,
            )


def registry_for(collector: Collector) -> CollectorRegistry:
    """A registry of its own for one server, holding `collector`."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return registry


def _gauge(
    name: str, doc: str, labels: list[str], samples: Iterable[tuple[list[str], float]]
) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc, labels=labels)
    for values, value in samples:
        family.add_metric(values, value)
    return family


def _counter(
    name: str, doc: str, labels: list[str], samples: Iterable[tuple[list[str], float]]
) -> CounterMetricFamily:
    family = CounterMetricFamily(name, doc, labels=labels)
    for values, value in samples:
        family.add_metric(values, value)
    return family


def daemon_metrics(report: dict[str, Any], counters: Mapping[str, float]) -> Iterator[Metric]:
    """Polls, snapshots, events, the outbox, budgets and pauses."""
    yield GaugeMetricFamily("broadcaster_up", "1 while the daemon runs.", value=1)
    yield CounterMetricFamily(
        "broadcaster_polls_total", "Feed polls.", value=counters.get("polls", 0)
    )
    yield CounterMetricFamily(
        "broadcaster_poll_failures_total",
        "Polls that failed (feed down or error).",
        value=counters.get("poll_failures", 0),
    )
    yield _counter(
        "broadcaster_snapshots_total",
        "Snapshots by outcome.",
        ["outcome"],
        [(["accepted"], report["accepted"]), (["rejected"], report["rejected"])],
    )
    yield CounterMetricFamily("broadcaster_events_total", "Events found.", value=report["events"])
    yield _gauge(
        "broadcaster_posts",
        "Posts by state, platform and account.",
        ["account", "platform", "state"],
        (
            ([account, platform, state], n)
            for (account, platform), states in sorted(report["outbox"].items())
            for state, n in sorted(states.items())
        ),
    )
    yield _gauge(
        "broadcaster_budget_remaining_posts",
        "Posts left in each account's longest quota window.",
        ["account"],
        (
            ([a["name"]], a["budget_left"])
            for a in report["accounts"]
            if a["budget_left"] is not None
        ),
    )
    yield _gauge(
        "broadcaster_account_paused",
        "1 when an account is paused.",
        ["account"],
        (([a["name"]], 1 if a["state"] == "paused" else 0) for a in report["accounts"]),
    )
    last = report["last_snapshot"]
    if last:
        yield GaugeMetricFamily(
            "broadcaster_last_feed_change_timestamp_seconds",
            "When the feed last brought a new snapshot.",
            value=datetime.fromisoformat(last["received_at"]).timestamp(),
        )
    if "last_poll" in counters:
        yield GaugeMetricFamily(
            "broadcaster_last_poll_timestamp_seconds",
            "When the feed was last polled.",
            value=counters["last_poll"],
        )


def feed_metrics(health: dict[str, Any] | None, now: float) -> Iterator[Metric]:
    """Is the feed being read: failed polls in a row and time since the last good one, the
    figures that `[service] degraded_after_failures` and `feed_stale_after` judge /healthz by.
    None when no daemon has polled yet."""
    record = FeedHealth.from_dict(health)
    if record is None:
        return
    yield GaugeMetricFamily(
        "broadcaster_feed_consecutive_failures",
        "Polls failed in a row (feed down, snapshot rejected, or still serving a rejected one); "
        "0 after a good poll.",
        value=record.failures,
    )
    since = record.last_good if record.last_good is not None else record.started_at
    yield GaugeMetricFamily(
        "broadcaster_feed_seconds_since_good_poll",
        "Seconds since the last good poll (since the daemon started, if none was good yet).",
        value=max(0.0, now - since),
    )
    if record.last_good is not None:
        yield GaugeMetricFamily(
            "broadcaster_feed_last_good_poll_timestamp_seconds",
            "When a poll was last good (the feed answered and its snapshot was readable).",
            value=record.last_good,
        )


def post_latency(latencies: Mapping[str, list[float]]) -> HistogramMetricFamily:
    """The latency histogram, one series per platform, over every post sent."""
    family = HistogramMetricFamily(
        "broadcaster_post_latency_seconds",
        "Seconds from the snapshot that revealed an event to its post, every post sent.",
        labels=["platform"],
    )
    for platform, values in sorted(latencies.items()):
        buckets = [
            (floatToGoString(bound), float(sum(v <= bound for v in values)))
            for bound in LATENCY_BUCKETS
        ]
        buckets.append(("+Inf", float(len(values))))
        family.add_metric([platform], buckets, sum_value=sum(values))
    return family


def live_metrics(report: dict[str, Any] | None) -> Iterator[Metric]:
    """The live results channel (nothing when it never ran)."""
    if not report:
        return
    dests = sorted((report.get("destinations") or {}).items())
    yield GaugeMetricFamily(
        "broadcaster_live_up",
        "1 while the live channel runs.",
        value=1 if report.get("running") else 0,
    )
    yield CounterMetricFamily(
        "broadcaster_live_frames_total",
        "Frames the channel encoded.",
        value=report.get("frames", 0),
    )
    yield CounterMetricFamily(
        "broadcaster_live_late_frames_total",
        "Frames skipped because the channel fell behind its clock.",
        value=report.get("late_frames", 0),
    )
    if report.get("data_latency") is not None:
        yield GaugeMetricFamily(
            "broadcaster_live_data_latency_seconds",
            "From the last snapshot accepted to the first frame showing it.",
            value=report["data_latency"],
        )
    yield _gauge(
        "broadcaster_live_destination_state",
        "1 for each destination's current state.",
        ["destination", "state"],
        (
            ([name, state], 1 if d.get("state") == state else 0)
            for name, d in dests
            for state in STATES
        ),
    )
    yield _gauge(
        "broadcaster_live_bitrate_bits",
        "Bits per second sent, last few seconds.",
        ["destination"],
        (([name], d.get("bitrate", 0)) for name, d in dests),
    )
    yield _counter(
        "broadcaster_live_dropped_frames_total",
        "Video frames dropped for a destination that fell behind or reconnected.",
        ["destination"],
        (([name], d.get("dropped_frames", 0)) for name, d in dests),
    )
    yield _counter(
        "broadcaster_live_sent_frames_total",
        "Video frames sent.",
        ["destination"],
        (([name], d.get("frames_sent", 0)) for name, d in dests),
    )
    yield _counter(
        "broadcaster_live_reconnects_total",
        "Connections made after the first.",
        ["destination"],
        (([name], max(0, d.get("connects", 0) - 1)) for name, d in dests),
    )
