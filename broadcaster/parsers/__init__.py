"""Feed formats: one module per format, one entry per format in FORMATS.

`parse(body, fmt)` is the only entry point the pipeline uses; `fmt="auto"` detects the format.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, tzinfo
from importlib import import_module

from broadcaster.model import Snapshot
from broadcaster.parsers.base import FeedError

__all__ = ["FORMATS", "FeedError", "detect", "parse"]

# name -> "module:function"; imported on first use so an unused format costs nothing.
FORMATS: dict[str, str] = {
    "nist": "broadcaster.parsers.nist:parse_nist",
    "csv": "broadcaster.parsers.csvfeed:parse_csv",
}


def _load(fmt: str) -> Callable[..., Snapshot]:
    module, func = FORMATS[fmt].split(":")
    return getattr(import_module(module), func)  # type: ignore[no-any-return]


def detect(body: bytes) -> str:
    """Guess the format from the first bytes; FeedError when nothing fits."""
    head = body[:4096].lstrip(b"\xef\xbb\xbf \t\r\n")
    if not head:
        raise FeedError("empty body")
    if head[:1] in (b"{", b"["):
        if b"ElectionResults." in body[:65536]:
            return "nist"
        raise FeedError(
            "JSON document is not a NIST SP 1500-100 ElectionReport "
            '(no "ElectionResults." @type found); set feed.format explicitly'
        )
    if head[:1] == b"<":
        lowered = head[:512].lower()
        if b"<html" in lowered or b"<!doctype html" in lowered:
            raise FeedError("an HTML page was served instead of a results feed")
        raise FeedError("XML feeds are not supported by this version; expected NIST JSON or CSV")
    first_line = head.split(b"\n", 1)[0].lower()
    if b"contest_id" in first_line and b"votes" in first_line:
        return "csv"
    raise FeedError("cannot detect the feed format (expected NIST JSON or the CSV format)")


def parse(body: bytes, fmt: str = "auto", *, default_tz: tzinfo = UTC) -> Snapshot:
    """Bytes of one snapshot to a Snapshot; every failure is a FeedError naming the problem."""
    name = detect(body) if fmt == "auto" else fmt
    if name not in FORMATS:
        raise FeedError(f"unknown feed format {name!r}; expected one of {', '.join(FORMATS)}")
    try:
        return _load(name)(body, default_tz=default_tz)
    except FeedError:
        raise
    except RecursionError:
        raise FeedError("document nested too deeply") from None
    except (ValueError, TypeError, KeyError, json.JSONDecodeError) as exc:
        # A parser bug must not take the daemon down, but must not be hidden either.
        raise FeedError(f"unexpected content ({type(exc).__name__}: {exc})") from None
