"""Benchmark result cards: time to draw one card, per platform format and language.

    python bench/bench_cards.py [--runs 20] [--cold]

Draws contest and tally cards from the bundled fictional night in English and in Khmer (with
Khmer digits), for each platform that takes images, and prints the median and the worst time
per card. Target: one card under 100 ms.

Each card is drawn again and again, so its strings are rasterised once and then found in the
per-process caches (as labels, names and titles are across a night's cards); --cold empties the
caches before every draw, for a card none of whose strings was drawn before.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from broadcaster.content.cards.draw import CardStyle, clear_caches, render_card
from broadcaster.content.render import Locale
from broadcaster.content.samples import sample_vars
from broadcaster.core.paths import DEMO_SNAPSHOTS
from broadcaster.domain.events import EventKind
from broadcaster.ingest.parsers import parse
from broadcaster.publishers import capabilities_for


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--cold", action="store_true", help="empty the caches before each card")
    args = parser.parse_args()
    snapshot = parse(sorted(DEMO_SNAPSHOTS.glob("*.json"))[-1].read_bytes())
    cases = [
        ("contest", sample_vars(snapshot, EventKind.CALLED, contest_id="cc-D04")[1]),
        ("party list", sample_vars(snapshot, EventKind.CALLED, contest_id="pc-P1")[1]),
        ("tally", sample_vars(snapshot, EventKind.TALLY)[1]),
    ]
    columns = ("platform", "format", "size", "card", "lang", "median ms", "max ms")
    print("{:<9} {:<6} {:<9} {:<11} {:<4} {:>9} {:>7}".format(*columns))
    with tempfile.TemporaryDirectory() as tmp:
        for platform in ("facebook", "x", "tiktok"):
            spec = capabilities_for(platform).card
            assert spec is not None
            for name, variables in cases:
                for locale in (Locale("en"), Locale("km", khmer_digits=True)):
                    out = Path(tmp) / f"card.{spec.format.lower()}"
                    render_card(variables, spec, locale, CardStyle(), out)  # warm the font cache
                    times = []
                    for _ in range(args.runs):
                        if args.cold:
                            clear_caches()
                        t0 = time.perf_counter()
                        render_card(variables, spec, locale, CardStyle(), out)
                        times.append((time.perf_counter() - t0) * 1000)
                    print(
                        f"{platform:<9} {spec.format:<6} {spec.width}x{spec.height:<4} {name:<11} "
                        f"{locale.language:<4} {statistics.median(times):>9.1f} {max(times):>7.1f}"
                    )


if __name__ == "__main__":
    main()
