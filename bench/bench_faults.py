"""Exactly once, and on time, under the faults real platforms make, while the daemon is killed.

    python bench/bench_faults.py                      # 222 seats, 20 % faults, 50+ kills
    python bench/bench_faults.py --seats 30 --kills 5 --pace 1 --json   # a short version

A generated 222-seat night (broadcaster.rehearsal.fictional: 6 hours, a snapshot every 5 minutes,
two
bursts that call 20 % and 25 % of the seats within ten minutes) is replayed twice through the
real daemon (`broadcaster run`, a subprocess) and the real adapters to the platform emulator,
with the snapshots released at the same pace both times (`--pace` seconds each):

1. clean: no faults, no kills;
2. faulted: `--rate` (20 %) of every platform's posting calls fail, with a kind drawn from each
   platform's mix (the emulator's `RANDOM_MIX`: 500, 503 and 429 with the platform's
   wait, accept-then-close, accept-then-reset, accept-then-hang until the client's timeout, and
   platform-shaped errors: Graph codes 2, 17 and 80001, Google's userRateLimitExceeded and
   backendError, TikTok's internal_error and an unknown code on a 502, X's 503; YouTube's and
   TikTok's expired tokens and YouTube's ended chat), and the daemon is SIGKILLed at least
   `--kills` (50) times, at random moments and at the riskiest points (bench/bench_crash.py).
   Posts held in doubt (TikTok, without a publish_id) are resolved as an operator would: look
   at the account, mark sent or approve.

Every account waits `--timeout` (5) seconds for an answer. It prints, for the faulted night,
duplicates and missing seats (both must be 0), and for both nights the time from the first
snapshot until every seat is on every platform, the tail after the last snapshot, and the
latency of each seat on each platform from the snapshot that first called it; the target is the
faulted night's time within 1.5 times the clean one's. It exits 1 unless duplicates and missing
are 0.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_crash import PLATFORMS, Stuck, run

from broadcaster.rehearsal.fictional import NightPlan

# Kills at the riskiest points, thinner than bench_crash's so that they spread over a long night.
FAILPOINTS = "after_claim:0.012,in_call:0.012:0.2,after_call:0.012,after_sent:0.006"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seats", type=int, default=222)
    parser.add_argument("--rate", type=float, default=0.2, help="share of posting calls failing")
    parser.add_argument("--kills", type=int, default=50, help="kill the daemon at least this often")
    parser.add_argument("--pace", type=float, default=3.0, help="seconds between snapshots")
    parser.add_argument("--timeout", type=float, default=5.0, help="each account's timeout")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the faulted night's folder")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(3))
    plan = NightPlan(seats=args.seats, seed=args.seed)
    common = {"plan": plan, "pace": args.pace, "timeout": args.timeout, "stall": 120.0}
    try:
        clean = run(args.seats, 0, args.seed, quiet=True, failpoints=False, **common)
        faulted = run(
            args.seats,
            args.kills,
            args.seed,
            quiet=args.json,
            fault_rate=args.rate,
            failpoints=FAILPOINTS,
            keep=args.keep,
            **common,
        )
    except Stuck as exc:
        print(f"STUCK: {exc} (evidence kept in {exc.args[1]})", file=sys.stderr)
        sys.exit(2)
    ratio = faulted["arrival_seconds"] / clean["arrival_seconds"]
    result = {"clean": clean, "faulted": faulted, "arrival_ratio": round(ratio, 2)}
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"{args.seats} seats x {len(PLATFORMS)} platforms, {faulted['snapshots']} snapshots "
            f"every {args.pace:g} s, accounts' timeout {args.timeout:g} s"
        )
        print(
            f"faults: {faulted['faults_injected']} injected ({args.rate:.0%} of posting calls); "
            f"kills: {faulted['kills']} over {faulted['daemon_starts']} daemon starts"
        )
        for kind, n in sorted(faulted["faults_by_kind"].items()):
            print(f"  {kind:<40}{n:>5}")
        print(
            f"held in doubt and resolved by the operator: {faulted['operator_marked_sent']} "
            f"found on the account, {faulted['operator_approved']} sent again"
        )
        for platform, f in faulted["per_platform"].items():
            c = clean["per_platform"][platform]
            print(
                f"  {platform:<10} posts {f['posts']:>4}  duplicates {f['duplicates']}  "
                f"missing {f['missing']}  all arrived {f['arrival_seconds']:.0f} s "
                f"(clean {c['arrival_seconds']:.0f} s: "
                f"{f['arrival_seconds'] / c['arrival_seconds']:.2f}x)  latency p95 "
                f"{f['latency_p95']:.1f} s (clean {c['latency_p95']:.1f} s)"
            )
        for name, r in (("clean", clean), ("faulted", faulted)):
            print(
                f"{name:<8} all seats arrived {r['arrival_seconds']:>7.1f} s after the first "
                f"snapshot ({r['tail_seconds']:.1f} s after the last); per seat and platform "
                f"p50 {r['latency_p50']:.2f} s, p95 {r['latency_p95']:.2f} s, "
                f"max {r['latency_max']:.2f} s"
            )
        print(f"faulted / clean arrival time: {ratio:.2f} (target <= 1.5)")
        print(f"duplicates={faulted['duplicates']} missing={faulted['missing']}")
        if faulted["workdir"]:
            print(f"the faulted night's folder: {faulted['workdir']}")
    sys.exit(0 if faulted["duplicates"] == 0 and faulted["missing"] == 0 else 1)


if __name__ == "__main__":
    main()
