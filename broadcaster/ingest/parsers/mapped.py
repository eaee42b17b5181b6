"""Any JSON or CSV feed, read through a mapping file that says where each thing lives.

An election body whose IT team already publishes results can point broadcaster at that feed
unchanged: the mapping (TOML, see docs/feed-format.md) gives, for JSON, a JMESPath expression
per field (`contests.each` finds the list of contests, the other contest fields are read inside
each one, `selections.each` inside a contest); for CSV, the column holding each field, one row
per selection. A mapping is checked when it is loaded (every expression compiled, every field
known); a snapshot that does not fit it is rejected with the expression or column, where, and
what was found there.
"""

from __future__ import annotations

import csv
import io
import tomllib
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any, Literal

import jmespath
import jmespath.exceptions
import jmespath.visitor
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

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
    load_json,
    parse_time,
)

STATUSES = {s.value: s for s in ResultsStatus}
TRUE = ("true", "yes", "y", "1")
FALSE = ("false", "no", "n", "0", "")


ReportStatus = Literal["partial", "complete", "official", "certified", "correction", "recount"]
ContestStatusWord = Literal[
    "provisional",
    "official",
    "certified",
    "corrected",
    "normal",
    "postponed",
    "suspended",
    "uncontested",
    "withheld",
    "recount",
]


class MappingError(ValueError):
    """The mapping file itself is wrong (a configuration error, not a feed problem)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ElectionFields(_Strict):
    name: str | None = None  # default: the mapping's `election_name`, else "Election"
    generated_at: str | None = None  # absent: the time the snapshot is read
    status: str | None = None
    is_test: str | None = None
    issuer: str | None = None


class SelectionFields(_Strict):
    each: str
    id: str | None = None  # default: the name
    name: str
    votes: str
    party: str | None = None
    winner: str | None = None
    seats: str | None = None
    coalition: str | None = None  # the coalition it stood for in this contest ("" for none)


class ContestFields(_Strict):
    each: str
    id: str
    name: str | None = None  # default: the id
    kind: str | None = None  # candidate (default), party or measure
    seats: str | None = None
    reported: str | None = None
    total_units: str | None = None
    electorate: str | None = None
    ballots_cast: str | None = None
    status: str | None = None  # a stage (official...) or a state (postponed...), see docs


class PartyFields(_Strict):
    each: str
    id: str
    name: str
    abbreviation: str | None = None
    color: str | None = None


class JsonMapping(_Strict):
    type: Literal["json"]
    election_name: str | None = None
    election: ElectionFields = Field(default_factory=ElectionFields)
    contests: ContestFields
    selections: SelectionFields
    parties: PartyFields | None = None
    status_values: dict[str, ReportStatus] = Field(default_factory=dict)
    contest_status_values: dict[str, ContestStatusWord] = Field(default_factory=dict)


class CsvColumns(_Strict):
    contest_id: str
    contest_name: str | None = None
    contest_kind: str | None = None
    seats: str | None = None
    reported: str | None = None
    total_units: str | None = None
    electorate: str | None = None
    ballots_cast: str | None = None
    selection_id: str | None = None
    selection_name: str
    votes: str
    party: str | None = None
    winner: str | None = None
    seats_won: str | None = None
    coalition: str | None = None
    contest_status: str | None = None
    generated_at: str | None = None
    status: str | None = None
    is_test: str | None = None


class CsvMapping(_Strict):
    type: Literal["csv"]
    delimiter: str = Field(default=",", min_length=1, max_length=1)
    election_name: str | None = None
    is_test: bool = False
    columns: CsvColumns
    winner_values: list[str] = Field(default_factory=lambda: list(TRUE))
    status_values: dict[str, ReportStatus] = Field(default_factory=dict)
    contest_status_values: dict[str, ContestStatusWord] = Field(default_factory=dict)

    @field_validator("winner_values")
    @classmethod
    def _lower(cls, value: list[str]) -> list[str]:
        return [v.strip().lower() for v in value]


FeedMapping = JsonMapping | CsvMapping


def load_mapping(path: Path) -> FeedMapping:
    """Read and check a mapping file; MappingError names the file and the field."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise MappingError(f"{path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise MappingError(f"{path}: {exc}") from None
    kind = raw.get("type")
    model: type[JsonMapping] | type[CsvMapping]
    if kind == "json":
        model = JsonMapping
    elif kind == "csv":
        model = CsvMapping
    else:
        raise MappingError(f'{path}: type: expected "json" or "csv", got {describe(kind)}')
    try:
        mapping = model.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise MappingError(f"{path}: {where}: {first['msg']}") from None
    if isinstance(mapping, JsonMapping):
        for section in ("election", "contests", "selections", "parties"):
            fields = getattr(mapping, section)
            if fields is None:
                continue
            for name, expr in fields.model_dump().items():
                if expr is None:
                    continue
                try:
                    jmespath.compile(expr)
                except jmespath.exceptions.JMESPathError as exc:
                    raise MappingError(
                        f"{path}: {section}.{name} = {expr!r}: not a JMESPath expression "
                        f"({str(exc).splitlines()[0]})"
                    ) from None
    return mapping


# -- JSON ------------------------------------------------------------------------------------


class _Getter:
    """One mapped field: a JMESPath expression, compiled once. The common shapes (a name, a
    dotted path, a path compared with a string) become plain Python; the rest run on one
    reusable interpreter. That is what makes a 20,000-contest feed fast."""

    __slots__ = ("expr", "field", "fn")

    def __init__(self, field: str, expr: str) -> None:
        self.field = field
        self.expr = expr
        ast = jmespath.compile(expr).parsed
        self.fn: Callable[[Any], Any] = _fast(ast) or _interpreted(ast)

    def __call__(self, doc: Any) -> Any:
        try:
            return self.fn(doc)
        except jmespath.exceptions.JMESPathError as exc:  # e.g. length() of a number
            raise FeedError(
                f"mapping {self.field} = {self.expr!r}: {str(exc).splitlines()[0]}"
            ) from None

    def problem(self, where: str, found: Any, expected: str) -> FeedError:
        return FeedError(
            f"mapping {self.field} = {self.expr!r}{where}: found {describe(found)}, "
            f"expected {expected}"
        )


def _path(ast: dict[str, Any]) -> list[str] | None:
    """The keys of a `a` or `a.b.c` expression; None for anything else."""
    if ast["type"] == "field":
        return [ast["value"]]
    if ast["type"] == "subexpression":
        keys = [_path(child) for child in ast["children"]]
        if all(k is not None for k in keys):
            return [key for k in keys for key in k or ()]
    return None


def _fast(ast: dict[str, Any]) -> Callable[[Any], Any] | None:
    keys = _path(ast)
    if keys is not None:
        if len(keys) == 1:
            key = keys[0]
            return lambda doc: doc.get(key) if isinstance(doc, dict) else None
        path = keys
        return lambda doc: _dig(doc, path)
    if ast["type"] == "comparator" and ast["value"] in ("eq", "ne"):
        left, right = ast["children"]
        keys = _path(left)
        literal = right.get("value") if right["type"] == "literal" else None
        # Strings only: JMESPath's equality of numbers and booleans differs from Python's.
        if keys is not None and isinstance(literal, str):
            equal = ast["value"] == "eq"
            return lambda doc: (_dig(doc, keys) == literal) is equal
    return None


def _interpreted(ast: dict[str, Any]) -> Callable[[Any], Any]:
    interpreter = jmespath.visitor.TreeInterpreter()
    return lambda doc: interpreter.visit(ast, doc)


def _dig(doc: Any, keys: list[str]) -> Any:
    for key in keys:
        if not isinstance(doc, dict):
            return None
        doc = doc.get(key)
    return doc


def _getter(section: str, name: str, expr: str | None) -> _Getter | None:
    return _Getter(f"{section}.{name}", expr) if expr is not None else None


class _JsonReader:
    def __init__(self, mapping: JsonMapping) -> None:
        self.mapping = mapping
        e, c, s = mapping.election, mapping.contests, mapping.selections
        self.e = {k: _getter("election", k, v) for k, v in e.model_dump().items()}
        self.c = {k: _getter("contests", k, v) for k, v in c.model_dump().items()}
        self.s = {k: _getter("selections", k, v) for k, v in s.model_dump().items()}
        p = mapping.parties
        self.p = {k: _getter("parties", k, v) for k, v in p.model_dump().items()} if p else None

    def read(self, doc: Any, default_tz: tzinfo) -> Snapshot:
        e = self.e
        name = _opt_str(e["name"], doc, "") or self.mapping.election_name or "Election"
        status = _status(e["status"], doc, "", self.mapping.status_values)
        generated = e["generated_at"]
        if generated is None:
            generated_at = datetime.now(UTC)
        else:
            value = generated(doc)
            if not isinstance(value, str):
                raise generated.problem("", value, "a date-time such as 2030-07-28T21:30:00+07:00")
            where = f"mapping {generated.field} = {generated.expr!r}"
            generated_at = parse_time(value, where, default_tz)
        is_test = _bool(e["is_test"], doc, "") if e["is_test"] else False
        issuer = _opt_str(e["issuer"], doc, "")
        parties = self._parties(doc)
        contests_getter = self.c["each"]
        assert contests_getter is not None
        items = contests_getter(doc)
        if not isinstance(items, list) or not items:
            raise contests_getter.problem("", items, "a non-empty list of contests")
        contests: list[Contest] = []
        seen: set[str] = set()
        for n, item in enumerate(items):
            contest = self._contest(item, n, parties)
            if contest.id in seen:
                raise FeedError(f"contest #{n + 1}: duplicate contest id {contest.id!r}")
            seen.add(contest.id)
            contests.append(contest)
        coalitions = {
            s.coalition_id: Coalition(s.coalition_id, s.coalition_id)
            for c in contests
            for s in c.selections
            if s.coalition_id
        }
        return Snapshot(
            election=name,
            status=status,
            generated_at=generated_at,
            contests=tuple(contests),
            is_test=is_test,
            issuer=issuer,
            parties=parties,
            coalitions=coalitions,
        )

    def _parties(self, doc: Any) -> dict[str, Party]:
        if self.p is None:
            return {}
        each = self.p["each"]
        assert each is not None
        items = each(doc)
        if not isinstance(items, list):
            raise each.problem("", items, "a list of parties")
        out: dict[str, Party] = {}
        for n, item in enumerate(items):
            where = f" (party #{n + 1})"
            pid = _id(self.p["id"], item, where)
            if pid in out:
                raise FeedError(f"party #{n + 1}: duplicate party id {pid!r}")
            out[pid] = Party(
                pid,
                _need_str(self.p["name"], item, where),
                _opt_str(self.p["abbreviation"], item, where),
                None,
                _opt_str(self.p["color"], item, where),
            )
        return out

    def _contest(self, item: Any, n: int, parties: dict[str, Party]) -> Contest:
        c = self.c
        cid = _id(c["id"], item, f" (contest #{n + 1})")
        where = f" (contest {cid!r})"
        kind = _kind(c["kind"], item, where)
        sels_getter = self.s["each"]
        assert sels_getter is not None
        raw = sels_getter(item)
        if not isinstance(raw, list) or not raw:
            raise sels_getter.problem(where, raw, "a non-empty list of selections")
        selections: list[Selection] = []
        ids: set[str] = set()
        for k, sel in enumerate(raw):
            swhere = f" (contest {cid!r}, selection #{k + 1})"
            name = _need_str(self.s["name"], sel, swhere)
            sid = _id(self.s["id"], sel, swhere) if self.s["id"] else name
            if sid in ids:
                raise FeedError(f"contest {cid!r}: duplicate selection id {sid!r}")
            ids.add(sid)
            party = _opt_str(self.s["party"], sel, swhere)
            if party is not None and parties and party not in parties:
                raise FeedError(
                    f"contest {cid!r}, selection {sid!r}: unknown party {party!r} "
                    f"(not among the mapping's parties)"
                )
            if party is not None and party not in parties:
                parties[party] = Party(party, party)
            selections.append(
                Selection(
                    id=sid,
                    name=name,
                    votes=_need_count(self.s["votes"], sel, swhere),
                    party_id=party,
                    winner=_bool(self.s["winner"], sel, swhere) if self.s["winner"] else False,
                    seats=_opt_count(self.s["seats"], sel, swhere),
                    coalition_id=_coalition(self.s["coalition"], sel, swhere),
                )
            )
        seats = _opt_count(c["seats"], item, where)
        stage, state = _contest_status(c["status"], item, where, self.mapping.contest_status_values)
        return Contest(
            id=cid,
            name=_opt_str(c["name"], item, where) or cid,
            kind=kind,
            selections=tuple(selections),
            progress=Progress(
                _opt_count(c["reported"], item, where), _opt_count(c["total_units"], item, where)
            ),
            seats=seats if seats is not None else (1 if kind is ContestKind.CANDIDATE else None),
            electorate=_opt_count(c["electorate"], item, where),
            ballots_cast=_opt_count(c["ballots_cast"], item, where),
            stage=stage,
            state=state,
        )


def _coalition(getter: _Getter | None, doc: Any, where: str) -> str | None:
    """The coalition a selection stood for in its contest: an id, or "" for none."""
    if getter is None:
        return None
    value = getter(doc)
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise getter.problem(where, value, "a coalition id, or empty for none")
    return str(value).strip()


def _contest_status(
    getter: _Getter | None, doc: Any, where: str, values: Mapping[str, str]
) -> tuple[Any, Any]:
    if getter is None:
        return contest_status(None, where)
    value = getter(doc)
    text = str(value).strip() if value is not None else ""
    try:
        return contest_status(values.get(text, text), f"mapping {getter.field}{where}")
    except FeedError:
        known = ", ".join(values) or "the words of contest_status_values"
        raise getter.problem(where, value, f"a stage or contest state, or one of {known}") from None


def _id(getter: _Getter | None, doc: Any, where: str) -> str:
    assert getter is not None
    value = getter(doc)
    if isinstance(value, bool) or not isinstance(value, str | int) or str(value).strip() == "":
        raise getter.problem(where, value, "an id (a string or a number)")
    return str(value).strip()


def _need_str(getter: _Getter | None, doc: Any, where: str) -> str:
    assert getter is not None
    value = getter(doc)
    if not isinstance(value, str) or not value.strip():
        raise getter.problem(where, value, "a non-empty string")
    return value.strip()


def _opt_str(getter: _Getter | None, doc: Any, where: str) -> str | None:
    if getter is None:
        return None
    value = getter(doc)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise getter.problem(where, value, "a string")
    return str(value).strip() or None


def _count_value(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, float) and value.is_integer() and value >= 0:
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def _need_count(getter: _Getter | None, doc: Any, where: str) -> int:
    assert getter is not None
    value = getter(doc)
    count = _count_value(value)
    if count is None:
        raise getter.problem(where, value, "a non-negative whole number")
    return count


def _opt_count(getter: _Getter | None, doc: Any, where: str) -> int | None:
    if getter is None:
        return None
    value = getter(doc)
    if value is None or value == "":
        return None
    count = _count_value(value)
    if count is None:
        raise getter.problem(where, value, "a non-negative whole number")
    return count


def _bool(getter: _Getter | None, doc: Any, where: str) -> bool:
    assert getter is not None
    value = getter(doc)
    if isinstance(value, bool):
        return value
    if value is None:
        return False
    if isinstance(value, int | str) and str(value).strip().lower() in TRUE + FALSE:
        return str(value).strip().lower() in TRUE
    raise getter.problem(where, value, "true or false")


def _kind(getter: _Getter | None, doc: Any, where: str) -> ContestKind:
    if getter is None:
        return ContestKind.CANDIDATE
    value = getter(doc)
    try:
        return ContestKind(str(value).strip().lower())
    except ValueError:
        raise getter.problem(where, value, "candidate, party or measure") from None


def _status(
    getter: _Getter | None, doc: Any, where: str, values: Mapping[str, str]
) -> ResultsStatus:
    if getter is None:
        return ResultsStatus.PARTIAL
    value = getter(doc)
    text = str(value).strip() if value is not None else ""
    mapped = values.get(text, text.lower())
    status = STATUSES.get(mapped)
    if status is None:
        known = ", ".join([*values, *STATUSES]) or ", ".join(STATUSES)
        raise getter.problem(where, value, f"one of {known} (see status_values)")
    return status


def parse_mapped_json(body: bytes, *, default_tz: tzinfo, mapping: JsonMapping) -> Snapshot:
    return _JsonReader(mapping).read(load_json(body), default_tz)


# -- CSV -------------------------------------------------------------------------------------


def parse_mapped_csv(body: bytes, *, default_tz: tzinfo, mapping: CsvMapping) -> Snapshot:
    text = decode_text(body)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=mapping.delimiter)
    try:
        header = [h.strip() for h in next(reader)]
    except (StopIteration, csv.Error) as exc:
        raise FeedError(f"line 1: cannot read the header row ({exc})") from None
    cols = {k: v for k, v in mapping.columns.model_dump().items() if v is not None}
    index: dict[str, int] = {}
    for field, column in cols.items():
        if column not in header:
            raise FeedError(
                f"line 1: mapping columns.{field} = {column!r}: no such column "
                f"(the header has {', '.join(repr(h) for h in header[:12])})"
            )
        index[field] = header.index(column)

    def cell(row: list[str], field: str) -> str | None:
        i = index.get(field)
        return row[i].strip() if i is not None else None

    def count(row: list[str], field: str, line: int, required: bool = False) -> int | None:
        value = cell(row, field)
        if value is None or (value == "" and not required):
            return None
        if not value.isdigit():
            raise FeedError(
                f"line {line}, column {cols[field]!r} (columns.{field}): expected a "
                f"non-negative whole number, got {describe(value)}"
            )
        return int(value)

    contests: dict[str, dict[str, Any]] = {}
    parties: dict[str, Party] = {}
    coalitions: dict[str, Coalition] = {}
    first: dict[str, str | None] = {}
    try:
        for row in reader:
            line = reader.line_num
            if not any(c.strip() for c in row):
                continue
            if len(row) != len(header):
                raise FeedError(f"line {line}: expected {len(header)} fields, found {len(row)}")
            for field in ("generated_at", "status", "is_test"):
                if field in index and field not in first:
                    first[field] = cell(row, field)
            cid = cell(row, "contest_id")
            if not cid:
                raise FeedError(f"line {line}, column {cols['contest_id']!r}: empty contest id")
            entry = contests.setdefault(
                cid,
                {
                    "line": line,
                    "name": cell(row, "contest_name") or cid,
                    "kind": cell(row, "contest_kind") or "candidate",
                    "seats": count(row, "seats", line),
                    "reported": count(row, "reported", line),
                    "total": count(row, "total_units", line),
                    "electorate": count(row, "electorate", line),
                    "ballots": count(row, "ballots_cast", line),
                    "status": cell(row, "contest_status") or "",
                    "selections": [],
                    "ids": set(),
                },
            )
            name = cell(row, "selection_name")
            if not name:
                raise FeedError(f"line {line}, column {cols['selection_name']!r}: empty name")
            sid = cell(row, "selection_id") or name
            if sid in entry["ids"]:
                raise FeedError(f"line {line}: duplicate selection {sid!r} in contest {cid!r}")
            entry["ids"].add(sid)
            party = cell(row, "party") or None
            if party is not None:
                parties.setdefault(party, Party(party, party))
            winner = (cell(row, "winner") or "").lower() in mapping.winner_values
            coalition = cell(row, "coalition")
            if coalition:
                coalitions.setdefault(coalition, Coalition(coalition, coalition))
            entry["selections"].append(
                Selection(
                    id=sid,
                    name=name,
                    votes=count(row, "votes", line, required=True) or 0,
                    party_id=party,
                    winner=winner,
                    seats=count(row, "seats_won", line),
                    coalition_id=coalition,
                )
            )
    except csv.Error as exc:
        raise FeedError(f"line {reader.line_num}: malformed CSV ({exc})") from None
    if not contests:
        raise FeedError("no data rows after the header")
    out = []
    for cid, entry in contests.items():
        try:
            kind = ContestKind(entry["kind"].lower())
        except ValueError:
            raise FeedError(
                f"line {entry['line']}, column {cols['contest_kind']!r}: expected candidate, "
                f"party or measure, got {describe(entry['kind'])}"
            ) from None
        seats = entry["seats"]
        if seats is None and kind is ContestKind.CANDIDATE:
            seats = 1
        word = mapping.contest_status_values.get(entry["status"], entry["status"])
        stage, state = contest_status(
            word, f"line {entry['line']}, column {cols.get('contest_status')!r}"
        )
        out.append(
            Contest(
                id=cid,
                name=entry["name"],
                kind=kind,
                selections=tuple(entry["selections"]),
                progress=Progress(entry["reported"], entry["total"]),
                seats=seats,
                electorate=entry["electorate"],
                ballots_cast=entry["ballots"],
                stage=stage,
                state=state,
            )
        )
    generated = first.get("generated_at")
    if "generated_at" in index:
        where = f"column {cols['generated_at']!r}"
        generated_at = parse_time(generated, where, default_tz)
    else:
        generated_at = datetime.now(UTC)
    status_text = first.get("status") or ""
    status = ResultsStatus.PARTIAL
    if "status" in index:
        mapped = mapping.status_values.get(status_text, status_text.lower())
        if mapped not in STATUSES:
            raise FeedError(
                f"column {cols['status']!r}: expected one of "
                f"{', '.join([*mapping.status_values, *STATUSES])}, got {describe(status_text)}"
            )
        status = STATUSES[mapped]
    is_test = mapping.is_test or (first.get("is_test") or "").lower() in TRUE
    return Snapshot(
        election=mapping.election_name or "Election",
        status=status,
        generated_at=generated_at,
        contests=tuple(out),
        is_test=is_test,
        parties=parties,
        coalitions=coalitions,
    )


def parse_mapped(
    body: bytes, *, default_tz: tzinfo, mapping: FeedMapping | None = None
) -> Snapshot:
    """Parse a snapshot through its mapping; FeedError names the expression or column."""
    if mapping is None:
        raise FeedError('format "mapped" needs a mapping file ([feed] mapping)')
    if isinstance(mapping, JsonMapping):
        return parse_mapped_json(body, default_tz=default_tz, mapping=mapping)
    return parse_mapped_csv(body, default_tz=default_tz, mapping=mapping)
