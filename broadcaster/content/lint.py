"""`broadcaster templates lint`: every template of every account, against realistic contexts.

The contexts are the events of a real replay (the bundled fictional night, or the operator's own
snapshot) plus an example of every event kind for every contest, so a template is exercised on
candidate seats and party lists, leaders and ties, partial and final tallies. Each problem is
reported once as `path:line: message`.

On a large feed the examples are drawn from the first contests and from those with the longest
names (contest, candidates, parties: what makes a post too long), so that a 20,000-contest
feed is linted in seconds and its worst case is never skipped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from broadcaster.content.compose import Composer
from broadcaster.content.context import shared_vars, snapshot_context, template_vars
from broadcaster.content.render import RenderError
from broadcaster.content.samples import SampleError, display_from, sample_context, sample_event
from broadcaster.core.config import Config
from broadcaster.core.paths import DEMO_SNAPSHOTS
from broadcaster.domain.events import CONTEST_KINDS, Event, EventKind
from broadcaster.domain.limits import count_x
from broadcaster.domain.model import Contest, Snapshot
from broadcaster.domain.tally import compute_tally
from broadcaster.ingest.differ import DiffState, diff, rules_from
from broadcaster.ingest.parsers import parse

MAX_CONTESTS = 60  # per snapshot and per choice (first, longest names): variety, not all


@dataclass
class LintReport:
    templates: int = 0
    renders: int = 0
    problems: list[str] = field(default_factory=list)


def demo_snapshots() -> list[Snapshot]:

    return [parse(p.read_bytes()) for p in sorted(DEMO_SNAPSHOTS.glob("*.json"))]


def lint_contexts(
    config: Config, snapshots: Sequence[Snapshot]
) -> list[tuple[Event, dict[str, Any]]]:
    """(event, template variables) pairs to check templates against."""
    rules = rules_from(config)
    tz = config.election.timezone
    display = display_from(config)
    out: list[tuple[Event, dict[str, Any]]] = []
    state = DiffState()
    for snapshot in snapshots:
        if config.feed.is_test and not snapshot.is_test:
            snapshot = replace(snapshot, is_test=True)
        tally = compute_tally(snapshot, rules.majority_seats)
        shared = snapshot_context(
            snapshot, tally, election_name=config.election.name, issuer=config.election.issuer
        )
        views = shared_vars(shared, tz, display)
        events, state = diff(state, snapshot, rules)
        chosen = chosen_contests(snapshot)
        examples: list[Event] = [
            e for e in events if e.contest_id is None or e.contest_id in chosen
        ]
        for kind in EventKind:
            contest_ids: list[str | None] = [None]
            if kind in CONTEST_KINDS:
                contest_ids = list(chosen)
            for contest_id in contest_ids:
                try:
                    examples.append(sample_event(snapshot, kind, contest_id, rules))
                except SampleError:
                    continue
        for event in examples:
            ctx = sample_context(event, snapshot, rules)
            out.append((event, template_vars(event, ctx, views, timezone=tz)))
    return out


def chosen_contests(snapshot: Snapshot) -> dict[str, None]:
    """The contests templates are tried on: the first ones, and those with the longest names
    (counted as X counts them: Khmer weighs double), each list at most MAX_CONTESTS."""
    chosen = {c.id: None for c in snapshot.contests[:MAX_CONTESTS]}
    if len(snapshot.contests) > MAX_CONTESTS:
        longest = sorted(snapshot.contests, key=_name_weight, reverse=True)[:MAX_CONTESTS]
        chosen.update((c.id, None) for c in longest)
    return chosen


def _name_weight(contest: Contest) -> int:
    names = [contest.name, *(s.name for s in contest.ranked()[:6])]
    return sum(count_x(n) for n in names)


def lint_templates(config: Config, snapshots: Sequence[Snapshot] | None = None) -> LintReport:
    report = LintReport()
    contexts = lint_contexts(config, snapshots if snapshots is not None else demo_snapshots())
    composer = Composer(config, dry_run=True)
    problems: dict[str, None] = {}
    sources: set[str] = set()
    for account in config.accounts:
        renderer = composer.renderer(account)
        for kind in EventKind:
            if not account.wants(kind):
                continue
            found = renderer.source_of(account.platform, kind.value)
            if found is None:
                names = " or ".join(renderer.template_names(account.platform, kind.value))
                problems[f"{names}: no template for {account.name} ({account.platform})"] = None
                continue
            sources.add(found[0])
            for event, variables in contexts:
                if event.kind is not kind:
                    continue
                report.renders += 1
                try:
                    composer.compose_text(event, account, variables)
                except RenderError as exc:
                    problems[_plain(exc)] = None
    report.templates = len(sources)
    report.problems = list(problems)
    return report


def _plain(exc: RenderError) -> str:
    message = exc.message
    if "No filter named" in message:
        message = message.replace("syntax error: ", "unknown filter: ")
    return f"{exc.where}: {message}"
