"""Feed formats: one module per format, one entry per format in FORMATS.

`parse(body, fmt)` is the only entry point the pipeline uses; `fmt="auto"` detects the format.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, tzinfo
from importlib import import_module
from typing import Any

from broadcaster.core.config import Config, ConfigError
from broadcaster.domain.model import Snapshot
from broadcaster.ingest.parsers.base import FeedError
from broadcaster.ingest.parsers.clean import DEFAULT_MAX_COUNT, clean_snapshot
from broadcaster.ingest.payload import Payload, whole

__all__ = ["FORMATS", "FeedError", "detect", "parse", "reader_for"]

# name -> "module:function"; imported on first use so an unused format costs nothing.
FORMATS: dict[str, str] = {
    "nist": "broadcaster.ingest.parsers.nist:parse_nist",
    "csv": "broadcaster.ingest.parsers.mapped:parse_simple_csv",  # mappings/simple-csv.toml
    "eml": "broadcaster.ingest.parsers.eml:parse_eml",
    "mapped": "broadcaster.ingest.parsers.mapped:parse_mapped",
}
# The formats whose parser reads a large body piece by piece from where it lies (payload.py);
# the others are given it whole.
PIECEWISE = frozenset({"nist"})


def _load(fmt: str) -> Callable[..., Snapshot]:
    module, func = FORMATS[fmt].split(":")
    return getattr(import_module(module), func)


def detect(body: Payload) -> str:
    """Guess the format from the first bytes; FeedError when nothing fits."""
    head = body[:4096].lstrip(b"\xef\xbb\xbf \t\r\n")
    if not head:
        raise FeedError("empty body")
    if head[:1] in (b"{", b"["):
        if b"ElectionResults." in body[:65536]:
            return "nist"
        raise FeedError(
            "JSON document is not a NIST SP 1500-100 ElectionReport "
            '(no "ElectionResults." @type found); for another JSON feed set feed.format = '
            '"mapped" with a mapping file'
        )
    if head[:1] == b"<":
        lowered = head[:512].lower()
        if b"<html" in lowered or b"<!doctype html" in lowered:
            raise FeedError("an HTML page was served instead of a results feed")
        if b"urn:oasis:names:tc:evs:schema:eml" in body[:4096]:
            return "eml"
        raise FeedError(
            "an XML document that is not OASIS EML (no urn:oasis:names:tc:evs:schema:eml "
            "namespace); set feed.format explicitly"
        )
    first_line = head.split(b"\n", 1)[0].lower()
    if b"contest_id" in first_line and b"votes" in first_line:
        return "csv"
    raise FeedError("cannot detect the feed format (expected NIST JSON or the CSV format)")


def parse(
    body: Payload,
    fmt: str = "auto",
    *,
    default_tz: tzinfo = UTC,
    mapping: Any = None,
    max_count: int = DEFAULT_MAX_COUNT,
) -> Snapshot:
    """Bytes of one snapshot (in memory or spooled) to a Snapshot, its text normalised and
    its counts bounded (parsers/clean.py); every failure is a FeedError naming the problem.
    `mapping` (a loaded mapping file) is for the "mapped" format."""
    name = detect(body) if fmt == "auto" else fmt
    if name not in FORMATS:
        raise FeedError(f"unknown feed format {name!r}; expected one of {', '.join(FORMATS)}")
    extra = {"mapping": mapping} if name == "mapped" else {}
    try:
        given = body if name in PIECEWISE else whole(body)
        snapshot = _load(name)(given, default_tz=default_tz, **extra)
    except FeedError:
        raise
    except RecursionError:
        raise FeedError("document nested too deeply") from None
    except (ValueError, TypeError, LookupError, ArithmeticError, json.JSONDecodeError) as exc:
        # A parser bug must not take the daemon down, but must not be hidden either.
        raise FeedError(f"unexpected content ({type(exc).__name__}: {exc})") from None
    return clean_snapshot(snapshot, max_count=max_count)


def reader_for(config: Config) -> Callable[[Payload], Snapshot]:
    """The parser the configuration asks for, mapping loaded once: bytes -> Snapshot, or a
    FeedError. A broken mapping file is a ConfigError, found before the night starts."""
    feed = config.feed
    mapping = None
    fmt = feed.format
    if feed.mapping:
        from broadcaster.ingest.parsers.mapped import MappingError, load_mapping

        path = config.path(feed.mapping)
        assert path is not None
        try:
            mapping = load_mapping(path)
        except MappingError as exc:
            raise ConfigError(f"[feed] mapping: {exc}") from None
        fmt = "mapped"
    tz = config.election.tz
    coalitions, by_contest = config.coalitions, config.contest_coalitions

    def read(body: Payload) -> Snapshot:
        snapshot = parse(body, fmt, default_tz=tz, mapping=mapping, max_count=feed.max_count)
        if coalitions or by_contest:
            from broadcaster.ingest.coalitions import apply_coalitions

            snapshot = apply_coalitions(snapshot, coalitions, by_contest)
        return snapshot

    return read
