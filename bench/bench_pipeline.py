"""Benchmark one poll cycle: parse, diff, render and enqueue, and the peak memory.

    python bench/bench_pipeline.py                 # 222 seats (4-5 candidates each), then 20,000,
                                                   # then the parsers alone
    python bench/bench_pipeline.py --contests 222  # one size only
    python bench/bench_pipeline.py --parsers       # the parsers alone

The parsers alone: the real EML 510b count in ../shared/feeds/ (skipped when absent), and a
fictional 20,000-contest JSON feed read through the JSON mapping example of
docs/feed-format.md; each parsed 5 times in a fresh process (median time), with the peak memory
the parse itself allocated (tracemalloc) and the process's peak RSS.

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
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from broadcaster.core.clock import FeedClock
from broadcaster.core.config import DatabaseConfig
from broadcaster.ingest.sources import FileSource
from broadcaster.outbox.store import Store
from broadcaster.runtime.configuration import load_config
from broadcaster.runtime.cycle import Pipeline

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
                # The runner-up's areas report first, so the eventual winner often trails early
                # (counts never go down: the plausibility gates would hold them).
                votes[0], votes[1] = int(final[0] * 0.24), int(final[1] * 0.36)
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


def peak_rss_mb() -> float:
    """This process's own peak resident memory. ru_maxrss would do, except that on Linux a child
    inherits its parent's peak across fork and exec: VmHWM is the process's own."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


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
    peak_mb = peak_rss_mb()
    return {
        "cycles": cycles,
        "untouched_ms": round(statistics.median(untouched) * 1000, 3),
        "rewritten_ms": round(statistics.median(rewritten) * 1000, 3),
        "peak_rss_mb": round(peak_mb, 1),
    }


ROOT = Path(__file__).resolve().parent.parent
EML_510B = ROOT.parent / "shared" / "feeds" / "Telling_GR2022_WestMaasenWaal.eml.xml"


def docs_example(name: str) -> str:
    text = (ROOT / "docs" / "feed-format.md").read_text(encoding="utf-8")
    match = re.search(rf"<!-- example: {name} -->\n```\w+\n(.*?)```", text, re.S)
    assert match, name
    return match.group(1)


def mapped_feed(contests: int, seed: int = 3) -> bytes:
    """A fictional feed in the shape of the JSON mapping example, `contests` seats of 5."""
    rng = random.Random(seed)
    seats = []
    for i in range(contests):
        seats.append(
            {
                "code": f"P{i:05d}",
                "name": f"Seat {i:05d} (TEST)",
                "seats": 1,
                "streams": {"counted": rng.randint(0, 40), "total": 40},
                "registered": 90000,
                "ballots": 60000,
                "candidates": [
                    {
                        "id": f"P{i:05d}-{j}",
                        "name": f"Candidate {i:05d}-{j}",
                        "party": PARTIES[j],
                        "votes": rng.randint(0, 12000),
                        "status": "",
                    }
                    for j in range(5)
                ],
            }
        )
    doc = {
        "meta": {"updated": "2030-07-28T21:30:00+07:00", "stage": "PROVISIONAL", "test": True},
        "parties": [
            {"code": p, "name": f"Party {p}", "short": p, "colour": "#888888"} for p in PARTIES
        ],
        "constituencies": seats,
    }
    return json.dumps(doc).encode()


def measure_parse(path: Path, fmt: str, mapping: Path | None) -> dict:
    """In this (fresh) process: median parse time of 5, tracemalloc peak of one, peak RSS."""
    import tracemalloc
    from datetime import UTC

    from broadcaster.ingest.parsers import parse
    from broadcaster.ingest.parsers.mapped import load_mapping

    loaded = load_mapping(mapping) if mapping else None
    body = path.read_bytes()
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        snap = parse(body, fmt, default_tz=UTC, mapping=loaded)
        times.append(time.perf_counter() - t0)
        del snap
    tracemalloc.start()
    snap = parse(body, fmt, default_tz=UTC, mapping=loaded)
    _, traced = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {
        "bytes": len(body),
        "contests": len(snap.contests),
        "selections": sum(len(c.selections) for c in snap.contests),
        "median_ms": round(statistics.median(times) * 1000, 1),
        "traced_peak_mb": round(traced / 2**20, 1),
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }


def bench_parsers() -> None:
    print("\nparsers alone (median of 5 parses; memory of one)")
    print(f"{'feed':<44} {'MB':>6} {'contests':>9} {'ms':>8} {'alloc MB':>9} {'RSS MB':>7}")
    with tempfile.TemporaryDirectory() as tmp:
        jobs = []
        if EML_510B.exists():
            jobs.append(("EML 510b, West Maas en Waal 2022 (real)", EML_510B, "eml", None))
        else:
            print("(the EML 510b sample is not here: ../shared/feeds/ is absent)")
        feed = Path(tmp) / "mapped.json"
        feed.write_bytes(mapped_feed(20_000))
        mapping = Path(tmp) / "mapping.toml"
        mapping.write_text(docs_example("json-mapping"))
        jobs.append(("mapped JSON, 20,000 contests x 5 (fictional)", feed, "mapped", mapping))
        for label, path, fmt, mapping_path in jobs:
            cmd = [sys.executable, __file__, "--measure-parse", str(path), "--format", fmt]
            if mapping_path:
                cmd += ["--mapping", str(mapping_path)]
            proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            print(
                f"{label:<44} {r['bytes'] / 1e6:>6.2f} {r['contests']:>9} {r['median_ms']:>8} "
                f"{r['traced_peak_mb']:>9} {r['peak_rss_mb']:>7}"
            )


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
    parser.add_argument("--parsers", action="store_true", help="only the parsers alone")
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--measure-parse", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--format", default="auto", help=argparse.SUPPRESS)
    parser.add_argument("--mapping", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(run_size(args.measure)))
        return
    if args.measure_parse:
        print(json.dumps(measure_parse(args.measure_parse, args.format, args.mapping)))
        return
    if args.parsers:
        bench_parsers()
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
    if not args.contests:
        bench_parsers()


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
