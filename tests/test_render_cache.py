"""The filters' caches (issue 13): numbers formatted by Babel are kept least recently used
first out (never all dropped at once), and a time or date is formatted once per value."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from babel.numbers import NumberPattern

from broadcaster.content import render
from broadcaster.content.render import FORMATTED_KEPT, Locale, make_filters


def _locale() -> Locale:
    return Locale(language="en", khmer_digits=False, timezone="Asia/Bangkok")


def test_numbers_are_kept_least_recently_used_first_out(monkeypatch: pytest.MonkeyPatch) -> None:
    number = make_filters(_locale())["number"]
    applied: list[object] = []
    original = NumberPattern.apply

    def counted(self: NumberPattern, value: object, *args: object, **kwargs: object) -> str:
        applied.append(value)
        return original(self, value, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(NumberPattern, "apply", counted)
    for n in range(FORMATTED_KEPT + 2):
        assert number(n) == f"{n:,}"
    applied.clear()
    assert number(FORMATTED_KEPT) == f"{FORMATTED_KEPT:,}"  # used a moment ago: kept
    assert number(FORMATTED_KEPT + 1) == f"{FORMATTED_KEPT + 1:,}"
    assert applied == []
    assert number(0) == "0"  # the least recently used made room
    assert applied == [0]


def test_a_time_is_formatted_once(monkeypatch: pytest.MonkeyPatch) -> None:
    filters = make_filters(_locale())
    calls: list[datetime] = []
    original = render.format_time

    def counted(value: datetime, *args: object, **kwargs: object) -> str:
        calls.append(value)
        return original(value, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(render, "format_time", counted)
    at = datetime(2030, 7, 28, 13, 5, tzinfo=UTC)
    assert {filters["time"](at) for _ in range(50)} == {"20:05"}
    assert filters["time"](at, "HH:mm:ss") == "20:05:00"
    assert len(calls) == 2


def test_a_time_filter_given_no_time_fails_as_before() -> None:
    with pytest.raises(AttributeError):
        make_filters(_locale())["time"]("20:05")
