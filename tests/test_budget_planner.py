"""Budgets and the planner, with plain values."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from broadcaster.domain.events import PRIORITY, EventKind
from broadcaster.domain.quota import Window
from broadcaster.planning.budget import budget_state, effective_windows
from broadcaster.planning.planner import Item, pace_tokens, plan_account, stale

T0 = datetime(2030, 7, 28, 20, 0, tzinfo=UTC)
X = [Window(posts=200, seconds=900), Window(posts=100, seconds=86400)]


def item(
    i: int, kind: EventKind, contest: str | None = "c1", minutes: int = 0, final: bool = False
) -> Item:
    return Item(i, kind, contest, T0 + timedelta(minutes=minutes), PRIORITY[kind], final)


def test_budget_counts_posts_in_each_window_and_finds_the_next_slot():
    sent = [T0 - timedelta(minutes=m) for m in (1, 2, 3)]
    state = budget_state([Window(posts=3, seconds=600), Window(posts=10, seconds=86400)], sent, T0)
    assert state.remaining == 7
    # the 10-minute window is full until its oldest post (3 minutes ago) is 10 minutes old
    assert state.next_slot == T0 + timedelta(minutes=7)
    assert "3 posts per 10 min" in state.blocked_reason
    free = budget_state([Window(posts=3, seconds=600)], sent[:2], T0)
    assert free.next_slot == T0
    assert free.remaining == 1


def test_a_send_exactly_one_window_ago_has_aged_out_and_order_does_not_matter():
    window = Window(posts=3, seconds=600)
    edge = T0 - timedelta(seconds=600)
    # Given newest first, with one send on the window's edge and one just inside it.
    sent = [T0 - timedelta(minutes=1), edge + timedelta(microseconds=1), edge]
    state = budget_state([window], sent, T0)
    assert state.remaining == 1
    full = budget_state([window], [*sent, T0 - timedelta(seconds=1)], T0)
    assert full.remaining == 0
    # The oldest send inside (just after the edge) frees the slot.
    assert full.next_slot == edge + timedelta(microseconds=1) + timedelta(seconds=600)


def test_platform_told_wait_and_learned_cap():
    state = budget_state(X, [], T0, blocked_until=T0 + timedelta(minutes=5))
    assert state.next_slot == T0 + timedelta(minutes=5)
    assert state.blocked_reason == "the platform asked to wait"
    learned = effective_windows(X, Window(posts=17, seconds=86400))
    assert Window(posts=17, seconds=86400) in learned
    assert Window(posts=100, seconds=86400) not in learned
    assert effective_windows(X, Window(posts=500, seconds=86400)) == X  # never loosened


def test_stale_posts_are_superseded():
    pending = [
        item(1, EventKind.PROGRESS, "c1", 0),
        item(2, EventKind.PROGRESS, "c2", 0),
        item(3, EventKind.PROGRESS, "c2", 5),
        item(4, EventKind.LEADER, "c3", 0),
        item(5, EventKind.TALLY, None, 0),
        item(6, EventKind.TALLY, None, 30),
        item(7, EventKind.TALLY, None, 10, final=True),
        item(8, EventKind.PROGRESS, "c4", 20),
    ]
    sent = [
        item(90, EventKind.CALLED, "c1", 1),
        item(91, EventKind.CALLED, "c3", 2),
        item(92, EventKind.CALLED, "c4", 10),
    ]
    gone = dict(stale(pending, sent))
    assert set(gone) == {1, 2, 4, 5}
    assert "result of the same contest" in gone[1]
    assert "newer progress" in gone[2]
    # a progress post newer than the call (c4 at 20 vs call at 10) is not stale;
    # the final tally never is


def plan(
    pending,
    *,
    sent=(),
    windows=X,
    sent_times=(),
    now=T0,
    ends=T0 + timedelta(hours=8),
    naive=False,
    blocked=None,
):
    budget = budget_state(windows, list(sent_times), now, blocked_until=blocked)
    return plan_account(
        list(pending),
        list(sent),
        budget,
        windows,
        now=now,
        night_ends=ends,
        recent_sends=list(sent_times),
        naive=naive,
    )


def test_ample_budget_sends_one_by_one_most_urgent_first():
    pending = [
        item(1, EventKind.PROGRESS, "c1"),
        item(2, EventKind.CALLED, "c2"),
        item(3, EventKind.CALLED, "c3"),
    ]
    result = plan(pending, windows=[Window(posts=10_000, seconds=86400)])
    assert result.send == 2
    assert not result.merge
    assert result.reason == "ample budget"


def test_tight_budget_paces_and_merges_posts_of_one_kind():
    tiktok = [Window(posts=6, seconds=60), Window(posts=15, seconds=86400)]
    pending = [item(i, EventKind.CALLED, f"c{i}", i) for i in range(1, 6)]
    first = plan(pending, windows=tiktok)
    assert first.merge == [1, 2, 3, 4, 5]
    assert "merged" in first.reason
    # right after a post, the next one waits for its slot: 8 h over 12 usable posts (14 left,
    # the last two kept)
    waited = plan(pending, windows=tiktok, sent_times=[T0])
    assert waited.send is None
    assert not waited.merge
    assert waited.wait_until == T0 + timedelta(hours=8) / 12
    assert "pacing" in waited.reason


def test_corrections_and_majorities_go_at_once_even_when_paced():
    tiktok = [Window(posts=15, seconds=86400)]
    pending = [item(1, EventKind.CALLED, "c1"), item(2, EventKind.CORRECTED, "c9")]
    result = plan(pending, windows=tiktok, sent_times=[T0])
    assert result.send == 2
    assert result.reason == "urgent"


def test_hard_limits_are_never_exceeded_and_a_reserve_is_kept():
    window = [Window(posts=3, seconds=86400)]
    pending = [item(1, EventKind.CALLED, "c1")]
    spent = plan(pending, windows=window, sent_times=[T0 - timedelta(hours=1)] * 3)
    assert spent.send is None
    assert spent.wait_until == T0 + timedelta(hours=23)
    # with 2 posts left, both are kept: for a correction or a majority, and for the calls
    # that come with the final tally
    reserve = plan(pending, windows=window, sent_times=[T0 - timedelta(hours=1)])
    assert reserve.send is None
    assert "last two posts" in reserve.reason
    assert plan(pending, windows=window).send == 1  # with 3 left, one may go
    assert (
        plan(
            [item(2, EventKind.MAJORITY, None)],
            windows=window,
            sent_times=[T0 - timedelta(hours=1)],
        ).send
        == 2
    )


def test_the_platform_asking_to_wait_stops_everything_but_the_naive_policy_ignores_budgets():
    pending = [item(1, EventKind.CORRECTED, "c1")]
    blocked = plan(pending, blocked=T0 + timedelta(minutes=3))
    assert blocked.send is None
    assert blocked.wait_until == T0 + timedelta(minutes=3)
    window = [Window(posts=1, seconds=86400)]
    assert plan(pending, windows=window, sent_times=[T0], naive=True).send == 1


X_DAY = [Window(posts=100, seconds=86400)]
SIX_HOURS = T0 + timedelta(hours=6)


def test_pace_bucket_is_full_after_a_quiet_spell_and_refills_one_per_interval():
    interval = timedelta(minutes=4)
    assert pace_tokens([], T0, interval, 7) == 7
    burst = [T0 - timedelta(seconds=s) for s in range(5)]
    assert pace_tokens(burst, T0, interval, 7) == pytest.approx(2, abs=0.05)
    assert pace_tokens(burst, T0 + 2 * interval, interval, 7) == pytest.approx(4, abs=0.05)
    # urgent posts beyond the pace take it below zero; it never holds more than its capacity
    assert pace_tokens(burst * 2, T0, interval, 7) < 0
    assert pace_tokens(burst, T0 + timedelta(hours=5), interval, 7) == 7


def test_a_burst_of_calls_spends_the_saved_bucket_at_once_in_summaries():
    # 100 posts a day over a 6-hour night: one every ~3.9 min, up to 7 at once
    calls = [item(i, EventKind.CALLED, f"c{i}") for i in range(1, 4)]
    result = plan(calls, windows=X_DAY, ends=SIX_HOURS)
    assert result.merge == [1, 2, 3]  # paced: calls waiting together become one post
    single = plan(calls[:1], windows=X_DAY, ends=SIX_HOURS)
    assert single.send == 1
    # six summaries went in the last minute: the seventh still fits, then it waits
    spent = [T0 - timedelta(seconds=10 * s) for s in range(6)]
    assert plan(calls, windows=X_DAY, ends=SIX_HOURS, sent_times=spent).merge == [1, 2, 3]
    full = plan(calls, windows=X_DAY, ends=SIX_HOURS, sent_times=[*spent, T0])
    assert full.send is None
    assert not full.merge
    assert T0 < full.wait_until < T0 + timedelta(minutes=5)
    assert "pacing" in full.reason


def test_progress_leaves_half_the_bucket_to_calls():
    spent = [T0 - timedelta(seconds=10 * s) for s in range(5)]  # about 2 of 7 left
    progress = [item(1, EventKind.PROGRESS, "c1")]
    waits = plan(progress, windows=X_DAY, ends=SIX_HOURS, sent_times=spent)
    assert waits.send is None
    assert waits.wait_until > T0
    call = [item(2, EventKind.CALLED, "c2")]
    assert plan(call, windows=X_DAY, ends=SIX_HOURS, sent_times=spent).send == 2


def test_the_final_tally_is_urgent_and_may_use_the_last_post():
    window = [Window(posts=3, seconds=86400)]
    spent = [T0 - timedelta(hours=2), T0 - timedelta(hours=1)]
    final = Item(1, EventKind.TALLY, None, T0, PRIORITY[EventKind.TALLY], final=True)
    assert plan([final], windows=window, sent_times=spent).send == 1
    interim = Item(2, EventKind.TALLY, None, T0, PRIORITY[EventKind.TALLY])
    kept = plan([interim], windows=window, sent_times=spent)
    assert kept.send is None
    assert "kept" in kept.reason


def test_calls_waiting_at_the_final_tally_go_before_it_merged_when_the_budget_is_short():
    tiktok = [Window(posts=15, seconds=86400)]
    final = Item(99, EventKind.TALLY, None, T0, PRIORITY[EventKind.TALLY], final=True)
    calls = [item(i, EventKind.CALLED, f"c{i}", -i) for i in range(1, 11)]
    # two posts left, and the last post only five minutes ago: the pace would make calls wait
    spent = [T0 - timedelta(minutes=5 + 25 * k) for k in range(13)]
    first = plan([final, *calls], windows=tiktok, sent_times=spent, ends=T0 + timedelta(hours=1))
    assert sorted(first.merge) == list(range(1, 11))
    assert "night's end" in first.reason
    # with the summary sent, the final tally takes the last post
    then = plan([final], windows=tiktok, sent_times=[*spent, T0])
    assert then.send == 99
    # with only the last post left, the final tally has it and the calls wait for the next day
    last = plan([final, *calls], windows=tiktok, sent_times=[*spent, T0])
    assert last.send == 99


def test_after_the_final_tally_nothing_is_paced_but_the_reserve_is_kept():
    x_day = [Window(posts=100, seconds=86400)]
    final = Item(99, EventKind.TALLY, None, T0, PRIORITY[EventKind.TALLY], final=True)
    late = [item(1, EventKind.CALLED, "c1"), item(2, EventKind.CALLED, "c2")]
    spent = [T0 - timedelta(seconds=s) for s in range(10)]  # the pacing bucket is empty
    result = plan(late, sent=[final], windows=x_day, sent_times=spent, ends=SIX_HOURS)
    assert result.send == 1
    assert result.reason == "night's end"
    nearly_spent = [T0 - timedelta(minutes=m) for m in range(99)]
    kept = plan(late, sent=[final], windows=x_day, sent_times=nearly_spent, ends=SIX_HOURS)
    assert kept.send is None
    assert "kept" in kept.reason
