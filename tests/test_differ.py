from __future__ import annotations

from datetime import UTC, datetime, timedelta

from broadcaster.domain.events import EventKind
from broadcaster.domain.model import (
    Coalition,
    Contest,
    ContestKind,
    Party,
    Progress,
    ResultsStatus,
    Selection,
    Snapshot,
)
from broadcaster.ingest.differ import DiffRules, DiffState, diff
from broadcaster.ingest.parsers import parse

T0 = datetime(2030, 7, 28, 12, 0, tzinfo=UTC)
PARTIES = {
    "A": Party("A", "Alpha", "ALP", "U"),
    "B": Party("B", "Beta", "BET", "U"),
    "C": Party("C", "Gamma", "GAM"),
}
COALITIONS = {"U": Coalition("U", "Union", None, ("A", "B"))}


def seat(cid: str, a: int, c: int, *, reported: int = 5, winner: str | None = None) -> Contest:
    return Contest(
        id=cid,
        name=cid,
        kind=ContestKind.CANDIDATE,
        seats=1,
        progress=Progress(reported, 10),
        selections=(
            Selection(f"{cid}-a", "Ana", a, "A", winner == "a"),
            Selection(f"{cid}-c", "Cy", c, "C", winner == "c"),
        ),
    )


def snap(
    *contests: Contest, minutes: int = 0, status: ResultsStatus = ResultsStatus.PARTIAL
) -> Snapshot:
    return Snapshot(
        election="Test",
        status=status,
        generated_at=T0 + timedelta(minutes=minutes),
        contests=contests,
        is_test=True,
        parties=PARTIES,
        coalitions=COALITIONS,
    )


def run(
    *snaps: Snapshot, rules: DiffRules | None = None, contests_only: bool = False
) -> list[list[str]]:
    state = DiffState()
    out = []
    for s in snaps:
        events, state = diff(state, s, rules or DiffRules(tally_every=None))
        out.append([e.key for e in events if not contests_only or e.contest_id])
    return out


def test_threshold_crossing_posts_only_the_highest_threshold_crossed():
    keys = run(
        snap(seat("s1", 0, 0, reported=0)),
        snap(seat("s1", 10, 5, reported=6), minutes=5),  # 0 % -> 60 %: 25 and 50 crossed
        snap(seat("s1", 12, 6, reported=7), minutes=10),  # 70 %: nothing new
        snap(seat("s1", 20, 8, reported=10), minutes=15),  # 100 %
    )
    assert keys == [[], ["contest/s1/progress/50"], [], ["contest/s1/progress/100"]]


def test_progress_threshold_uses_exact_arithmetic():
    # 1 of 4 is exactly 25 %: crossed; 24 of 100 is not.
    c = Contest("s1", "s1", ContestKind.CANDIDATE, (), Progress(1, 4))
    assert run(snap(c)) == [["contest/s1/progress/25"]]
    c = Contest("s1", "s1", ContestKind.CANDIDATE, (), Progress(24, 100))
    assert run(snap(c)) == [[]]


def test_leader_change_keys_are_unique_even_when_the_lead_swings_back():
    keys = run(
        snap(seat("s1", 10, 5, reported=2)),
        snap(seat("s1", 10, 12, reported=2), minutes=1),
        snap(seat("s1", 20, 12, reported=2), minutes=2),
        snap(seat("s1", 20, 12, reported=2), minutes=3),
    )
    assert keys[1] == ["contest/s1/leader/s1-c/22"]
    assert keys[2] == ["contest/s1/leader/s1-a/32"]
    assert keys[3] == []


def test_no_leader_event_on_a_tie_or_from_nothing():
    keys = run(
        snap(seat("s1", 0, 0, reported=1)),
        snap(seat("s1", 5, 5, reported=1), minutes=1),
        snap(seat("s1", 5, 6, reported=1), minutes=2),
    )
    assert keys == [[], [], []]


def test_call_is_an_event_once():
    keys = run(
        snap(seat("s1", 10, 5, reported=10)),
        snap(seat("s1", 10, 5, reported=10, winner="a"), minutes=1),
        snap(seat("s1", 10, 5, reported=10, winner="a"), minutes=2),
        contests_only=True,
    )
    assert keys[1:] == [["contest/s1/called"], []]


def test_counting_that_goes_on_after_a_call_is_not_a_correction():
    keys = run(
        snap(seat("s1", 10, 5, reported=8, winner="a")),
        snap(seat("s1", 14, 6, reported=9, winner="a"), minutes=1),
    )
    assert keys[1] == []


def test_corrections():
    called = seat("s1", 10, 5, reported=10, winner="a")
    # A count that goes down is a correction; so is a change after the count was complete.
    went_down = run(snap(called), snap(seat("s1", 9, 5, reported=10, winner="a"), minutes=1))
    assert went_down[1][0].startswith("contest/s1/corrected/")
    after_complete = run(snap(called), snap(seat("s1", 10, 7, reported=10, winner="a"), minutes=1))
    assert after_complete[1][0].startswith("contest/s1/corrected/")
    # The same figures always give the same key.
    assert went_down[1] != after_complete[1]
    again = run(snap(called), snap(seat("s1", 9, 5, reported=10, winner="a"), minutes=7))
    assert again[1] == went_down[1]


def test_winner_change_after_uncall_is_a_correction_not_a_second_call():
    state = DiffState()
    rules = DiffRules(tally_every=None)
    events, state = diff(state, snap(seat("s1", 10, 5, reported=10, winner="a")), rules)
    assert [e.kind for e in events if e.contest_id] == [EventKind.CALLED, EventKind.PROGRESS]
    events, state = diff(state, snap(seat("s1", 10, 5, reported=10), minutes=1), rules)
    assert events == []  # an uncalled contest is for the plausibility gates, not a post
    events, state = diff(state, snap(seat("s1", 10, 12, reported=10, winner="c"), minutes=2), rules)
    assert [e.kind for e in events if e.contest_id] == [EventKind.CORRECTED]
    assert events[0].data["winner_changed"] is True
    assert events[0].data["previous_winners"] == ["s1-a"]


def test_periodic_tally_follows_feed_time_and_skips_unchanged():
    rules = DiffRules(tally_every=timedelta(minutes=30))
    s1 = seat("s1", 10, 5, reported=10, winner="a")
    s2 = seat("s2", 0, 0, reported=0)
    keys = run(
        snap(s1, s2, minutes=5),  # first seat declared: tally for the 12:00 slot
        snap(s1, s2, minutes=20),  # same slot, nothing new
        snap(s1, seat("s2", 3, 9, reported=10, winner="c"), minutes=25),  # same slot: waits
        snap(
            s1, seat("s2", 3, 9, reported=10, winner="c"), minutes=40
        ),  # but s2 completes the seats
        rules=rules,
    )
    assert "tally/2030-07-28T12:00Z" in keys[0]
    assert not any(k.startswith("tally/") for k in keys[1])
    assert "tally/final" in keys[2]
    assert keys[3] == []


def test_majority_of_a_coalition_and_of_a_party():
    rules = DiffRules(tally_every=None)
    seats_a = [seat(f"s{i}", 10, 5, reported=10, winner="a") for i in range(3)]
    seats_c = [seat(f"t{i}", 1, 5, reported=10, winner="c") for i in range(2)]
    keys = run(snap(*seats_a, *seats_c), rules=rules)
    # 5 seats, majority 3: Alpha (3 seats) and its coalition Union (3 seats) both hold one.
    assert {k for k in keys[0] if "majority" in k} == {"tally/majority/A", "tally/majority/U"}


def test_same_history_gives_same_keys_and_a_replay_gives_none(demo_files):
    snaps = [parse(p.read_bytes()) for p in demo_files]
    rules = DiffRules()

    def replay(state: DiffState) -> tuple[list[str], DiffState]:
        keys: list[str] = []
        for s in snaps:
            events, state = diff(state, s, rules)
            keys.extend(e.key for e in events)
        return keys, state

    first, end_state = replay(DiffState())
    second, _ = replay(DiffState())
    assert first == second
    assert len(first) == len(set(first)), "an event key repeated within one night"
    kinds = {
        k.split("/")[0] + "/" + k.split("/")[2] if k.startswith("contest/") else k.split("/")[1]
        for k in first
    }
    assert {
        "contest/called",
        "contest/progress",
        "contest/leader",
        "contest/corrected",
        "majority",
        "final",
    } <= kinds
    # Feeding the last snapshot again yields nothing.
    again, _ = diff(end_state, snaps[-1], rules)
    assert again == []


def test_party_list_call_and_outcome():
    pl = Contest(
        "p1",
        "List",
        ContestKind.PARTY,
        (Selection("pa", "Alpha", 60, "A", seats=0), Selection("pc", "Gamma", 40, "C", seats=0)),
        Progress(10, 10),
        seats=3,
    )
    called = Contest(
        pl.id,
        pl.name,
        pl.kind,
        (Selection("pa", "Alpha", 60, "A", seats=2), Selection("pc", "Gamma", 40, "C", seats=1)),
        pl.progress,
        3,
    )
    state = DiffState()
    events, state = diff(state, snap(pl), DiffRules(tally_every=None))
    assert [e.key for e in events] == ["contest/p1/progress/100"]
    events, state = diff(state, snap(called, minutes=1), DiffRules(tally_every=None))
    calls = [e for e in events if e.kind is EventKind.CALLED]
    assert [e.key for e in calls] == ["contest/p1/called"]
    assert calls[0].data["winners"] == ["pa:2", "pc:1"]
