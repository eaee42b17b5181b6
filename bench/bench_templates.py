"""How fast the bounded sandbox stops hostile templates, and what it costs ordinary ones.

    python bench/bench_templates.py

For each attack of tests/test_trust_templates.py (issue 10, path 5), in a fresh forked process:
the time from the start of the render to its refusal, the memory the process grew by (peak RSS),
and the reason given, with the default budget (1 s, 100,000 characters). Then the time of one
render of the bundled templates (12 platform/event pairs on the demo night's last snapshot), the
cost every post pays for the bounds.

Target: every attack refused in well under its 1 s budget (only the attacks that are plain
loops or recursion use the time limit itself), none growing the process by more than 50 MB.
"""

from __future__ import annotations

import multiprocessing
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from broadcaster.content.render import Budget, Renderer, RenderError
from broadcaster.content.samples import sample_vars
from broadcaster.domain.events import EventKind
from broadcaster.ingest.parsers import parse
from tests.conftest import DEMO
from tests.test_trust_templates import ATTACKS

VARIABLES = sample_vars(parse(sorted(DEMO.glob("*.json"))[-1].read_bytes()), EventKind.CALLED)[1]


def _attack(source: str, conn: object) -> None:
    limit = 3_000_000_000  # a regression shows as MemoryError here, not as the OOM killer
    resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))
    folder = Path(tempfile.mkdtemp())
    (folder / "en" / "x").mkdir(parents=True)
    (folder / "en" / "x" / "called.j2").write_text(source, encoding="utf-8")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    try:
        Renderer([folder], budget=Budget(seconds=1)).render("x", "called", VARIABLES)
        reason = "RENDERED (not refused)"
    except RenderError as exc:
        reason = exc.message
    except BaseException as exc:  # a regression: shown, not hidden
        reason = f"{type(exc).__name__}: {exc}"[:80]
    seconds = time.perf_counter() - started
    grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    conn.send((seconds, grown, reason))  # type: ignore[attr-defined]


def attacks() -> None:
    ctx = multiprocessing.get_context("fork")
    print(f"{'attack':<58} {'stopped in':>10} {'grew MB':>8}  reason")
    worst_time = worst_mem = 0.0
    for source, _expected in ATTACKS:
        receive, send = ctx.Pipe(duplex=False)
        child = ctx.Process(target=_attack, args=(source, send))
        child.start()
        if receive.poll(60):
            seconds, grown, reason = receive.recv()
        else:
            seconds, grown, reason = 60.0, 0.0, "NO ANSWER after 60 s"
        if child.is_alive():
            child.kill()
        child.join()
        worst_time, worst_mem = max(worst_time, seconds), max(worst_mem, grown)
        shown = source.replace("\n", " ")
        shown = shown if len(shown) <= 58 else shown[:55] + "..."
        print(f"{shown:<58} {seconds * 1000:>8.1f}ms {grown:>8.1f}  {reason[:70]}")
    print(f"slowest refusal: {worst_time * 1000:.0f} ms; most memory grown: {worst_mem:.1f} MB")


def ordinary() -> None:
    renderer = Renderer()
    cases = []
    snapshot = parse(sorted(DEMO.glob("*.json"))[-1].read_bytes())
    for kind in (EventKind.CALLED, EventKind.PROGRESS, EventKind.TALLY):
        variables = sample_vars(snapshot, kind)[1]
        for platform in ("facebook", "x", "tiktok", "youtube"):
            renderer.render(platform, kind.value, variables)
            cases.append((platform, kind.value, variables))
    best = float("inf")
    for _ in range(7):
        started = time.perf_counter()
        for _ in range(100):
            for case in cases:
                renderer.render(*case)
        best = min(best, (time.perf_counter() - started) / (100 * len(cases)))
    print(f"one render of a bundled template: {best * 1e6:.0f} us (best of 7 x 1,200)")


if __name__ == "__main__":
    attacks()
    ordinary()
