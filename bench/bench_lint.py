"""`templates lint` on a 20,000-contest feed written with the longest real names we could find.

    python bench/bench_lint.py [CONTESTS] [--keep FILE]

Generates the fictional report of tests/long_names.py (Malay, Khmer, Dutch, English and Welsh
names; every contest shape: lists, questions, ties, postponed seats...), parses it, and lints
every bundled template in English, Malay and Khmer on Facebook, YouTube, TikTok and X against
it. Prints the time of each step, the renders made, the peak memory, and every problem; exits 1
if there is any. `--keep FILE` also writes the generated report, for
`broadcaster templates lint --snapshot FILE`.

Target: no problem at all; the whole lint well under a minute.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from broadcaster.content.lint import lint_templates
from broadcaster.core.config import parse_config
from broadcaster.ingest.parsers import parse
from tests.long_names import long_names_feed

LANGUAGES = ("en", "ms", "km")
PLATFORMS = ("facebook", "youtube", "tiktok", "x")


def main() -> int:
    args = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    args.add_argument("contests", nargs="?", type=int, default=20_000)
    args.add_argument("--keep", type=Path, default=None)
    opts = args.parse_args()

    config = parse_config(
        {
            "election": {"timezone": "Asia/Kuala_Lumpur"},
            "feed": {"source": "generated", "is_test": True},
            "accounts": [
                {"name": f"{p}-{lang}", "platform": p, "language": lang, "dry_run": True}
                for lang in LANGUAGES
                for p in PLATFORMS
            ],
        },
        "bench",
        Path("."),
    )
    t0 = time.perf_counter()
    body = long_names_feed(opts.contests)
    t1 = time.perf_counter()
    if opts.keep is not None:
        opts.keep.write_bytes(body)
    snapshot = parse(body)
    t2 = time.perf_counter()
    report = lint_templates(config, [snapshot])
    t3 = time.perf_counter()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"feed: {opts.contests:,} contests, {len(body) / 1e6:.1f} MB, generated in {t1 - t0:.1f} s"
    )
    print(f"parse: {t2 - t1:.1f} s")
    print(
        f"lint: {t3 - t2:.1f} s, {report.templates} templates ({len(LANGUAGES)} languages x "
        f"{len(PLATFORMS)} platforms), {report.renders:,} renders, peak memory {peak:.0f} MB"
    )
    print(f"problems: {len(report.problems)}")
    for problem in report.problems:
        print(f"  {problem}")
    return 1 if report.problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
