"""How final the results are, and which contests report tonight: the one place that decides.

Posts (through the template context and the `label` filter), result cards and the live channel
all read the status of the results and the state of each contest from here, with their words in
each language, so that nothing can say "Unofficial results" over certified figures.

- The *stage* of a contest's figures: `provisional` (counted, not yet declared), `official`
  (declared by the returning officer), `certified` (the whole election certified), `corrected`
  (a correction was issued). A contest's own stage (the feed's per-contest status) wins over the
  report's unless the report's is further along.
- The *state* of a contest: `normal`, or `postponed`, `suspended`, `withheld` (it will not report
  tonight), `uncontested` (declared at nomination), `recount`.
"""

from __future__ import annotations

from dataclasses import replace

from broadcaster.domain.model import (
    Contest,
    ContestKind,
    ContestState,
    ResultsStatus,
    Snapshot,
    Stage,
)

# The report's status as the stage of every contest that gives none of its own.
REPORT_STAGE: dict[ResultsStatus, Stage] = {
    ResultsStatus.PARTIAL: Stage.PROVISIONAL,
    ResultsStatus.COMPLETE: Stage.PROVISIONAL,
    ResultsStatus.RECOUNT: Stage.PROVISIONAL,
    ResultsStatus.OFFICIAL: Stage.OFFICIAL,
    ResultsStatus.CERTIFIED: Stage.CERTIFIED,
    ResultsStatus.CORRECTION: Stage.CORRECTED,
}
# Figures that an authority has declared: a complete count there decides who won.
FINAL_STAGES = frozenset({Stage.OFFICIAL, Stage.CERTIFIED, Stage.CORRECTED})
# Contests that will not report tonight: they count in the chamber's size, never as declared.
NOT_REPORTING = frozenset({ContestState.POSTPONED, ContestState.SUSPENDED, ContestState.WITHHELD})
WAITING = "waiting"  # no results yet (the live channel before the first snapshot)


def report_stage(status: ResultsStatus | str) -> Stage:
    return REPORT_STAGE[ResultsStatus(status)]


# How far along each stage is: a contest's own stage counts unless the report's is further
# (a contest declared official before the whole election is certified is certified with it).
_RANK = {Stage.PROVISIONAL: 0, Stage.OFFICIAL: 1, Stage.CERTIFIED: 2, Stage.CORRECTED: 2}


def contest_stage(contest: Contest, status: ResultsStatus | str) -> Stage:
    """A contest's stage: its own where the feed gives one, unless the report's is further."""
    report = report_stage(status)
    own = contest.stage
    return own if own is not None and _RANK[own] >= _RANK[report] else report


def reports(contest: Contest) -> bool:
    """False for a contest postponed, suspended or withheld: it will not report tonight."""
    return contest.state not in NOT_REPORTING


def election_stage(snapshot: Snapshot) -> Stage:
    """The stage of the results as a whole: the report's, or `official` once the report is
    provisional but every reporting contest has been declared official (or better)."""
    base = report_stage(snapshot.status)
    if base is not Stage.PROVISIONAL:
        return base
    stages = [c.stage for c in snapshot.contests if reports(c)]
    if stages and all(s in FINAL_STAGES for s in stages):
        return Stage.OFFICIAL
    return base


def results_status(snapshot: Snapshot | None) -> str:
    """What the results are, in one word: `waiting` before any, else the election's stage."""
    return WAITING if snapshot is None else election_stage(snapshot).value


def declare_from_final_counts(
    snapshot: Snapshot, exclude: frozenset[str] | set[str] = frozenset()
) -> Snapshot:
    """Winners of declared figures that the feed does not flag (a certified precinct-level
    report names no winner): in a candidate contest whose figures are official, certified or
    corrected and fully counted, the candidates with the most votes fill its seats, unless a
    tie decides the last seat (then nobody is declared). `exclude`: contests whose votes do not
    decide by plurality (ranked choice). Unchanged when nothing applies."""
    changed = False
    contests = []
    for contest in snapshot.contests:
        if contest.id in exclude:
            contests.append(contest)
            continue
        settled = _settled(contest, contest_stage(contest, snapshot.status))
        contests.append(settled)
        changed = changed or settled is not contest
    return replace(snapshot, contests=tuple(contests)) if changed else snapshot


def _settled(contest: Contest, stage: Stage) -> Contest:
    if (
        stage not in FINAL_STAGES
        or contest.kind is not ContestKind.CANDIDATE
        or contest.state is not ContestState.NORMAL
        or contest.called
        or not contest.votes_known
        or contest.total_votes <= 0
    ):
        return contest
    progress = contest.progress
    counted = progress.complete or (progress.total is None and progress.reported is None)
    if not counted or contest.tied:
        return contest
    n = max(1, contest.seats or 1)
    won = {s.id for s in contest.ranked()[:n] if s.votes > 0}
    return replace(
        contest,
        selections=tuple(replace(s, winner=True) if s.id in won else s for s in contest.selections),
    )


# -- the words ---------------------------------------------------------------------------------

LABELS: dict[str, dict[str, str]] = {
    "en": {
        "waiting": "Waiting for results",
        "provisional": "Provisional results",
        "official": "Official results",
        "certified": "Certified results",
        "corrected": "Corrected results",
        "normal": "Counting",
        "postponed": "Postponed",
        "suspended": "Suspended",
        "uncontested": "Unopposed",
        "withheld": "Results withheld",
        "recount": "Recount",
    },
    "ms": {
        "waiting": "Menunggu keputusan",
        "provisional": "Keputusan tidak rasmi",
        "official": "Keputusan rasmi",
        "certified": "Keputusan yang disahkan",
        "corrected": "Keputusan yang dibetulkan",
        "normal": "Pengiraan",
        "postponed": "Ditangguhkan",
        "suspended": "Digantung",
        "uncontested": "Menang tanpa bertanding",
        "withheld": "Keputusan ditahan",
        "recount": "Kiraan semula",
    },
    "km": {
        "waiting": "កំពុងរង់ចាំលទ្ធផល",
        "provisional": "លទ្ធផលបណ្ដោះអាសន្ន",
        "official": "លទ្ធផលផ្លូវការ",
        "certified": "លទ្ធផលផ្លូវការដែលបានបញ្ជាក់",
        "corrected": "លទ្ធផលកែតម្រូវ",
        "normal": "កំពុងរាប់សន្លឹកឆ្នោត",
        "postponed": "ត្រូវបានពន្យារពេល",
        "suspended": "ត្រូវបានផ្អាក",
        "uncontested": "គ្មានគូប្រកួត",
        "withheld": "ការប្រកាសលទ្ធផលត្រូវបានផ្អាក",
        "recount": "ការរាប់សន្លឹកឆ្នោតឡើងវិញ",
    },
}


def label(key: str, language: str) -> str:
    """The words for a stage, a contest state or `waiting`, in `language` (English if the
    language has none); KeyError for anything else."""
    words = LABELS.get(language, LABELS["en"])
    return words[str(key)]
