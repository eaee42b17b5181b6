"""The simple CSV results format (one row per selection), documented in docs/feed-format.md."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field, replace
from datetime import tzinfo
from typing import Any

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
from broadcaster.ingest.parsers.base import (
    FeedError,
    contest_status,
    decode_text,
    describe,
    parse_bool,
    parse_time,
)

REQUIRED = ("contest_id", "contest_name", "selection_id", "selection_name", "votes")
OPTIONAL = (
    "contest_type",
    "seats",
    "party_id",
    "party_name",
    "coalition_id",
    "coalition_name",
    "winner",
    "seats_won",
    "units_reported",
    "units_total",
    "electorate",
    "ballots_cast",
    "contest_status",
)
ELECTION = ("election", "status", "generated_at", "is_test", "issuer")
COLUMNS = REQUIRED + OPTIONAL + ELECTION

# The contest-level columns: every row of one contest must agree on them.
_CONTEST_FIELDS = (
    "contest_name",
    "contest_type",
    "seats",
    "units_reported",
    "units_total",
    "electorate",
    "ballots_cast",
    "contest_status",
)

_STATUS = {s.value: s for s in ResultsStatus}


@dataclass
class _ContestRows:
    first_line: int
    fields: dict[str, str]
    selections: list[Selection] = field(default_factory=list)
    ids: set[str] = field(default_factory=set)


def looks_like_csv(text: str) -> bool:
    head = text.lstrip("\ufeff").split("\n", 1)[0].lower()
    return all(col in head for col in ("contest_id", "selection_id", "votes"))


def parse_csv(body: bytes, *, default_tz: tzinfo) -> Snapshot:
    """Parse one CSV snapshot; FeedError names the line and column of the first problem."""
    text = decode_text(body)
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except (StopIteration, csv.Error) as exc:
        raise FeedError(f"line 1: cannot read the header row ({exc})") from None
    columns = [h.strip().lower() for h in header]
    unknown = [c for c in columns if c and c not in COLUMNS]
    if unknown:
        raise FeedError(
            f"line 1: unknown column {unknown[0]!r}; expected columns among: {', '.join(COLUMNS)}"
        )
    missing = [c for c in REQUIRED if c not in columns]
    if missing:
        raise FeedError(f"line 1: missing required column {missing[0]!r}")
    if len(set(columns)) != len(columns):
        dup = next(c for c in columns if columns.count(c) > 1)
        raise FeedError(f"line 1: column {dup!r} appears twice")

    election: dict[str, str] = {}
    contests: dict[str, _ContestRows] = {}
    parties: dict[str, tuple[str, str | None]] = {}
    coalitions: dict[str, str] = {}
    by_contest = "coalition_id" in columns  # each row says its party's coalition there

    try:
        for row in reader:
            line = reader.line_num
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(columns):
                raise FeedError(f"line {line}: expected {len(columns)} fields, found {len(row)}")
            rec = {c: v.strip() for c, v in zip(columns, row, strict=True)}
            _merge_election(election, rec, line)
            _add_row(contests, parties, coalitions, rec, line, by_contest)
    except csv.Error as exc:
        raise FeedError(f"line {reader.line_num}: malformed CSV ({exc})") from None

    if not contests:
        raise FeedError("no data rows after the header")
    for key in ("election", "status", "generated_at"):
        if not election.get(key):
            raise FeedError(f"column {key!r}: required on the first data row, but empty")
    status = _STATUS.get(election["status"].lower())
    if status is None:
        raise FeedError(
            f"column 'status': expected one of {', '.join(_STATUS)}, "
            f"got {describe(election['status'])}"
        )

    party_map: dict[str, Party] = {
        pid: Party(pid, name, None, coal) for pid, (name, coal) in parties.items()
    }
    members: dict[str, list[str]] = {cid: [] for cid in coalitions}
    for group in contests.values():
        for s in group.selections:
            if s.coalition_id and s.party_id and s.party_id not in members[s.coalition_id]:
                members[s.coalition_id].append(s.party_id)
    coalition_map = {
        cid: Coalition(cid, name, None, tuple(members[cid])) for cid, name in coalitions.items()
    }
    return Snapshot(
        election=election["election"],
        status=status,
        generated_at=parse_time(election["generated_at"], "column 'generated_at'", default_tz),
        is_test=parse_bool(election.get("is_test", ""), "column 'is_test'"),
        issuer=election.get("issuer") or None,
        contests=tuple(_contest(cid, rows) for cid, rows in contests.items()),
        parties=party_map,
        coalitions=coalition_map,
    )


def _merge_election(election: dict[str, str], rec: dict[str, str], line: int) -> None:
    for key in ELECTION:
        value = rec.get(key, "")
        if not value:
            continue
        if key in election and election[key] != value:
            raise FeedError(
                f"line {line}, column {key!r}: {describe(value)} differs from "
                f"{describe(election[key])} given earlier (one snapshot is one election)"
            )
        election[key] = value


def _int(rec: dict[str, str], key: str, line: int, *, required: bool = False) -> int | None:
    value = rec.get(key, "")
    if value == "":
        if required:
            raise FeedError(f"line {line}, column {key!r}: required, but empty")
        return None
    clean = value.replace("_", "")
    if not clean.isdigit():
        raise FeedError(
            f"line {line}, column {key!r}: expected a non-negative integer, got {describe(value)}"
        )
    return int(clean)


def _add_row(
    contests: dict[str, _ContestRows],
    parties: dict[str, tuple[str, str | None]],
    coalitions: dict[str, str],
    rec: dict[str, str],
    line: int,
    by_contest: bool,
) -> None:
    cid = rec["contest_id"]
    if not cid:
        raise FeedError(f"line {line}, column 'contest_id': required, but empty")
    fields = {k: rec.get(k, "") for k in _CONTEST_FIELDS}
    group = contests.get(cid)
    if group is None:
        group = contests[cid] = _ContestRows(line, fields)
    else:
        for k in _CONTEST_FIELDS:
            if fields[k] != group.fields[k]:
                raise FeedError(
                    f"line {line}, column {k!r}: {describe(fields[k])} differs from "
                    f"{describe(group.fields[k])} on line {group.first_line} for contest {cid!r}"
                )
    sid = rec["selection_id"]
    if not sid:
        raise FeedError(f"line {line}, column 'selection_id': required, but empty")
    if sid in group.ids:
        raise FeedError(f"line {line}, column 'selection_id': duplicate {sid!r} in contest {cid!r}")
    group.ids.add(sid)
    name = rec["selection_name"]
    if not name:
        raise FeedError(f"line {line}, column 'selection_name': required, but empty")

    party_id = rec.get("party_id") or None
    coal = rec.get("coalition_id") or None
    if party_id:
        pname = rec.get("party_name") or party_id
        known = parties.get(party_id)
        if known is not None and known[0] != pname:
            raise FeedError(
                f"line {line}, column 'party_name': party {party_id!r} was given as "
                f"{known[0]!r} earlier"
            )
        # A party may stand under a coalition's logo in one contest and its own in another:
        # the row says which (the party's own coalition is the first one given).
        parties[party_id] = (pname, (known[1] if known else None) or coal)
    if coal:
        coalitions.setdefault(coal, rec.get("coalition_name") or coal)

    winner = parse_bool(rec.get("winner", ""), f"line {line}, column 'winner'")
    group.selections.append(
        Selection(
            id=sid,
            name=name,
            votes=_int(rec, "votes", line, required=True) or 0,
            party_id=party_id,
            winner=winner,
            seats=_int(rec, "seats_won", line),
            coalition_id=(coal or "") if by_contest else None,
        )
    )


def _contest(cid: str, rows: _ContestRows) -> Contest:
    f = rows.fields
    line = rows.first_line
    kind_text = (f["contest_type"] or "candidate").lower()
    try:
        kind = ContestKind(kind_text)
    except ValueError:
        raise FeedError(
            f"line {line}, column 'contest_type': expected candidate, party or measure, "
            f"got {describe(f['contest_type'])}"
        ) from None
    seats = _int(f, "seats", line)
    selections = rows.selections
    if kind is ContestKind.PARTY:
        selections = [s if s.seats is not None else replace(s, seats=0) for s in selections]
    elif kind is ContestKind.CANDIDATE and seats is None:
        seats = 1
    stage, state = contest_status(f["contest_status"], f"line {line}, column 'contest_status'")
    return Contest(
        id=cid,
        name=f["contest_name"] or _fail(line, "contest_name"),
        stage=stage,
        state=state,
        kind=kind,
        selections=tuple(selections),
        progress=Progress(_int(f, "units_reported", line), _int(f, "units_total", line)),
        seats=seats,
        electorate=_int(f, "electorate", line),
        ballots_cast=_int(f, "ballots_cast", line),
    )


def _fail(line: int, column: str) -> Any:
    raise FeedError(f"line {line}, column {column!r}: required, but empty")
