"""What every parser shares: the one rejection error, and checked accessors that name the field."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, tzinfo
from typing import Any, Protocol

from broadcaster.domain.model import ContestState, Snapshot, Stage


class FeedError(ValueError):
    """A snapshot was rejected. `problem` names the first thing wrong and where (field or line)."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


class Parser(Protocol):
    """Turns the raw bytes of one snapshot into a Snapshot, or raises FeedError."""

    def __call__(self, body: bytes, *, default_tz: tzinfo) -> Snapshot: ...


ParserFn = Callable[..., Snapshot]


def decode_text(body: bytes) -> str:
    """Bytes to text, UTF-8 (a BOM is allowed); anything else is a FeedError with the offset."""
    if not body.strip():
        raise FeedError("empty body")
    try:
        return body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise FeedError(f"byte {exc.start}: not valid UTF-8 ({exc.reason})") from None


def load_json(body: bytes) -> Any:
    """Parse JSON; a syntax error names its line and column."""
    return load_json_text(decode_text(body))


def load_json_text(text: str) -> Any:
    """`load_json` of text already decoded."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise FeedError(
            f"line {exc.lineno} column {exc.colno}: malformed JSON ({exc.msg})"
        ) from None
    except RecursionError:
        raise FeedError("JSON nested too deeply") from None


def describe(value: Any) -> str:
    """A short, safe rendering of an unexpected value for an error message."""
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def need_obj(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise FeedError(f"{path}: expected an object, got {describe(value)}")
    return value


def need_list(value: Any, path: str) -> list[Any]:
    if not isinstance(value, list):
        raise FeedError(f"{path}: expected a list, got {describe(value)}")
    return value


def need_str(value: Any, path: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise FeedError(f"{path}: expected a non-empty string, got {describe(value)}")
    return value


def is_digits(text: str) -> bool:
    """ASCII digits only. `str.isdigit` also takes "²" (which int() refuses) and other
    scripts' digits: a count in an official feed is plain ASCII, and anything else is named
    as an error rather than read."""
    return text.isascii() and text.isdigit()


def need_count(value: Any, path: str) -> int:
    """A vote or seat count: a non-negative integer (bool and 12.5 are refused)."""
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer() and value >= 0:
            return int(value)
        raise FeedError(f"{path}: expected a non-negative integer, got {describe(value)}")
    if value < 0:
        raise FeedError(f"{path}: expected a non-negative integer, got {value}")
    return value


def opt_count(value: Any, path: str) -> int | None:
    return None if value is None else need_count(value, path)


def parse_time(value: Any, path: str, default_tz: tzinfo) -> datetime:
    """ISO 8601 date-time; one without an offset is taken in the election's timezone."""
    text = need_str(value, path)
    try:
        ts = datetime.fromisoformat(text.strip())
    except ValueError:
        raise FeedError(
            f"{path}: expected an ISO 8601 date-time such as 2026-05-10T21:30:00+08:00, "
            f"got {describe(value)}"
        ) from None
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=default_tz)
    return ts


def parse_bool(value: Any, path: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "1", "yes"):
        return True
    if isinstance(value, str) and value.strip().lower() in ("false", "0", "no", ""):
        return False
    raise FeedError(f"{path}: expected true or false, got {describe(value)}")


STAGES = {s.value: s for s in Stage}
STATES = {s.value: s for s in ContestState}
CONTEST_STATUS_WORDS = (*STAGES, *STATES)


def contest_status(value: Any, where: str) -> tuple[Stage | None, ContestState]:
    """A contest's status word: how final its figures are (a Stage: provisional, official,
    certified, corrected) or why it does not report as usual (a ContestState: postponed,
    suspended, uncontested, withheld, recount, normal). Empty means neither."""
    text = str(value).strip().lower() if value is not None else ""
    if not text:
        return None, ContestState.NORMAL
    if text in STAGES:
        return STAGES[text], ContestState.NORMAL
    if text in STATES:
        return None, STATES[text]
    raise FeedError(
        f"{where}: expected one of {', '.join(CONTEST_STATUS_WORDS)}, got {describe(value)}"
    )
