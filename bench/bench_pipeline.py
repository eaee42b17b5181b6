"""Benchmark one poll cycle: parse, diff, render and enqueue, and the peak memory.

    python bench/bench_pipeline.py                 # 222 seats (4-5 candidates each), then 20,000
    python bench/bench_pipeline.py --contests 222  # one size only

For each size it generates a fictional NIST SP 1500-100 v2 night (see STAGES: a load with
nothing counted, two busy cycles where a tenth of the seats move, and two bursts where every
seat moves at once), feeds it through the real pipeline into a real SQLite file with the four
dry-run accounts of the bundled configuration, and prints the time of each stage per cycle, the
time of an unchanged poll, and the peak memory. The snapshots are written to files first and
measured in a separate process, so the peak memory is the pipeline's own.

Targets (2-core machine): 222 contests under 50 ms a cycle; unchanged under 2 ms;
20,000 contests under 3 s a cycle and 500 MB.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from broadcaster.clock import FeedClock
from broadcaster.config import DatabaseConfig, load_config
from broadcaster.pipeline import Pipeline
from broadcaster.sources import FileSource
from broadcaster.store import Store

PARTIES = [f"par-{i}" for i in range(8)]


def text(value: str) -> dict:
    return {"Text": [{"Content": value, "Language": "en"}]}


STAGES = [
    # (label, share of contests reporting 30 %, share at 60 %, share at 100 % and called)
    ("load: 0 % counted", 0.0, 0.0, 0.0),
    ("busy: 10 % of seats report", 0.1, 0.0, 0.0),
    ("busy: 10 % more report, 10 % called", 0.2, 0.0, 0.1),
    ("burst: every seat moves", 1.0, 1.0, 0.1),
    ("burst: every seat called", 1.0, 1.0, 1.0),
]


def night(contests: int, seed: int = 1) -> list[bytes]:
    """Snapshots of a fictional night with `contests` single-seat contests, one per STAGE."""
    rng = random.Random(seed)
    plan = []
    for i in range(contests):
        n = rng.choice((4, 5))
        final = sorted((rng.randint(2000, 30000) for _ in range(n)), reverse=True)
        plan.append((f"C{i:05d}", n, final))
    out = []
    for k, (_label, at30, at60, at100) in enumerate(STAGES):
        candidates, cc = [], []
        for i, (cid, n, final) in enumerate(plan):
            rank = i / contests
            pct = 100 if rank < at100 else 60 if rank < at60 else 30 if rank < at30 else 0
            called = pct == 100
            votes = [int(v * pct / 100) for v in final]
            if pct == 30 and n > 1:
                votes[0], votes[1] = votes[1], votes[0]  # the eventual winner trails early
            sels = []
            for j in range(n):
                can = f"can-{cid}-{j}"
                cand = {
                    "@type": "ElectionResults.Candidate",
                    "@id": can,
                    "BallotName": text(f"Candidate {cid}-{j}"),
                    "PartyId": PARTIES[j],
                }
                if called:
                    cand["PostElectionStatus"] = "winner" if j == 0 else "defeated"
                candidates.append(cand)
                count = {
                    "@type": "ElectionResults.VoteCounts",
                    "GpUnitId": "ru-n",
                    "Type": "total",
                    "Count": votes[j],
                }
                sels.append(
                    {
                        "@type": "ElectionResults.CandidateSelection",
                        "@id": f"cs-{cid}-{j}",
                        "CandidateIds": [can],
                        "VoteCounts": [count],
                    }
                )
            cc.append(
                {
                    "@type": "ElectionResults.CandidateContest",
                    "@id": cid,
                    "Name": f"Seat {cid}",
                    "ElectionDistrictId": "ru-n",
                    "VotesAllowed": 1,
                    "NumberElected": 1,
                    "SubUnitsReported": pct,
                    "TotalSubUnits": 100,
                    "ContestSelection": sels,
                }
            )
        doc = {
            "@type": "ElectionResults.ElectionReport",
            "Format": "summary-contest",
            "GeneratedDate": f"2030-07-28T{19 + k:02d}:00:00+07:00",
            "Issuer": "Benchmark (fictional)",
            "IssuerAbbreviation": "B",
            "IsTest": True,
            "SequenceStart": 1,
            "SequenceEnd": 1,
            "Status": "unofficial-partial",
            "VendorApplicationId": "bench",
            "GpUnit": [
                {
                    "@type": "ElectionResults.ReportingUnit",
                    "@id": "ru-n",
                    "Type": "country",
                    "Name": text("Benchland"),
                }
            ],
            "Party": [
                {"@type": "ElectionResults.Party", "@id": p, "Name": text(f"Party {p}")}
                for p in PARTIES
            ],
            "Election": [
                {
                    "@type": "ElectionResults.Election",
                    "Name": text("Benchmark night (TEST)"),
                    "ElectionScopeId": "ru-n",
                    "StartDate": "2030-07-28",
                    "EndDate": "2030-07-28",
                    "Type": "general",
                    "Candidate": candidates,
                    "Contest": cc,
                }
            ],
        }
        out.append(json.dumps(doc).encode())
    return out


def run_size(folder: Path) -> dict:
    """Feed the snapshots in `folder` through the pipeline (this process measures only that)."""
    files = sorted(folder.glob("*.json"))
    with tempfile.TemporaryDirectory() as tmp:
        config = load_config(None)
        config = config.with_overrides(database=DatabaseConfig(url=f"sqlite:///{tmp}/state.db"))
        store = Store(config.database_url)
        pipeline = Pipeline(config, store, clock=FeedClock(), dry_run=True)
        feed = Path(tmp) / "feed.json"
        source = FileSource(feed, 1 << 31)
        cycles = []
        for path in files:
            shutil.copyfile(path, feed)
            t0 = time.perf_counter()
            result = pipeline.poll(source)
            total = time.perf_counter() - t0
            assert result.outcome == "accepted", result
            cycles.append(
                {
                    "bytes": path.stat().st_size,
                    "events": result.events,
                    "posts": result.posts,
                    **{k: round(v * 1000, 2) for k, v in result.timings.items()},
                    "total_ms": round(total * 1000, 2),
                }
            )
        # Unchanged feed: nothing touched the file (a stat), and the same bytes written again
        # (read and hashed, then recognised) - the cost of an HTTP 304 lies between the two.
        untouched, rewritten = [], []
        for _ in range(20):
            t0 = time.perf_counter()
            assert pipeline.poll(source).outcome == "unchanged"
            untouched.append(time.perf_counter() - t0)
            shutil.copyfile(files[-1], feed)
            t0 = time.perf_counter()
            assert pipeline.poll(source).outcome in ("unchanged", "duplicate")
            rewritten.append(time.perf_counter() - t0)
        store.close()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "cycles": cycles,
        "untouched_ms": round(statistics.median(untouched) * 1000, 3),
        "rewritten_ms": round(statistics.median(rewritten) * 1000, 3),
        "peak_rss_mb": round(peak_mb, 1),
    }


def report(contests: int, r: dict, runs: int) -> None:
    print(
        f"\n{contests} contests, 4 dry-run accounts (facebook, youtube, tiktok, x), {runs} run(s)"
    )
    print(
        f"{'cycle':<38} {'MB':>5} {'events':>7} {'posts':>6} {'parse':>8} {'diff':>7} "
        f"{'render':>8} {'enqueue':>8} {'total ms':>9}"
    )
    for (label, *_), c in zip(STAGES, r["cycles"], strict=True):
        print(
            f"{label:<38} {c['bytes'] / 1e6:>5.1f} {c['events']:>7} {c['posts']:>6} "
            f"{c['parse']:>8} {c['diff']:>7} {c['render']:>8} {c['enqueue']:>8} "
            f"{c['total_ms']:>9}"
        )
    print(f"unchanged feed, file untouched (median of 20): {r['untouched_ms']} ms")
    print(f"unchanged feed, same bytes rewritten (median of 20): {r['rewritten_ms']} ms")
    print(f"peak memory of the measuring process (RSS): {r['peak_rss_mb']} MB")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--contests", type=int, action="append", help="size(s) to run")
    parser.add_argument("--repeat", type=int, default=5, help="runs per small size (median)")
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(run_size(args.measure)))
        return
    for size in args.contests or [222, 20000]:
        runs = []
        with tempfile.TemporaryDirectory() as tmp:
            for k, body in enumerate(night(size)):
                (Path(tmp) / f"{k:02d}.json").write_bytes(body)
            for _ in range(args.repeat if size <= 1000 else 1):
                proc = subprocess.run(
                    [sys.executable, __file__, "--measure", tmp],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        report(size, median_run(runs), len(runs))


def median_run(runs: list[dict]) -> dict:
    """Per figure, the median over repeated runs (this machine's timings are noisy)."""
    if len(runs) == 1:
        return runs[0]
    out = dict(runs[0])
    out["cycles"] = [
        {k: statistics.median(r["cycles"][i][k] for r in runs) for k in runs[0]["cycles"][i]}
        for i in range(len(runs[0]["cycles"]))
    ]
    for key in ("untouched_ms", "rewritten_ms", "peak_rss_mb"):
        out[key] = statistics.median(r[key] for r in runs)
    return out


if __name__ == "__main__":
    main()
