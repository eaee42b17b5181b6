"""Benchmark delivery under the platforms' default quotas: a 222-seat night in simulated time.

    python bench/bench_delivery.py                  # 222 seats over 6 hours, with two bursts
    python bench/bench_delivery.py --seats 60 --hours 3

A fictional night (broadcaster.rehearsal.fictional: calls spread over the night, 20 % and 25 % of
the seats
called within ten minutes at 1.5 h and 3.5 h, a snapshot every 5 minutes) is rehearsed through
the real pipeline, planner, dispatcher, adapters and client libraries into the platform emulator,
which enforces each platform's real limits (X 100 posts a day, TikTok 15 posts a day and 6
a minute, YouTube 10,000 quota units a day, Facebook 200 calls an hour) on the feed's clock. The
accounts and the events each one posts are those of config/example.toml (one per platform; X and
TikTok without progress updates), with the night's length set to 6 hours.

It runs twice: with the planner, and with the naive policy of one post per event as soon as
possible. For each platform it prints the posts the emulator accepted, the calls it refused for
a limit (429s, quota and daily-cap errors), the seats that never appeared as called in a post,
and the worst and median delay from the snapshot in which a seat was first called to the post
that announced it (feed time; target: under 20 minutes).
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from broadcaster.domain.posts import PostState
from broadcaster.outbox.store import Store, posts
from broadcaster.rehearsal.fictional import Burst, NightPlan, first_seen_called, write_night
from broadcaster.rehearsal.replay import rehearse
from broadcaster.runtime.configuration import load_config

PLATFORMS = ("facebook", "youtube", "x", "tiktok")
EXAMPLE = Path(__file__).resolve().parent.parent / "config" / "example.toml"
TARGET = timedelta(minutes=20)


def announced(db: Path) -> dict[str, dict[str, datetime]]:
    """platform -> seat -> when it was first announced as called (a call, a correction, or a
    summary of calls, sent), read from the outbox."""
    store = Store(f"sqlite:///{db}")
    try:
        with store.engine.connect() as conn:
            rows = conn.execute(select(posts)).all()
    finally:
        store.close()
    merged: dict[int, list[str]] = {}
    for r in rows:
        if r.superseded_by is not None and r.event_kind == "called" and r.contest_id:
            merged.setdefault(r.superseded_by, []).append(r.contest_id)
    out: dict[str, dict[str, datetime]] = {p: {} for p in PLATFORMS}
    for r in rows:
        if r.state != PostState.SENT or r.sent_at is None:
            continue
        if r.event_kind in ("called", "corrected") and r.contest_id:
            seats = [r.contest_id]
        elif r.event_kind == "summary":
            seats = merged.get(r.id, [])
        else:
            continue
        for seat in seats:
            first = out[r.platform].get(seat)
            if first is None or r.sent_at < first:
                out[r.platform][seat] = r.sent_at
    return out


def run(
    night: Path,
    called: dict[str, datetime],
    mode: str,
    night_hours: float,
    keep: Path | None,
) -> dict[str, dict]:
    config = load_config(EXAMPLE)
    config = config.with_overrides(
        planner=config.planner.model_copy(update={"mode": mode, "night_hours": night_hours}),
    )
    with tempfile.TemporaryDirectory() as tmp:
        out = keep / mode if keep else Path(tmp)
        t0 = time.perf_counter()
        report = rehearse(config, night, out, emulator=True, tail=3600)
        wall = time.perf_counter() - t0
        first = announced(out / "state.db")
    assert report.emulator is not None
    received = report.emulator["posts"]
    refusals = report.emulator.get("limit_refusals", {})
    figures = {}
    for platform in PLATFORMS:
        delays = [
            (first[platform][seat] - at).total_seconds() / 60
            for seat, at in called.items()
            if seat in first[platform]
        ]
        figures[platform] = {
            "posts": sum(1 for p in received if p["platform"] == platform),
            "refused": refusals.get(platform, 0),
            "missing": len(called) - len(delays),
            "worst_min": max(delays, default=float("nan")),
            "median_min": statistics.median(delays) if delays else float("nan"),
        }
    waiting = len(report.waiting)
    print(f"  [{mode}] rehearsed in {wall:.1f} s wall time; {waiting} posts still waiting")
    return figures


def show(mode: str, figures: dict[str, dict]) -> None:
    print(f"\n{mode}:")
    head = f"{'posts':>7}{'refused':>9}{'not called':>12}{'worst':>10}{'median':>9}"
    print(f"  {'platform':<10}{head}")
    for platform, f in figures.items():
        flag = "" if f["worst_min"] < TARGET.total_seconds() / 60 and not f["missing"] else "  !"
        print(
            f"  {platform:<10}{f['posts']:>7}{f['refused']:>9}{f['missing']:>12}"
            f"{f['worst_min']:>8.1f} m{f['median_min']:>7.1f} m{flag}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seats", type=int, default=222)
    parser.add_argument("--hours", type=float, default=6.0)
    parser.add_argument("--step", type=float, default=5.0, help="minutes between snapshots")
    parser.add_argument(
        "--night-hours",
        type=float,
        default=None,
        help="the planner's expected length of the night (default: hours + 0.5)",
    )
    parser.add_argument("--mode", choices=("planned", "naive"), action="append")
    parser.add_argument("--keep", type=Path, help="keep each run's output folder here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    bursts = (Burst(args.hours * 0.25, 0.2, 10), Burst(args.hours * 0.58, 0.25, 10))
    plan = NightPlan(seats=args.seats, hours=args.hours, step_minutes=args.step, bursts=bursts)
    with tempfile.TemporaryDirectory() as tmp:
        night = Path(tmp) / "night"
        seats = write_night(plan, night)
        called = first_seen_called(plan, seats)
        print(
            f"{args.seats} seats over {args.hours:g} h, a snapshot every {args.step:g} min "
            f"({len(list(night.iterdir()))} snapshots), bursts: "
            + ", ".join(f"{b.share:.0%} at {b.at_hours:g} h" for b in bursts)
        )
        modes = args.mode or ["planned", "naive"]
        night_hours = args.night_hours or args.hours + 0.5
        print(f"planner: the night is expected to last {night_hours:g} h ([planner] night_hours)")
        results = {mode: run(night, called, mode, night_hours, args.keep) for mode in modes}
    for mode, figures in results.items():
        show(mode, figures)
    print(
        "\nrefused: calls the emulator refused for a rate limit, quota or daily cap (target 0);"
        "\nnot called: seats never announced as called in a post on that platform;"
        "\nworst/median: from the snapshot that first showed the call to the post announcing it"
        f" (target under {TARGET.total_seconds() / 60:g} min); ! marks a missed target."
    )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
