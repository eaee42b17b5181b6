"""Any JSON or CSV feed, read through a mapping file that says where each thing lives.

An election body whose IT team already publishes results can point broadcaster at that feed
unchanged: the mapping (TOML, see docs/feed-format.md) gives, for JSON, a JMESPath expression
per field (`contests.each` finds the list of contests, the other contest fields are read inside
each one, `selections.each` inside a contest); for CSV, the column holding each field, one row
per selection. A mapping is checked when it is loaded (every expression compiled, every field
known); a snapshot that does not fit it is rejected with the expression or column, where, and
what was found there. broadcaster's own simple CSV format is such a mapping, bundled in
mappings/simple-csv.toml (`parse_simple_csv`).
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import io
import tomllib
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any, Literal

import jmespath
import jmespath.exceptions
import jmespath.visitor
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from broadcaster.domain.model import (
    Coalition,
    Contest,
    ContestKind,
    ContestState,
    Party,
    Progress,
    ResultsStatus,
    Selection,
    Snapshot,
    Stage,
)
from broadcaster.ingest.parsers.base import (
    CONTEST_STATUS_WORDS,
    FeedError,
    contest_status,
    decode_text,
    describe,
    is_digits,
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
    election: str | None = None  # the election's name (wins over `election_name`)
    issuer: str | None = None
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
    party_name: str | None = None
    # The coalition it stood for in this contest ("" for none here); a party's own coalition
    # is the first one given for it.
    coalition: str | None = None
    coalition_name: str | None = None
    winner: str | None = None
    seats_won: str | None = None
    contest_status: str | None = None  # a stage (official...) or a state (postponed...)
    generated_at: str | None = None
    status: str | None = None
    is_test: str | None = None


# Read once per snapshot (the first row's value; with rows_agree, the first one given).
ELECTION_COLUMNS = ("election", "status", "generated_at", "is_test", "issuer")
# Read once per contest (its first row; with rows_agree, every row must say the same).
CONTEST_COLUMNS = (
    "contest_name",
    "contest_kind",
    "seats",
    "reported",
    "total_units",
    "electorate",
    "ballots_cast",
    "contest_status",
)
ALWAYS_REQUIRED = ("contest_id", "selection_name", "votes")


class CsvMapping(_Strict):
    type: Literal["csv"]
    delimiter: str = Field(default=",", min_length=1, max_length=1)
    election_name: str | None = None
    is_test: bool = False
    columns: CsvColumns
    # "strict": the header holds only the mapping's columns (any order, any case, each once),
    # and a column whose field is not required may be left out (read as empty).
    header: Literal["open", "strict"] = "open"
    # Election columns repeated on later rows, and contest columns on each row of a contest,
    # must agree with what was given first (a snapshot is one election, a contest one contest).
    rows_agree: bool = False
    # Fields that may not be empty (beside contest_id, selection_name and votes, which never
    # may): an election field on the first data row, any other field on every row.
    required: list[str] = Field(default_factory=list)
    winner_values: list[str] = Field(default_factory=lambda: list(TRUE))
    # When given, a winner value in neither list is an error rather than "not elected".
    not_winner_values: list[str] | None = None
    status_values: dict[str, ReportStatus] = Field(default_factory=dict)
    contest_status_values: dict[str, ContestStatusWord] = Field(default_factory=dict)
    # Errors name the mapping key beside the column ("column 'UNDI' (columns.votes)"); a
    # bundled format's users never see its mapping, so its errors name the column alone.
    _name_keys: bool = PrivateAttr(default=True)

    @field_validator("winner_values", "not_winner_values")
    @classmethod
    def _lower(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else [v.strip().lower() for v in value]

    @model_validator(mode="after")
    def _required_are_mapped(self) -> CsvMapping:
        for name in self.required:
            if getattr(self.columns, name, None) is None:
                raise ValueError(f"required: {name!r} is not a field given in [columns]")
        return self


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
        where = "".join(f"{p}: " for p in [".".join(str(p) for p in first["loc"])] if p)
        raise MappingError(f"{path}: {where}{first['msg']}") from None
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
    if isinstance(value, str) and is_digits(value.strip()):
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


def _header_index(header: list[str], cols: dict[str, str], mapping: CsvMapping) -> dict[str, int]:
    """Field -> position in the header; FeedError (line 1) when the header does not fit."""
    index: dict[str, int] = {}
    if mapping.header == "open":
        for field, column in cols.items():
            if column not in header:
                raise FeedError(
                    f"line 1: mapping columns.{field} = {column!r}: no such column "
                    f"(the header has {', '.join(repr(h) for h in header[:12])})"
                )
            index[field] = header.index(column)
        return index
    names = [h.lower() for h in header]
    known = {column.lower() for column in cols.values()}
    unknown = [n for n in names if n and n not in known]
    if unknown:
        raise FeedError(
            f"line 1: unknown column {unknown[0]!r}; expected columns among: "
            f"{', '.join(cols.values())}"
        )
    for field in cols:  # the mapping's order: the first missing column is named
        required = field in ALWAYS_REQUIRED or field in mapping.required
        if required and field not in ELECTION_COLUMNS and cols[field].lower() not in names:
            raise FeedError(f"line 1: missing required column {cols[field]!r}")
    for n, name in enumerate(names):
        if name in names[:n]:
            raise FeedError(f"line 1: column {name!r} appears twice")
    return {f: names.index(c.lower()) for f, c in cols.items() if c.lower() in names}


@dataclasses.dataclass
class _ContestRows:
    id: str
    line: int  # its first row
    given: dict[str, str]  # its contest columns as that row gives them
    name: str
    kind: str
    seats: int | None
    progress: Progress
    electorate: int | None
    ballots_cast: int | None
    stage: Stage | None
    state: ContestState
    selections: list[Selection] = dataclasses.field(default_factory=list)
    ids: set[str] = dataclasses.field(default_factory=set)


class _CsvReader:
    """The rows of one CSV snapshot, read through a mapping, into a Snapshot."""

    def __init__(self, mapping: CsvMapping, header: list[str]) -> None:
        self.mapping = mapping
        self.cols = {k: v for k, v in mapping.columns.model_dump().items() if v is not None}
        self.index = _header_index(header, self.cols, mapping)
        self.required = {*ALWAYS_REQUIRED, *mapping.required}
        self.first: dict[str, str] = {}  # the election columns
        self.contests: dict[str, _ContestRows] = {}
        self.parties: dict[str, Party] = {}
        self.coalitions: dict[str, str] = {}  # id -> name, in the order first given

    def where(self, field: str) -> str:
        key = f" (columns.{field})" if self.mapping._name_keys else ""
        return f"column {self.cols[field]!r}{key}"

    def cell(self, row: list[str], field: str) -> str | None:
        i = self.index.get(field)
        return row[i].strip() if i is not None else None

    def need(self, row: list[str], field: str, line: int) -> str:
        value = self.cell(row, field)
        if not value:
            raise FeedError(f"line {line}, {self.where(field)}: required, but empty")
        return value

    def text(self, row: list[str], field: str, line: int) -> str | None:
        return self.need(row, field, line) if field in self.required else self.cell(row, field)

    def count(self, row: list[str], field: str, line: int) -> int | None:
        value = self.text(row, field, line)
        if not value:
            return None
        if not is_digits(value):
            raise FeedError(
                f"line {line}, {self.where(field)}: expected a non-negative integer, "
                f"got {describe(value)}"
            )
        return int(value)

    def add(self, row: list[str], line: int) -> None:
        """One data row: the election's columns, its contest's, and one selection."""
        self._election(row, line)
        contest = self._contest(row, line)
        has_id = "selection_id" in self.required or self.cell(row, "selection_id")
        id_field = "selection_id" if has_id else "selection_name"  # the name, by default
        sid = self.need(row, id_field, line)
        if sid in contest.ids:
            raise FeedError(
                f"line {line}, {self.where(id_field)}: duplicate {sid!r} in contest {contest.id!r}"
            )
        contest.ids.add(sid)
        name = self.need(row, "selection_name", line)
        contest.selections.append(
            Selection(
                id=sid,
                name=name,
                votes=self.count(row, "votes", line) or 0,
                party_id=self._party(row, line),
                winner=self._winner(row, line),
                seats=self.count(row, "seats_won", line),
                coalition_id=self._coalition(row),
            )
        )

    def _election(self, row: list[str], line: int) -> None:
        for field in ELECTION_COLUMNS:
            value = self.cell(row, field)
            if value is None:
                continue
            if field not in self.first:
                if value or not self.mapping.rows_agree:
                    self.first[field] = value
            elif self.mapping.rows_agree and value and value != self.first[field]:
                raise FeedError(
                    f"line {line}, {self.where(field)}: {describe(value)} differs from "
                    f"{describe(self.first[field])} given earlier (one snapshot is one election)"
                )

    def _contest(self, row: list[str], line: int) -> _ContestRows:
        cid = self.need(row, "contest_id", line)
        given = {f: self.cell(row, f) or "" for f in CONTEST_COLUMNS if f in self.index}
        contest = self.contests.get(cid)
        if contest is None:
            stage, state = self._contest_status(row, line)
            contest = self.contests[cid] = _ContestRows(
                id=cid,
                line=line,
                given=given,
                name=self.text(row, "contest_name", line) or cid,
                kind=self.cell(row, "contest_kind") or "candidate",
                seats=self.count(row, "seats", line),
                progress=Progress(
                    self.count(row, "reported", line), self.count(row, "total_units", line)
                ),
                electorate=self.count(row, "electorate", line),
                ballots_cast=self.count(row, "ballots_cast", line),
                stage=stage,
                state=state,
            )
        elif self.mapping.rows_agree:
            for f, value in given.items():
                if value != contest.given[f]:
                    raise FeedError(
                        f"line {line}, {self.where(f)}: {describe(value)} differs from "
                        f"{describe(contest.given[f])} on line {contest.line} for contest {cid!r}"
                    )
        return contest

    def _contest_status(self, row: list[str], line: int) -> tuple[Stage | None, ContestState]:
        text = self.text(row, "contest_status", line) or ""
        values = self.mapping.contest_status_values
        try:
            return contest_status(values.get(text, text), "")
        except FeedError:
            known = ", ".join([*values, *CONTEST_STATUS_WORDS])
            raise FeedError(
                f"line {line}, {self.where('contest_status')}: expected one of {known}, "
                f"got {describe(text)}"
            ) from None

    def _coalition(self, row: list[str]) -> str | None:
        """The coalition this selection stood for in its contest: an id, "" for none here,
        None when the feed has no coalition column (then its party's coalition counts)."""
        coalition = self.cell(row, "coalition")
        if coalition:
            self.coalitions.setdefault(coalition, self.cell(row, "coalition_name") or coalition)
        return coalition

    def _party(self, row: list[str], line: int) -> str | None:
        party = self.cell(row, "party") or None
        if party is None:
            return None
        name = self.cell(row, "party_name") or party
        known = self.parties.get(party)
        if known is not None and known.name != name:
            raise FeedError(
                f"line {line}, {self.where('party_name')}: party {party!r} was given as "
                f"{known.name!r} earlier"
            )
        # A party may stand under a coalition's logo in one contest and under its own in
        # another: each row says which (Selection.coalition_id); the party's own coalition,
        # for feeds and templates that ask for one, is the first one given for it.
        own = (known.coalition_id if known else None) or self.cell(row, "coalition") or None
        self.parties[party] = Party(party, name, None, own)
        return party

    def _winner(self, row: list[str], line: int) -> bool:
        value = self.cell(row, "winner")
        text = (value or "").lower()
        elected, not_elected = self.mapping.winner_values, self.mapping.not_winner_values
        if text in elected:
            return True
        if not_elected is None or text in not_elected:
            return False
        raise FeedError(
            f"line {line}, {self.where('winner')}: expected "
            f"{', '.join(v or 'empty' for v in elected)} (elected) or "
            f"{', '.join(v or 'empty' for v in not_elected)} (not elected), got {describe(value)}"
        )

    def snapshot(self, default_tz: tzinfo) -> Snapshot:
        if not self.contests:
            raise FeedError("no data rows after the header")
        for field in ELECTION_COLUMNS:
            if field in self.required and not self.first.get(field):
                raise FeedError(f"{self.where(field)}: required on the first data row, but empty")
        contests = tuple(self._finish(rows) for rows in self.contests.values())
        if "generated_at" in self.index:
            where = self.where("generated_at")
            generated_at = parse_time(self.first.get("generated_at"), where, default_tz)
        else:
            generated_at = datetime.now(UTC)
        return Snapshot(
            election=self.first.get("election") or self.mapping.election_name or "Election",
            status=self._status(),
            generated_at=generated_at,
            contests=contests,
            is_test=self.mapping.is_test or self._is_test(),
            issuer=self.first.get("issuer") or None,
            parties=self.parties,
            coalitions=self._coalitions(contests),
        )

    def _coalitions(self, contests: tuple[Contest, ...]) -> dict[str, Coalition]:
        """Each coalition with the parties that stood for it somewhere, in the order seen."""
        members: dict[str, dict[str, None]] = {cid: {} for cid in self.coalitions}
        for contest in contests:
            for s in contest.selections:
                if s.coalition_id and s.party_id:
                    members[s.coalition_id][s.party_id] = None
        return {
            cid: Coalition(cid, name, None, tuple(members[cid]))
            for cid, name in self.coalitions.items()
        }

    def _finish(self, rows: _ContestRows) -> Contest:
        try:
            kind = ContestKind(rows.kind.lower())
        except ValueError:
            raise FeedError(
                f"line {rows.line}, {self.where('contest_kind')}: expected candidate, "
                f"party or measure, got {describe(rows.kind)}"
            ) from None
        selections = rows.selections
        if kind is ContestKind.PARTY:  # a list without seats given has none (yet)
            selections = [
                s if s.seats is not None else dataclasses.replace(s, seats=0) for s in selections
            ]
        return Contest(
            id=rows.id,
            name=rows.name,
            kind=kind,
            selections=tuple(selections),
            progress=rows.progress,
            seats=1 if rows.seats is None and kind is ContestKind.CANDIDATE else rows.seats,
            electorate=rows.electorate,
            ballots_cast=rows.ballots_cast,
            stage=rows.stage,
            state=rows.state,
        )

    def _status(self) -> ResultsStatus:
        if "status" not in self.index:
            return ResultsStatus.PARTIAL
        text = self.first.get("status") or ""
        mapped = self.mapping.status_values.get(text, text.lower())
        if mapped not in STATUSES:
            known = ", ".join([*self.mapping.status_values, *STATUSES])
            raise FeedError(
                f"{self.where('status')}: expected one of {known}, got {describe(text)}"
            )
        return STATUSES[mapped]

    def _is_test(self) -> bool:
        """A test flag that says neither true nor false is refused: never read as live data."""
        value = self.first.get("is_test") or ""
        if value.lower() not in TRUE + FALSE:
            raise FeedError(
                f"{self.where('is_test')}: expected true or false, got {describe(value)}"
            )
        return value.lower() in TRUE


def parse_mapped_csv(body: bytes, *, default_tz: tzinfo, mapping: CsvMapping) -> Snapshot:
    text = decode_text(body)
    rows = csv.reader(io.StringIO(text, newline=""), delimiter=mapping.delimiter)
    try:
        header = [h.strip() for h in next(rows)]
    except (StopIteration, csv.Error) as exc:
        raise FeedError(f"line 1: cannot read the header row ({exc})") from None
    reader = _CsvReader(mapping, header)
    try:
        for row in rows:
            line = rows.line_num
            if not any(c.strip() for c in row):
                continue
            if len(row) != len(header):
                raise FeedError(f"line {line}: expected {len(header)} fields, found {len(row)}")
            reader.add(row, line)
    except csv.Error as exc:
        raise FeedError(f"line {rows.line_num}: malformed CSV ({exc})") from None
    return reader.snapshot(default_tz)


SIMPLE_CSV = Path(__file__).with_name("mappings") / "simple-csv.toml"


@functools.cache
def simple_csv_mapping() -> CsvMapping:
    """broadcaster's simple CSV format (docs/feed-format.md), as the mapping bundled beside."""
    mapping = load_mapping(SIMPLE_CSV)
    assert isinstance(mapping, CsvMapping)
    mapping._name_keys = False
    return mapping


def parse_simple_csv(body: bytes, *, default_tz: tzinfo) -> Snapshot:
    """The simple CSV format: one row per selection, read through its bundled mapping."""
    return parse_mapped_csv(body, default_tz=default_tz, mapping=simple_csv_mapping())


def parse_mapped(
    body: bytes, *, default_tz: tzinfo, mapping: FeedMapping | None = None
) -> Snapshot:
    """Parse a snapshot through its mapping; FeedError names the expression or column."""
    if mapping is None:
        raise FeedError('format "mapped" needs a mapping file ([feed] mapping)')
    if isinstance(mapping, JsonMapping):
        return parse_mapped_json(body, default_tz=default_tz, mapping=mapping)
    return parse_mapped_csv(body, default_tz=default_tz, mapping=mapping)
