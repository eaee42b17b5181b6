"""The cleaner's fast path (issue 13): a contest with nothing to change is passed through
without building a field path per value, and anything the slow path would change, flag or
refuse in any field still reaches it."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from broadcaster.domain.model import (
    Contest,
    ContestKind,
    ListCandidate,
    Progress,
    ResultsStatus,
    Selection,
    Snapshot,
)
from broadcaster.ingest.parsers.base import FeedError
from broadcaster.ingest.parsers.clean import clean_snapshot

MAX = 1000


def _snapshot(contest: Contest) -> Snapshot:
    return Snapshot(
        election="Test",
        status=ResultsStatus.PARTIAL,
        generated_at=datetime(2030, 1, 1, tzinfo=UTC),
        contests=(contest,),
    )


def _contest(**changes: Any) -> Contest:
    member = ListCandidate(
        "m1", changes.pop("member_name", "Mei Ling"), changes.pop("member_votes", 5)
    )
    selection = Selection(
        changes.pop("selection_id", "s1"),
        changes.pop("selection_name", "Siti Aminah"),
        changes.pop("votes", 10),
        party_id=changes.pop("party_id", "p1"),
        seats=changes.pop("selection_seats", None),
        members=(member,),
        coalition_id=changes.pop("coalition_id", None),
    )
    contest = Contest(
        "c1",
        "Seat One",
        ContestKind.CANDIDATE,
        (selection,),
        progress=Progress(changes.pop("reported", 1), 2),
    )
    return replace(contest, **changes)


def test_a_clean_contest_passes_through_unchanged() -> None:
    snap = _snapshot(_contest())
    assert clean_snapshot(snap, max_count=MAX) is snap


@pytest.mark.parametrize(
    "changes",
    [
        {"name": " Seat One"},
        {"name": "Seat\u202eOne"},
        {"name": "Seat\nOne"},
        {"name": "Cafe\u0301"},  # not NFC
        {"selection_name": "Siti  Aminah "},
        {"selection_name": "Siti\u200fAminah"},
        {"member_name": "Mei\tLing"},
    ],
)
def test_a_name_to_normalise_is_normalised_whatever_field_it_is_in(changes: dict[str, Any]) -> None:
    snap = _snapshot(_contest(**changes))
    cleaned = clean_snapshot(snap, max_count=MAX)
    assert cleaned is not snap
    contest = cleaned.contests[0]
    names = [contest.name, contest.selections[0].name, contest.selections[0].members[0].name]
    assert all(n == n.strip() and "\u202e" not in n and "\n" not in n for n in names)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"id": "c\x1b1"}, "contests[0].id"),
        ({"selection_id": "s\x001"}, "selections[0].id"),
        ({"party_id": "p\x07"}, "selections[0].party_id"),
        ({"coalition_id": "k\x7f"}, "selections[0].coalition_id"),
        ({"name": "Seat\x1bOne"}, "contests[0].name"),
        ({"member_name": "Mei\x00"}, "candidates[0].name"),
        ({"votes": MAX + 1}, "selections[0].votes"),
        ({"selection_seats": MAX + 1}, "selections[0].seats"),
        ({"member_votes": MAX + 1}, "candidates[0].votes"),
        ({"reported": MAX + 1}, "progress.reported"),
        ({"electorate": MAX + 1}, "contests[0].electorate"),
        ({"ballots_cast": MAX + 1}, "contests[0].ballots_cast"),
        ({"seats": MAX + 1}, "contests[0].seats"),
    ],
)
def test_a_bad_value_is_refused_whatever_field_it_is_in(
    changes: dict[str, Any], field: str
) -> None:
    with pytest.raises(FeedError, match=field.replace("[", r"\[").replace("]", r"\]")):
        clean_snapshot(_snapshot(_contest(**changes)), max_count=MAX)
