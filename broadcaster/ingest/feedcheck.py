"""`broadcaster feed check`: read one snapshot the way the daemon would, and say what it found.

For an election body's IT team wiring up their feed (or a mapping for it): the same size and
time limits, the same parser and mapping, and the plausibility checks that look at a snapshot
on its own. Nothing is stored.
"""

from __future__ import annotations

import json
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from broadcaster.core.config import Config
from broadcaster.core.secrets import SecretError, Secrets
from broadcaster.domain.model import Contest, Snapshot
from broadcaster.domain.status import contest_stage, election_stage
from broadcaster.domain.tally import compute_tally
from broadcaster.ingest import gates
from broadcaster.ingest.locations import is_url
from broadcaster.ingest.parsers import FeedError, reader_for
from broadcaster.ingest.payload import whole
from broadcaster.ingest.sources import HttpSource, SourceDown, safe_url


@dataclass
class CheckResult:
    where: str  # the file, or the URL with its credentials masked (safe_url)
    snapshot: Snapshot | None = None
    problem: str | None = None
    findings: list[gates.Finding] | None = None
    size: int = 0


def fetch_once(target: str, config: Config) -> bytes:
    """The bytes at a URL (bounded like the daemon's polls) or in a file; SourceDown if not."""
    if is_url(target):
        secrets = Secrets(config.path(config.secrets.file))
        try:
            source = HttpSource(target, config.feed, secrets=secrets)
        except SecretError as exc:
            raise SourceDown(str(exc)) from None
        fetched = source.fetch()
        if fetched is None:
            raise SourceDown(f"{source.shown}: nothing returned")
        return whole(fetched.body)
    path = Path(target)
    try:
        size = path.stat().st_size
        if size > config.feed.max_bytes:
            raise SourceDown(f"{target}: {size} bytes, over the limit of {config.feed.max_bytes}")
        return path.read_bytes()
    except OSError as exc:
        raise SourceDown(f"{target}: {exc.strerror}") from None


def check_feed(target: str, config: Config) -> CheckResult:
    """Fetch and parse one snapshot; the problem (fetch or parse) or what was understood."""
    result = CheckResult(where=safe_url(target) if is_url(target) else target)
    try:
        body = fetch_once(target, config)
        result.size = len(body)
        snapshot = reader_for(config)(body)
    except (SourceDown, FeedError) as exc:
        result.problem = exc.problem if isinstance(exc, FeedError) else str(exc)
        return result
    result.snapshot = snapshot
    result.findings = gates.check(None, snapshot)
    return result


def snapshot_json(
    snapshot: Snapshot, findings: list[gates.Finding] | None = None
) -> dict[str, Any]:
    """The normalised snapshot as plain JSON for scripts: what broadcaster understood, field by
    field, with the stage and state of every contest and each selection's figures."""
    tally = compute_tally(snapshot)
    return {
        "election": snapshot.election,
        "status": snapshot.status.value,
        "stage": election_stage(snapshot).value,
        "generated_at": snapshot.generated_at.isoformat(),
        "is_test": snapshot.is_test,
        "issuer": snapshot.issuer,
        "parties": [
            {
                "id": p.id,
                "name": p.name,
                "abbreviation": p.abbreviation,
                "coalition": p.coalition_id,
                "color": p.color,
            }
            for p in snapshot.parties.values()
        ],
        "coalitions": [
            {
                "id": c.id,
                "name": c.name,
                "abbreviation": c.abbreviation,
                "parties": list(c.party_ids),
            }
            for c in snapshot.coalitions.values()
        ],
        "contests": [_contest_json(snapshot, c) for c in snapshot.contests],
        "tally": tally.to_dict(),
        "findings": [
            {"check": f.check, "contest": f.contest_id, "message": f.message}
            for f in findings or []
        ],
    }


def _contest_json(snapshot: Snapshot, c: Contest) -> dict[str, Any]:
    total = c.total_votes
    return {
        "id": c.id,
        "name": c.name,
        "kind": c.kind.value,
        "seats": c.seats,
        "stage": contest_stage(c, snapshot.status).value,
        "state": c.state.value,
        "reported": c.progress.reported,
        "units_total": c.progress.total,
        "percent_reported": c.progress.percent,
        "electorate": c.electorate,
        "ballots_cast": c.ballots_cast,
        "votes_known": c.votes_known,
        "total_votes": total if c.votes_known else None,
        "called": c.called,
        "tied": c.tied,
        "selections": [
            {
                "id": s.id,
                "name": s.name,
                "votes": s.votes if c.votes_known else None,
                "share": (100.0 * s.votes / total) if c.votes_known and total else None,
                "party": s.party_id,
                "coalition": coalition.id if (coalition := snapshot.coalition_for(s)) else None,
                "winner": s.winner,
                "seats": s.seats,
                "candidates": [
                    {"id": m.id, "name": m.name, "votes": m.votes, "elected": m.elected}
                    for m in s.members
                ],
            }
            for s in c.ranked()
        ],
    }


def terminal_json(value: Any) -> str:
    """JSON for a terminal: indented, text kept readable (Khmer stays Khmer), but every control,
    bidi or other invisible format character written as a \\u escape, so a hostile feed value
    cannot move the cursor or reorder what the operator reads. The JSON means the same."""
    text = json.dumps(value, ensure_ascii=False, indent=2)
    return "".join(_escape(ch) for ch in text)


_KEEP = frozenset("\n")


def _escape(ch: str) -> str:
    if ch in _KEEP:
        return ch
    category = unicodedata.category(ch)
    if category in ("Cc", "Cf", "Zl", "Zp", "Co", "Cs", "Cn"):
        return f"\\u{ord(ch):04x}" if ord(ch) < 0x10000 else _surrogates(ord(ch))
    return ch


def _surrogates(code: int) -> str:
    code -= 0x10000
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"
