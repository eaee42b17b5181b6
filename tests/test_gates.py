"""Plausibility gates: each kind of implausible change, injected into a night, holds what it
affects (and only that) until an operator approves it; warn and off do what they say."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy.exc import OperationalError

from broadcaster.core.clock import FeedClock
from broadcaster.core.config import GatesConfig
from broadcaster.delivery.dispatcher import Dispatcher, publisher_env
from broadcaster.domain.posts import HoldKind, PostState
from broadcaster.ingest import gates
from broadcaster.ingest.sources import make_fetched
from broadcaster.outbox import operations as operate
from broadcaster.outbox.state import State
from broadcaster.outbox.store import Store
from broadcaster.runtime.configuration import load_config
from broadcaster.runtime.cycle import Pipeline
from broadcaster.runtime.status import collect_status
from tests.conftest import read_jsonl, write_config

HEADER = (
    "election,status,generated_at,is_test,contest_id,contest_name,contest_type,seats,"
    "selection_id,selection_name,party_id,votes,winner,seats_won,units_reported,units_total,"
    "electorate,ballots_cast"
)

# (contest, name, kind, seats, selection, candidate, party, votes, winner, seats_won,
#  reported, total, electorate, ballots)
Row = list[str]


def base_rows() -> list[Row]:
    return [
        # C1: declared, Ana won
        ["C1", "Seat One", "candidate", "1", "C1-A", "Ana", "P1", "600", "true", "", "10", "10"],
        ["C1", "Seat One", "candidate", "1", "C1-B", "Ben", "P2", "300", "false", "", "10", "10"],
        # C2: counting
        ["C2", "Seat Two", "candidate", "1", "C2-A", "Cai", "P1", "200", "false", "", "5", "20"],
        ["C2", "Seat Two", "candidate", "1", "C2-B", "Dee", "P2", "150", "false", "", "5", "20"],
        # L: a party list of 3 seats, allocated
        ["L", "List Land", "party", "3", "L-1", "Party One", "P1", "900", "", "2", "8", "8"],
        ["L", "List Land", "party", "3", "L-2", "Party Two", "P2", "500", "", "1", "8", "8"],
    ]


ELECTORATE = {"C1": ("2000", "950"), "C2": ("3000", "400"), "L": ("5000", "1500")}


def body(rows: list[Row], status: str = "partial", at: str = "21:00") -> bytes:
    lines = [HEADER]
    for i, r in enumerate(rows):
        electorate, ballots = ELECTORATE[r[0]]
        head = (
            ["Gate Test (TEST)", status, f"2030-07-28T{at}:00+07:00", "true"]
            if i == 0
            else ["", "", "", ""]
        )
        lines.append(",".join([*head, *r, electorate, ballots]))
    return ("\n".join(lines) + "\n").encode()


def set_cell(rows: list[Row], selection: str, column: int, value: str) -> None:
    for r in rows:
        if r[4] == selection:
            r[column] = value


VOTES, WINNER, SEATS_WON, REPORTED = 7, 8, 9, 10


def progress_c2(rows: list[Row], reported: str = "10") -> None:
    """C2 moves on from 25 % to 50 % reported: an event that should flow unless C2 is held."""
    for r in rows:
        if r[0] == "C2":
            r[REPORTED] = reported


def case_votes_over_ballots(rows: list[Row]) -> None:
    progress_c2(rows)
    set_cell(rows, "C2-A", VOTES, "390")
    set_cell(rows, "C2-B", VOTES, "150")  # 540 votes, 400 ballots


def case_turnout(rows: list[Row]) -> None:
    progress_c2(rows)
    ELECTORATE["C2"] = ("300", "400")


def case_votes_decreased(rows: list[Row]) -> None:
    set_cell(rows, "C1-A", VOTES, "590")  # after the call: a correction event


def case_winner_changed(rows: list[Row]) -> None:
    set_cell(rows, "C1-A", WINNER, "false")
    set_cell(rows, "C1-B", WINNER, "true")
    set_cell(rows, "C1-B", VOTES, "700")


def case_call_withdrawn(rows: list[Row]) -> None:
    set_cell(rows, "C1-A", WINNER, "false")


def case_contest_missing(rows: list[Row]) -> None:
    rows[:] = [r for r in rows if r[0] != "C1"]


def case_selection_missing(rows: list[Row]) -> None:
    rows[:] = [r for r in rows if r[4] != "C1-B"]


def case_seats_over(rows: list[Row]) -> None:
    set_cell(rows, "L-2", SEATS_WON, "2")


def case_progress_backwards(rows: list[Row]) -> None:
    for r in rows:
        if r[0] == "L":
            r[REPORTED] = "6"


CASES: dict[str, tuple[Callable[[list[Row]], None], str | None, str]] = {
    # check: (change, contest held, status of the second snapshot)
    "votes_over_ballots": (case_votes_over_ballots, "C2", "partial"),
    "turnout_over_100": (case_turnout, "C2", "partial"),
    "votes_decreased": (case_votes_decreased, "C1", "partial"),
    "winner_changed": (case_winner_changed, "C1", "partial"),
    "call_withdrawn": (case_call_withdrawn, "C1", "partial"),
    "contest_missing": (case_contest_missing, "C1", "partial"),
    "selection_missing": (case_selection_missing, "C1", "partial"),
    "seats_over": (case_seats_over, "L", "partial"),
    "progress_backwards": (case_progress_backwards, "L", "partial"),
    "status_regressed": (progress_c2, None, "partial"),
}


QUIET = {"call_withdrawn", "contest_missing", "progress_backwards"}


class Night:
    def __init__(self, tmp_path: Path, gates_toml: str = "", extra: str = "") -> None:
        tmp_path.mkdir(parents=True, exist_ok=True)
        accounts = "".join(
            f'\n[[accounts]]\nname = "{p}-test"\nplatform = "{p}"\ndry_run = true\n'
            f"quota = [{{posts = 100000, seconds = 86400}}]\n"
            for p in ("facebook", "x")
        )
        self.config = load_config(
            write_config(
                tmp_path / "c.toml",
                source="feed.csv",
                accounts=accounts,
                gates=gates_toml,
                extra="[events]\ntally_every = 0\n" + extra,
            )
        )
        self.store = Store(self.config.database_url)
        self.clock = FeedClock()
        self.pipeline = Pipeline(self.config, self.store, clock=self.clock, dry_run=True)
        self.out = tmp_path / "posts.jsonl"
        env = publisher_env(self.config, self.store, self.clock, self.out)
        self.dispatcher = Dispatcher(
            self.config, self.store, clock=self.clock, env=env, dry_run=True
        )

    def feed(self, data: bytes, name: str):
        result = self.pipeline.ingest(make_fetched(data, name), "test")
        assert result.outcome == "accepted", result.error
        self.clock.advance_to(result.snapshot.generated_at)
        self.dispatcher.drain()
        return result

    def published(self) -> set[str]:
        return {r["event_key"] for r in read_jsonl(self.out)}


@pytest.mark.parametrize("check", list(CASES))
def test_each_implausible_change_is_held_until_approved(tmp_path: Path, check: str):
    saved = dict(ELECTORATE)
    try:
        change, contest, status = CASES[check]
        night = Night(tmp_path)
        first_status = "certified" if check == "status_regressed" else "partial"
        night.feed(body(base_rows(), first_status, "21:00"), "1.csv")
        before = night.published()
        rows = base_rows()
        change(rows)
        if contest not in ("C2", None):
            progress_c2(rows)  # the rest of the feed moves on too
        result = night.feed(body(rows, status, "21:30"), "2.csv")
    finally:
        ELECTORATE.clear()
        ELECTORATE.update(saved)

    found = [f for f in result.findings if f.check == check]
    assert found, result.findings
    assert found[0].contest_id == contest
    held = night.store.posts_in_state(PostState.HELD)
    # Changes that make events (a correction, a progress step) have them held; the others
    # (an uncalled or vanished contest, progress going back) make none, and are logged.
    assert bool(held) == (check not in QUIET), [r.event_key for r in held]
    for row in held:
        assert row.hold_reason.startswith(gates.HOLD_PREFIX)
        assert "approve it (broadcaster outbox approve ID)" in row.hold_reason
    new = night.published() - before
    held_keys = {r.event_key for r in held}
    # Nothing from an affected contest (or the whole snapshot) went out...
    for key in new:
        assert contest is not None, f"{key} went out although the whole snapshot is suspect"
        assert not key.startswith(f"contest/{contest}/"), f"{key} went out unapproved"
    # ...while the rest of the feed flowed (C2's progress, where it is not the suspect).
    if contest not in ("C2", None):
        assert any(k.startswith("contest/C2/") for k in new), new
    assert not (held_keys & new)
    if held:
        # approve --all leaves what a gate holds: each needs a person who read its finding.
        assert operate.approve(night.store, None, actor="tester") == []
        # An operator who has: a genuine correction.
        operate.approve(night.store, None, actor="tester", include_gated=True)
        night.dispatcher.drain()
        assert held_keys <= night.published()
    assert any(
        f["check"] == check for f in collect_status(night.config, night.store)["implausible"]
    )


def test_an_operator_can_reject_what_the_gate_held(tmp_path: Path):
    night = Night(tmp_path)
    night.feed(body(base_rows()), "1.csv")
    rows = base_rows()
    case_votes_decreased(rows)
    night.feed(body(rows, at="21:30"), "2.csv")
    held = night.store.posts_in_state(PostState.HELD)
    assert {r.event_kind for r in held} == {"corrected"}
    operate.cancel(night.store, [r.id for r in held], actor="tester")
    night.dispatcher.drain()
    assert not any(k.endswith("/corrected/1") for k in night.published())
    assert {r.state for r in night.store.posts_in_state(PostState.CANCELLED)} == {"cancelled"}


def test_a_held_event_stays_held_when_its_broken_template_is_fixed(tmp_path: Path):
    template = tmp_path / "tpl" / "en" / "facebook" / "corrected.j2"
    template.parent.mkdir(parents=True)
    template.write_text("{{ contest.name }")  # a syntax error: the post cannot be rendered
    night = Night(tmp_path, extra='[templates]\ndir = "tpl"\n')
    night.feed(body(base_rows()), "1.csv")
    rows = base_rows()
    case_votes_decreased(rows)
    night.feed(body(rows, at="21:30"), "2.csv")
    held = {r.account: r for r in night.store.posts_in_state(PostState.HELD)}
    assert held["facebook-test"].hold_reason.startswith("template: ")
    assert held["facebook-test"].hold_kind == HoldKind.TEMPLATE
    assert held["facebook-test"].gate_reason.startswith(gates.HOLD_PREFIX)
    assert held["x-test"].hold_reason.startswith(gates.HOLD_PREFIX)

    template.write_text("Correction: {{ contest.name }}")
    stamp = time.time_ns() + 1_000_000  # visible to the modification-time check
    os.utime(template, ns=(stamp, stamp))
    night.pipeline.maintain_templates()
    night.dispatcher.drain()
    assert not any("/corrected/" in k for k in night.published()), "sent without approval"
    fixed = night.store.post_row(held["facebook-test"].id)
    assert fixed.state == PostState.HELD
    assert fixed.text.endswith("Correction: Seat One")
    assert fixed.hold_reason.startswith(gates.HOLD_PREFIX)

    operate.approve(night.store, None, actor="tester", include_gated=True)
    night.dispatcher.drain()
    sent = [r["account"] for r in read_jsonl(night.out) if r["event_kind"] == "corrected"]
    assert sorted(sent) == ["facebook-test", "x-test"]
    assert not night.store.posts_in_state(PostState.HELD)


def test_findings_are_recorded_with_their_snapshot_never_twice(tmp_path: Path, monkeypatch):
    night = Night(tmp_path)
    night.feed(body(base_rows()), "1.csv")
    rows = base_rows()
    case_votes_decreased(rows)
    data = body(rows, at="21:30")

    def crash(*_args, **_kwargs):
        # The database going away mid-transaction: the pipeline re-raises it (an error the
        # snapshot's content caused would reject the snapshot instead), and nothing is kept.
        raise OperationalError("INSERT INTO posts", {}, Exception("disk I/O error"))

    with monkeypatch.context() as m:
        m.setattr(night.store, "insert_posts", crash)
        with pytest.raises(OperationalError):
            night.pipeline.ingest(make_fetched(data, "2.csv"), "test")
    assert State(night.store).gate_findings() == []
    night.feed(data, "2.csv")  # the next poll reads the same snapshot again
    recorded = State(night.store).gate_findings()
    assert [f["check"] for f in recorded] == ["votes_decreased"]


def test_warn_only_and_off_are_configuration(tmp_path: Path):
    warn = Night(tmp_path / "w", 'votes_decreased = "warn"')
    warn.feed(body(base_rows()), "1.csv")
    rows = base_rows()
    case_votes_decreased(rows)
    result = warn.feed(body(rows, at="21:30"), "2.csv")
    assert [f.check for f in result.findings] == ["votes_decreased"]
    assert not warn.store.posts_in_state(PostState.HELD)
    assert any("/corrected" in k for k in warn.published())

    off = Night(tmp_path / "o", 'votes_decreased = "off"')
    off.feed(body(base_rows()), "1.csv")
    assert off.feed(body(rows, at="21:30"), "2.csv").findings == []


def test_checks_on_a_snapshot_alone():
    from broadcaster.ingest.parsers import parse

    rows = base_rows()
    case_votes_over_ballots(rows)
    case_seats_over(rows)
    snap = parse(body(rows))
    assert sorted(f.check for f in gates.check(None, snap)) == [
        "seats_over",
        "votes_over_ballots",
    ]
    assert set(gates.CHECKS) == set(GatesConfig().model_dump())
