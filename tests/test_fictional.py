"""The fictional nights the benchmarks and crash tests replay: marked as tests, plausible (the
gates find nothing), every seat called by the end."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from broadcaster.ingest import gates
from broadcaster.ingest.parsers import parse
from broadcaster.rehearsal.fictional import Burst, NightPlan, first_seen_called, write_night


def test_a_fictional_night_is_test_data_plausible_and_complete(tmp_path: Path):
    plan = NightPlan(seats=30, hours=2, step_minutes=10, bursts=(Burst(1, 0.3, 5),))
    seats = write_night(plan, tmp_path)
    files = sorted(tmp_path.glob("*.json"))
    assert len(files) == 14
    previous = None
    for path in files:
        snap = parse(path.read_bytes())
        assert snap.is_test
        assert "TEST" in snap.election
        assert gates.check(previous, snap) == [], path.name
        previous = snap
    assert previous is not None
    assert all(c.called for c in previous.contests)
    called = first_seen_called(plan, seats)
    burst_start = plan.start + timedelta(hours=1)
    in_burst = [s for s in seats if burst_start <= s.called <= burst_start + timedelta(minutes=5)]
    assert len(in_burst) == 9  # 30 % of the seats within the burst's five minutes
    assert all(called[s.id] >= s.called for s in seats)


def test_a_burst_must_fit_in_the_night():
    with pytest.raises(ValueError, match="ends after the night"):
        write_night(
            NightPlan(seats=5, hours=1, bursts=(Burst(0.9, 0.5, 10),)), Path("/nonexistent")
        )
