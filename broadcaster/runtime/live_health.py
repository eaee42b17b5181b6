"""The live channel's health as `status`, /healthz and /metrics show it.

The channel (broadcaster/live/) writes its report to the database every few seconds, so the same
picture is available from the command line, from the daemon's endpoints and from a channel
running in another process. A report older than `STALE_AFTER` means the channel is not running.
"""

from __future__ import annotations

import time
from typing import Any

from broadcaster.outbox.state import State
from broadcaster.outbox.store import Store

STALE_AFTER = 15.0  # seconds without a report before the channel counts as not running
STATES = ("connecting", "live", "reconnecting", "failed", "stopped")


def live_report(store: Store, now: float | None = None) -> dict[str, Any] | None:
    """The channel's last report, with `running` false when it is stale; None if never run."""
    report = State(store).live_status()
    if report is None:
        return None
    now = time.time() if now is None else now
    age = now - float(report.get("updated_at", 0))
    report = dict(report)
    report["age"] = round(age, 1)
    if age > STALE_AFTER:
        report["running"] = False
    return report


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")


def live_metrics(report: dict[str, Any] | None) -> list[str]:
    """Prometheus lines for the channel (none when it never ran)."""
    if not report:
        return []
    lines: list[str] = []

    def metric(name: str, kind: str, help_: str, samples: list[tuple[dict[str, str], float]]):
        lines.append(f"# HELP {name} {help_}")
        lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            tags = ",".join(f'{k}="{_label(v)}"' for k, v in labels.items())
            lines.append(f"{name}{{{tags}}} {value}" if tags else f"{name} {value}")

    dests = report.get("destinations") or {}
    metric(
        "broadcaster_live_up",
        "gauge",
        "1 while the live channel runs.",
        [({}, 1 if report.get("running") else 0)],
    )
    metric(
        "broadcaster_live_frames_total",
        "counter",
        "Frames the channel encoded.",
        [({}, report.get("frames", 0))],
    )
    metric(
        "broadcaster_live_late_frames_total",
        "counter",
        "Frames skipped because the channel fell behind its clock.",
        [({}, report.get("late_frames", 0))],
    )
    if report.get("data_latency") is not None:
        metric(
            "broadcaster_live_data_latency_seconds",
            "gauge",
            "From the last snapshot accepted to the first frame showing it.",
            [({}, report["data_latency"])],
        )
    metric(
        "broadcaster_live_destination_state",
        "gauge",
        "1 for each destination's current state.",
        [
            ({"destination": name, "state": state}, 1 if d.get("state") == state else 0)
            for name, d in sorted(dests.items())
            for state in STATES
        ],
    )
    metric(
        "broadcaster_live_bitrate_bits",
        "gauge",
        "Bits per second sent, last few seconds.",
        [({"destination": n}, d.get("bitrate", 0)) for n, d in sorted(dests.items())],
    )
    metric(
        "broadcaster_live_dropped_frames_total",
        "counter",
        "Video frames dropped for a destination that fell behind or reconnected.",
        [({"destination": n}, d.get("dropped_frames", 0)) for n, d in sorted(dests.items())],
    )
    metric(
        "broadcaster_live_sent_frames_total",
        "counter",
        "Video frames sent.",
        [({"destination": n}, d.get("frames_sent", 0)) for n, d in sorted(dests.items())],
    )
    metric(
        "broadcaster_live_reconnects_total",
        "counter",
        "Connections made after the first.",
        [({"destination": n}, max(0, d.get("connects", 0) - 1)) for n, d in sorted(dests.items())],
    )
    return lines


def status_lines(report: dict[str, Any] | None) -> list[str]:
    """Plain lines for `broadcaster status`."""
    if not report:
        return []
    running = (
        "running" if report.get("running") else f"NOT running (last report {report['age']} s ago)"
    )
    lines = [
        f"live channel: {running}; {report.get('size')} at {report.get('fps')} fps, "
        f"{report.get('frames', 0)} frames, {report.get('late_frames', 0)} late; data as of "
        f"{report.get('as_of') or '-'}"
    ]
    for problem in ("feed_problem", "layout_problem"):
        if report.get(problem):
            lines.append(f"  problem: {report[problem]}")
    for name, d in sorted((report.get("destinations") or {}).items()):
        health = f"; platform: {d['platform_health']}" if d.get("platform_health") else ""
        why = f" ({d['reason']})" if d.get("reason") and d.get("state") != "live" else ""
        lines.append(
            f"  {name} ({d.get('kind')}): {d.get('state')}{why}; "
            f"{d.get('bitrate', 0) / 1e6:.2f} Mbit/s, {d.get('dropped_frames', 0)} frames "
            f"dropped, {max(0, d.get('connects', 0) - 1)} reconnects{health}"
        )
    return lines
