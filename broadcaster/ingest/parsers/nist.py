"""NIST SP 1500-100 v2 election results reports (JSON) to a Snapshot.

Counts may be given for the contest's district, per precinct, or both. The district's own count
wins when present; otherwise the counts of the smallest reported units are summed, so a unit and
the precincts composing it are never both counted.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, tzinfo
from typing import Any

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
from broadcaster.domain.status import declare_from_final_counts
from broadcaster.ingest.parsers.base import (
    FeedError,
    contest_status,
    decode_text,
    describe,
    is_digits,
    load_json_text,
    need_count,
    need_list,
    need_obj,
    need_str,
    opt_count,
    parse_bool,
    parse_time,
)
from broadcaster.ingest.parsers.jsonwalk import WINDOW, Unsure, Walker, located
from broadcaster.ingest.payload import Payload, whole

_STATUS = {
    "pre-election": ResultsStatus.PARTIAL,
    "unofficial-partial": ResultsStatus.PARTIAL,
    "unofficial-complete": ResultsStatus.COMPLETE,
    "certified": ResultsStatus.CERTIFIED,
    "correction": ResultsStatus.CORRECTION,
    "recount": ResultsStatus.RECOUNT,
}

# Where a contest says how final its figures are, or why it does not report as usual: an
# ExternalIdentifier with this OtherType (the standard has no per-contest status beyond
# CountStatus). Values: a Stage or a ContestState.
CONTEST_STATUS_ID = "contest-status"

_CONTEST_KINDS = {
    "ElectionResults.CandidateContest": ContestKind.CANDIDATE,
    "ElectionResults.PartyContest": ContestKind.PARTY,
    "ElectionResults.BallotMeasureContest": ContestKind.MEASURE,
    "ElectionResults.RetentionContest": ContestKind.MEASURE,
}

# Where a PartyContest says how many seats it fills (the standard has no NumberElected there).
NUMBER_ELECTED_ID = "number-elected"


@dataclass(slots=True)
class _Unit:
    name: str | None
    composing: tuple[str, ...]
    registered: int | None
    participated: int | None
    reported: int | None
    total: int | None


@dataclass(slots=True)
class _Candidate:
    name: str
    party_id: str | None
    winner: bool


def looks_like_nist(doc: Any) -> bool:
    return isinstance(doc, dict) and doc.get("@type") == "ElectionResults.ElectionReport"


def text_of(value: Any, path: str) -> str:
    """An InternationalizedText (first language given) or a plain string."""
    if type(value) is dict:  # the common, well-formed case, without building error paths
        texts = value.get("Text")
        if type(texts) is list and texts and type(texts[0]) is dict:
            content = texts[0].get("Content")
            if type(content) is str and content.strip():
                return content.strip()
    if isinstance(value, str):
        return need_str(value, path)
    obj = need_obj(value, path)
    texts = need_list(obj.get("Text"), f"{path}.Text")
    if not texts:
        raise FeedError(f"{path}.Text: expected at least one language string, got []")
    first = need_obj(texts[0], f"{path}.Text[0]")
    return need_str(first.get("Content"), f"{path}.Text[0].Content").strip()


def _opt_text(value: Any, path: str) -> str | None:
    return None if value is None else text_of(value, path)


def parse_nist(body: Payload, *, default_tz: tzinfo) -> Snapshot:
    """Parse one NIST 1500-100 v2 JSON ElectionReport; FeedError names the first bad field."""
    try:
        return read_streamed(body, default_tz=default_tz)
    except (Unsure, FeedError, ValueError, TypeError, LookupError, ArithmeticError, RecursionError):
        # Read again as one tree: that reading's answer, or its error message, is the one
        # that counts. Only a broken or unusually shaped report pays for the second reading.
        pass
    return read_tree(decode_text(whole(body)), default_tz=default_tz)


def read_tree(text: str, *, default_tz: tzinfo) -> Snapshot:
    """The report read from its whole tree: the reference reading, and the one whose errors
    are reported."""
    doc = need_obj(load_json_text(text), "$")
    if not looks_like_nist(doc):
        raise FeedError(
            f'@type: expected "ElectionResults.ElectionReport", got {describe(doc.get("@type"))}'
        )
    return _Report(default_tz).snapshot(doc)


def read_streamed(body: Payload, *, default_tz: tzinfo, window: int = WINDOW) -> Snapshot:
    """The report read contest by contest, its bytes decoded `window` at a time; Unsure (or
    an error) where that reading cannot promise `read_tree`'s answer."""
    return _Report(default_tz).streamed(body, window)


_FINAL = (ResultsStatus.COMPLETE, ResultsStatus.CERTIFIED)
_LATER = ("Candidate", "BallotCounts")  # what an election's contests are read with


class _Report:
    def __init__(self, default_tz: tzinfo) -> None:
        self.default_tz = default_tz
        self.units: dict[str, _Unit] = {}
        self.parties: dict[str, Party] = {}
        self.coalitions: dict[str, Coalition] = {}
        self._leaves: dict[str, frozenset[str]] = {}
        self._below: dict[str, frozenset[str]] = {}
        self._districts: dict[str, str | None] = {}  # contest id -> its district's name
        self._ranked: set[str] = set()  # contests decided by ranked choice, not plurality
        # A contest's progress were the report final, where it differs: for contests read
        # before the report's Status (which comes after them in alphabetical key order).
        self._when_final: dict[str, Progress] = {}
        self._contests: list[Contest] = []
        self._seen: set[str] = set()

    def snapshot(self, doc: dict[str, Any]) -> Snapshot:
        """The report read from its whole tree."""
        status = _status(doc.get("Status"))
        generated = parse_time(doc.get("GeneratedDate"), "GeneratedDate", self.default_tz)
        is_test = parse_bool(doc.get("IsTest", False), "IsTest")
        self._read_units(need_list(doc.get("GpUnit", []), "GpUnit"))
        self._read_parties(need_list(doc.get("Party", []), "Party"))

        elections = need_list(doc.get("Election"), "Election")
        if not elections:
            raise FeedError("Election: expected at least one election, got []")
        name = ""
        final = status in _FINAL
        for ei, election in enumerate(elections):
            epath = f"Election[{ei}]"
            election = need_obj(election, epath)
            if ei == 0:
                name = text_of(election.get("Name"), f"{epath}.Name")
            candidates = self._read_candidates(election, epath)
            self._read_contests(election, epath, candidates, final)
        return self._assemble(name, status, generated, is_test, _issuer(doc))

    def streamed(self, body: Payload, window: int = WINDOW) -> Snapshot:
        """The report read member by member, each contest converted as it is decoded, so the
        whole tree never exists at once. Unsure (or any error) where the reading might differ
        from `snapshot`'s: the caller then reads the whole tree."""
        # The contests need the report's units and parties, which may follow them (in
        # alphabetical key order they do): each is found by its name and read first, and the
        # walk below checks that what was found is the report's own member.
        refs = located(body, ("GpUnit", "Party"), window)
        units, parties = refs["GpUnit"], refs["Party"]
        self._read_units(need_list(units[0] if units else [], "GpUnit"))
        self._read_parties(need_list(parties[0] if parties else [], "Party"))
        walk = Walker(body, window)
        top: dict[str, Any] = {}
        passed: set[str] = set()
        name: str | None = None
        final: bool | None = None  # unknown until Status is read
        read_with: bool | None = None
        for key in walk.members():
            if key in refs:
                ref = refs[key]
                if ref is None:
                    raise Unsure  # a member `located` did not see (its name written with escapes)
                walk.skip_to(ref[1], ref[2])
                passed.add(key)
            elif key == "Election":
                read_with = final
                name = self._stream_elections(walk, final)
            else:
                top[key] = walk.value()
                if key == "Status":
                    final = _status(top[key]) in _FINAL
        walk.end()
        if name is None or any(refs[key] and key not in passed for key in refs):
            raise Unsure
        if not looks_like_nist(top):
            raise Unsure
        status = _status(top.get("Status"))
        generated = parse_time(top.get("GeneratedDate"), "GeneratedDate", self.default_tz)
        is_test = parse_bool(top.get("IsTest", False), "IsTest")
        if read_with is None and status in _FINAL:
            self._contests = [
                replace(c, progress=self._when_final[c.id]) if c.id in self._when_final else c
                for c in self._contests
            ]
        return self._assemble(name, status, generated, is_test, _issuer(top))

    def _stream_elections(self, walk: Walker, final: bool | None) -> str:
        """Read the Election list at `walk`; the first election's name."""
        if not walk.at("["):
            raise Unsure
        name: str | None = None
        for ei in walk.elements():
            election = self._stream_election(walk, f"Election[{ei}]", final)
            if ei == 0:
                name = text_of(election.get("Name"), f"Election[{ei}].Name")
        if name is None:
            raise Unsure  # no election: the tree's reading says so
        return name

    def _stream_election(self, walk: Walker, epath: str, final: bool | None) -> dict[str, Any]:
        """Read one election at `walk`, its candidates and contests one by one; its other
        members."""
        if not walk.at("{"):
            raise Unsure
        election: dict[str, Any] = {}
        candidates: dict[str, _Candidate] | None = None  # once read
        read = False  # the contests, one by one
        for key in walk.members():
            if read and key in _LATER:
                raise Unsure  # the contests were read without it
            if key == "Candidate" and walk.at("["):
                candidates = {}
                for i in walk.elements():
                    self._add_candidate(walk.value(), i, epath, candidates)
            elif key == "Contest" and candidates is not None and walk.at("["):
                ballots = self._read_ballot_counts(election, epath)
                for ci in walk.elements():
                    raw = walk.value()
                    self._add_contest(raw, f"{epath}.Contest[{ci}]", candidates, ballots, final)
                read = True
            else:
                # Contests before their candidates are kept whole and read once the election
                # is: what their candidates are is not known before.
                election[key] = walk.value()
        if not read:
            if candidates is None:
                candidates = self._read_candidates(election, epath)
            self._read_contests(election, epath, candidates, final)
        return election

    def _read_contests(
        self,
        election: dict[str, Any],
        epath: str,
        candidates: dict[str, _Candidate],
        final: bool | None,
    ) -> None:
        """An election's contests from its decoded tree, with its ballot counts."""
        ballots = self._read_ballot_counts(election, epath)
        for ci, raw in enumerate(need_list(election.get("Contest", []), f"{epath}.Contest")):
            self._add_contest(raw, f"{epath}.Contest[{ci}]", candidates, ballots, final)

    def _add_contest(
        self,
        raw: Any,
        cpath: str,
        candidates: dict[str, _Candidate],
        ballots: dict[str, int],
        final: bool | None,
    ) -> None:
        contest = self._contest(need_obj(raw, cpath), cpath, candidates, ballots, final)
        if contest.id in self._seen:
            raise FeedError(f"{cpath}.@id: duplicate contest id {contest.id!r}")
        self._seen.add(contest.id)
        self._contests.append(contest)

    def _assemble(
        self,
        name: str,
        status: ResultsStatus,
        generated: datetime,
        is_test: bool,
        issuer: str | None,
    ) -> Snapshot:
        snapshot = Snapshot(
            election=name,
            status=status,
            generated_at=generated,
            contests=tuple(self._distinct_names(self._contests)),
            is_test=is_test,
            issuer=issuer,
            parties=self.parties,
            coalitions=self.coalitions,
        )
        # A certified report may name no winner (Cambridge 2022): its counts decide, unless
        # the contest is not decided by plurality (ranked choice).
        return declare_from_final_counts(snapshot, exclude=self._ranked)

    def _distinct_names(self, contests: list[Contest]) -> list[Contest]:
        """Contests that share a name (an office elected in several districts: "REPRESENTATIVE
        IN CONGRESS" twice) are told apart by their district's name, which the report has."""
        seen: dict[str, int] = {}
        for c in contests:
            seen[c.name.casefold()] = seen.get(c.name.casefold(), 0) + 1
        out = []
        for c in contests:
            district = self._districts.get(c.id)
            if (
                seen[c.name.casefold()] > 1
                and district
                and district.casefold() not in (c.name.casefold())
            ):
                c = replace(c, name=f"{c.name}, {district}")
            out.append(c)
        return out

    # -- reference data --

    def _read_units(self, raw_units: list[Any]) -> None:
        for i, raw in enumerate(raw_units):
            path = f"GpUnit[{i}]"
            unit = need_obj(raw, path)
            uid = need_str(unit.get("@id"), f"{path}.@id")
            if uid in self.units:
                raise FeedError(f"{path}.@id: duplicate GpUnit id {uid!r}")
            composing = tuple(
                need_list(unit.get("ComposingGpUnitIds", []), f"{path}.ComposingGpUnitIds")
            )
            name = unit.get("Name")
            self.units[uid] = _Unit(
                name=_opt_text(name, f"{path}.Name") if name is not None else None,
                composing=composing,
                registered=opt_count(unit.get("VotersRegistered"), f"{path}.VotersRegistered"),
                participated=opt_count(
                    unit.get("VotersParticipated"), f"{path}.VotersParticipated"
                ),
                reported=opt_count(unit.get("SubUnitsReported"), f"{path}.SubUnitsReported"),
                total=opt_count(unit.get("TotalSubUnits"), f"{path}.TotalSubUnits"),
            )
        for i, raw in enumerate(raw_units):
            for j, child in enumerate(self.units[raw["@id"]].composing):
                if child not in self.units:
                    raise FeedError(
                        f"GpUnit[{i}].ComposingGpUnitIds[{j}]: unknown GpUnit {describe(child)}"
                    )

    def _read_parties(self, raw_parties: list[Any]) -> None:
        members: dict[str, str] = {}
        for i, raw in enumerate(raw_parties):
            path = f"Party[{i}]"
            obj = need_obj(raw, path)
            pid = need_str(obj.get("@id"), f"{path}.@id")
            if pid in self.parties or pid in self.coalitions:
                raise FeedError(f"{path}.@id: duplicate party id {pid!r}")
            name = text_of(obj.get("Name"), f"{path}.Name")
            abbr = _opt_text(obj.get("Abbreviation"), f"{path}.Abbreviation")
            color = obj.get("Color") if isinstance(obj.get("Color"), str) else None
            if obj.get("@type") == "ElectionResults.Coalition":
                ids = need_list(obj.get("PartyIds", []), f"{path}.PartyIds")
                for pj in ids:
                    members[need_str(pj, f"{path}.PartyIds")] = pid
                self.coalitions[pid] = Coalition(pid, name, abbr, tuple(ids), color)
            else:
                self.parties[pid] = Party(pid, name, abbr, None, color)
        for party_id, coalition_id in members.items():
            party = self.parties.get(party_id)
            if party is None:
                raise FeedError(
                    f"Party (coalition {coalition_id!r}).PartyIds: unknown party {party_id!r}"
                )
            self.parties[party_id] = Party(
                party.id, party.name, party.abbreviation, coalition_id, party.color
            )

    def _party_ref(self, value: Any, path: str) -> str:
        pid = need_str(value, path)
        if pid not in self.parties and pid not in self.coalitions:
            raise FeedError(f"{path}: unknown party {pid!r}")
        return pid

    def _read_candidates(self, election: dict[str, Any], epath: str) -> dict[str, _Candidate]:
        out: dict[str, _Candidate] = {}
        for i, raw in enumerate(need_list(election.get("Candidate", []), f"{epath}.Candidate")):
            self._add_candidate(raw, i, epath, out)
        return out

    def _add_candidate(self, raw: Any, i: int, epath: str, out: dict[str, _Candidate]) -> None:
        # Checked inline; the field path is only built for an error message.
        obj = raw if type(raw) is dict else need_obj(raw, f"{epath}.Candidate[{i}]")
        cid = obj.get("@id")
        if type(cid) is not str or not cid.strip():
            cid = need_str(cid, f"{epath}.Candidate[{i}].@id")
        if cid in out:
            raise FeedError(f"{epath}.Candidate[{i}].@id: duplicate candidate id {cid!r}")
        party = obj.get("PartyId")
        if party is not None and not (
            type(party) is str and (party in self.parties or party in self.coalitions)
        ):
            self._party_ref(party, f"{epath}.Candidate[{i}].PartyId")
        out[cid] = _Candidate(
            name=text_of(obj.get("BallotName"), f"{epath}.Candidate[{i}].BallotName"),
            party_id=party,
            winner=obj.get("PostElectionStatus") == "winner",
        )

    def _read_ballot_counts(self, election: dict[str, Any], epath: str) -> dict[str, int]:
        out: dict[str, int] = {}
        raw = need_list(election.get("BallotCounts", []), f"{epath}.BallotCounts")
        for i, item in enumerate(raw):
            path = f"{epath}.BallotCounts[{i}]"
            obj = need_obj(item, path)
            if obj.get("Type", "total") != "total" or obj.get("BallotsCast") is None:
                continue
            unit = self._unit_ref(obj.get("GpUnitId"), f"{path}.GpUnitId")
            out[unit] = out.get(unit, 0) + need_count(obj["BallotsCast"], f"{path}.BallotsCast")
        return out

    def _unit_ref(self, value: Any, path: str) -> str:
        uid = need_str(value, path)
        if uid not in self.units:
            raise FeedError(f"{path}: unknown GpUnit {uid!r}")
        return uid

    # -- geography --

    def below(self, uid: str) -> frozenset[str]:
        """All units composing `uid`, transitively (cycles are tolerated, not followed twice)."""
        cached = self._below.get(uid)
        if cached is not None:
            return cached
        seen: set[str] = set()
        stack = list(self.units[uid].composing)
        while stack:
            u = stack.pop()
            if u in seen or u == uid:
                continue
            seen.add(u)
            stack.extend(self.units[u].composing)
        result = frozenset(seen)
        self._below[uid] = result
        return result

    def leaves(self, uid: str) -> frozenset[str]:
        cached = self._leaves.get(uid)
        if cached is None:
            below = self.below(uid)
            cached = (
                frozenset(u for u in below if not self.units[u].composing) if below else frozenset()
            )
            self._leaves[uid] = cached
        return cached

    # -- contests --

    def _contest(
        self,
        obj: dict[str, Any],
        path: str,
        candidates: dict[str, _Candidate],
        ballots: dict[str, int],
        final: bool | None,
    ) -> Contest:
        """One contest; `final`: whether the report is final (None: not known yet)."""
        ctype = obj.get("@type")
        kind = _CONTEST_KINDS.get(ctype)  # type: ignore[arg-type]
        if kind is None:
            raise FeedError(
                f"{path}.@type: expected one of {', '.join(_CONTEST_KINDS)}, got {describe(ctype)}"
            )
        cid = need_str(obj.get("@id"), f"{path}.@id")
        name = text_of(obj.get("Name"), f"{path}.Name")
        district = self._unit_ref(obj.get("ElectionDistrictId"), f"{path}.ElectionDistrictId")

        # Per selection: {unit: (total-type sum or None, other-types sum)}, and seats per unit.
        raw_selections = need_list(obj.get("ContestSelection", []), f"{path}.ContestSelection")
        per_sel: list[_RawSelection] = []
        counted: set[str] = set()
        seen_sel: set[str] = set()
        for si, raw in enumerate(raw_selections):
            spath = f"{path}.ContestSelection[{si}]"
            read = self._selection(raw, spath, kind, candidates, counted)
            if read[0] in seen_sel:
                raise FeedError(f"{spath}.@id: duplicate selection id {read[0]!r}")
            seen_sel.add(read[0])
            per_sel.append(read)

        # Only units inside the district count: real exports (Cambridge 2022) list write-ins for
        # every precinct of the city under each district's contest.
        inside = self.below(district)
        if inside:
            counted &= inside | {district}
        # The smallest reported units: drop any counted unit that has counted units inside it.
        if district in counted:
            sum_units: frozenset[str] = frozenset((district,))
        else:
            sum_units = frozenset(u for u in counted if not (self.below(u) & counted))
        selections = [_summed(r, district, sum_units, kind) for r in per_sel]

        stage, state = self._contest_status(obj, path)
        if final is None:
            progress = self._contest_progress(obj, path, district, counted, False)
            when_final = self._contest_progress(obj, path, district, counted, True)
            if when_final != progress:
                self._when_final[cid] = when_final
        else:
            progress = self._contest_progress(obj, path, district, counted, final)
        seats_to_fill = self._seats(obj, path, kind, selections)
        if state is ContestState.NORMAL and _uncontested(kind, selections, seats_to_fill):
            state = ContestState.UNCONTESTED
        self._districts[cid] = self.units[district].name
        if obj.get("VoteVariation") not in (None, "plurality", "n-of-m", "approval"):
            self._ranked.add(cid)
        return Contest(
            id=cid,
            name=name,
            kind=kind,
            selections=tuple(selections),
            progress=progress,
            seats=seats_to_fill,
            electorate=self._electorate(district),
            ballots_cast=self._ballots(district, ballots),
            stage=stage,
            state=state,
        )

    def _selection(
        self,
        raw: Any,
        spath: str,
        kind: ContestKind,
        candidates: dict[str, _Candidate],
        counted: set[str],
    ) -> _RawSelection:
        """One ContestSelection's identity and its counts by unit; adds the units it counts in
        to `counted`."""
        sel = raw if type(raw) is dict else need_obj(raw, spath)
        sid = sel.get("@id")
        if type(sid) is not str or not sid.strip():
            sid = need_str(sid, f"{spath}.@id")
        ids = sel.get("CandidateIds")
        if (
            type(ids) is list
            and len(ids) == 1
            and type(ids[0]) is str
            and (cand := candidates.get(ids[0])) is not None
            and sel.get("@type") == "ElectionResults.CandidateSelection"
        ):
            sname, party_id, winner = cand.name, cand.party_id, cand.winner
        else:
            sname, party_id, winner = self._selection_identity(sel, spath, kind, candidates)
        coalition_id = self._endorsed_coalition(sel, spath)
        votes: dict[str, list[int]] = {}
        seats: dict[str, int] = {}
        units = self.units
        # The hottest loop of a large feed: check inline, build the field path only on error.
        for vi, vc in enumerate(need_list(sel.get("VoteCounts", []), f"{spath}.VoteCounts")):
            if type(vc) is not dict:
                need_obj(vc, f"{spath}.VoteCounts[{vi}]")
            unit = vc.get("GpUnitId")
            if type(unit) is not str or unit not in units:
                self._unit_ref(unit, f"{spath}.VoteCounts[{vi}].GpUnitId")
            count = vc.get("Count")
            if type(count) is not int or count < 0:
                count = need_count(count, f"{spath}.VoteCounts[{vi}].Count")
            vtype = vc.get("Type", "total")
            if vtype == "seats":
                seats[unit] = seats.get(unit, 0) + count
                continue
            slot = votes.setdefault(unit, [0, 0, 0])
            if vtype == "total":
                slot[0] += count
                slot[2] = 1
            else:
                slot[1] += count
            counted.add(unit)
        return (sid, sname, party_id, winner, votes, seats, coalition_id)

    def _contest_status(self, obj: dict[str, Any], path: str) -> tuple[Stage | None, ContestState]:
        stage: Stage | None = None
        state = ContestState.NORMAL
        for i, ext in enumerate(obj.get("ExternalIdentifier") or []):
            if not isinstance(ext, dict) or ext.get("OtherType") != CONTEST_STATUS_ID:
                continue
            where = f"{path}.ExternalIdentifier[{i}].Value"
            value = ext.get("Value")
            if not isinstance(value, str) or not value.strip():
                need_str(value, where)
            found_stage, found_state = contest_status(value, where)
            stage = found_stage or stage
            if found_state is not ContestState.NORMAL:
                state = found_state
        return stage, state

    def _endorsed_coalition(self, sel: dict[str, Any], spath: str) -> str | None:
        """The coalition a candidate stood for in this contest, when the selection names one
        among its EndorsementPartyIds (under the coalition's logo here)."""
        ids = sel.get("EndorsementPartyIds")
        if not ids:
            return None
        for k, ref in enumerate(need_list(ids, f"{spath}.EndorsementPartyIds")):
            pid = self._party_ref(ref, f"{spath}.EndorsementPartyIds[{k}]")
            if pid in self.coalitions:
                return pid
        return None

    def _selection_identity(
        self,
        sel: dict[str, Any],
        spath: str,
        kind: ContestKind,
        candidates: dict[str, _Candidate],
    ) -> tuple[str, str | None, bool]:
        stype = sel.get("@type")
        if stype == "ElectionResults.CandidateSelection":
            ids = need_list(sel.get("CandidateIds", []), f"{spath}.CandidateIds")
            if not ids:
                if sel.get("IsWriteIn"):
                    return "Write-in", None, False
                raise FeedError(f"{spath}.CandidateIds: expected at least one candidate id, got []")
            people: list[_Candidate] = []
            for k, ref in enumerate(ids):
                cand = candidates.get(need_str(ref, f"{spath}.CandidateIds[{k}]"))
                if cand is None:
                    raise FeedError(f"{spath}.CandidateIds[{k}]: unknown candidate {ref!r}")
                people.append(cand)
            return " / ".join(p.name for p in people), people[0].party_id, people[0].winner
        if stype == "ElectionResults.PartySelection":
            ids = need_list(sel.get("PartyIds"), f"{spath}.PartyIds")
            if not ids:
                raise FeedError(f"{spath}.PartyIds: expected at least one party id, got []")
            refs = [self._party_ref(p, f"{spath}.PartyIds[{k}]") for k, p in enumerate(ids)]
            names = [
                (self.parties[r].name if r in self.parties else self.coalitions[r].name)
                for r in refs
            ]
            return " / ".join(names), refs[0], False
        if stype == "ElectionResults.BallotMeasureSelection":
            return text_of(sel.get("Selection"), f"{spath}.Selection"), None, False
        raise FeedError(f"{spath}.@type: unsupported selection type {describe(stype)}")

    def _seats(
        self, obj: dict[str, Any], path: str, kind: ContestKind, selections: list[Selection]
    ) -> int | None:
        if kind is ContestKind.MEASURE:
            return None
        if kind is ContestKind.CANDIDATE:
            n = obj.get("NumberElected")
            return 1 if n is None else need_count(n, f"{path}.NumberElected")
        for i, ext in enumerate(obj.get("ExternalIdentifier") or []):
            if isinstance(ext, dict) and ext.get("OtherType") == NUMBER_ELECTED_ID:
                return need_count(
                    _int_text(ext.get("Value")), f"{path}.ExternalIdentifier[{i}].Value"
                )
        allocated = sum(s.seats or 0 for s in selections)
        return allocated or None

    def _contest_progress(
        self, obj: dict[str, Any], path: str, district: str, counted: set[str], final: bool
    ) -> Progress:
        progress = self._progress(obj, path, district, counted, final)
        if not progress.complete and _count_completed(obj):
            # CountStatus says the count is complete, whatever the units say.
            leaves = len(self.leaves(district)) or 1
            progress = Progress(leaves, leaves)
        return progress

    def _progress(
        self, obj: dict[str, Any], path: str, district: str, counted: set[str], final: bool
    ) -> Progress:
        reported = opt_count(obj.get("SubUnitsReported"), f"{path}.SubUnitsReported")
        total = opt_count(obj.get("TotalSubUnits"), f"{path}.TotalSubUnits")
        if reported is not None and total is not None:
            return Progress(reported, total)
        unit = self.units[district]
        if unit.reported is not None and unit.total is not None:
            return Progress(unit.reported, unit.total)
        leaves = self.leaves(district)
        if leaves:
            if final:
                return Progress(len(leaves), len(leaves))
            return Progress(len(leaves & counted), len(leaves))
        if final:
            return Progress(1, 1)
        return Progress()

    def _electorate(self, district: str) -> int | None:
        unit = self.units[district]
        if unit.registered is not None:
            return unit.registered
        leaves = self.leaves(district)
        values = [self.units[u].registered for u in leaves]
        if values and all(v is not None for v in values):
            return sum(v for v in values if v is not None)
        return None

    def _ballots(self, district: str, ballots: dict[str, int]) -> int | None:
        if district in ballots:
            return ballots[district]
        unit = self.units[district]
        if unit.participated is not None:
            return unit.participated
        leaves = self.leaves(district)
        found = [ballots[u] for u in leaves if u in ballots]
        return sum(found) if found else None


def _status(raw: Any) -> ResultsStatus:
    if raw not in _STATUS:
        raise FeedError(f"Status: expected one of {', '.join(_STATUS)}, got {describe(raw)}")
    return _STATUS[raw]


def _issuer(doc: dict[str, Any]) -> str | None:
    issuer = doc.get("Issuer")
    return issuer.strip() if isinstance(issuer, str) and issuer.strip() else None


def _count_completed(obj: dict[str, Any]) -> bool:
    """CountStatus says the total count of the contest is completed."""
    for item in obj.get("CountStatus") or []:
        if (
            isinstance(item, dict)
            and item.get("Type", "total") == "total"
            and item.get("Status") == "completed"
        ):
            return True
    return False


def _int_text(value: Any) -> Any:
    if isinstance(value, str) and is_digits(value.strip()):
        return int(value.strip())
    return value


# (id, name, party, winner, {unit: [total-type sum, other-types sum, has total]}, {unit: seats},
# endorsing coalition) of one selection, before its units are chosen.
_RawSelection = tuple[str, str, str | None, bool, dict[str, list[int]], dict[str, int], str | None]


def _summed(
    raw: _RawSelection, district: str, sum_units: frozenset[str], kind: ContestKind
) -> Selection:
    """A selection's votes over the district (when it reports there) or its smallest reported
    units, and its seats."""
    sid, sname, party_id, winner, votes, seats, coalition_id = raw
    units: frozenset[str] | tuple[str, ...] = (district,) if district in votes else sum_units
    total = 0
    for unit in units:
        tallied = votes.get(unit)
        if tallied is not None:
            total += tallied[0] if tallied[2] else tallied[1]
    if district in seats:
        seat_count: int | None = seats[district]
    elif seats:
        seat_count = sum(seats.values())
    else:
        seat_count = 0 if kind is ContestKind.PARTY else None
    return Selection(sid, sname, total, party_id, winner, seat_count, coalition_id=coalition_id)


def _uncontested(kind: ContestKind, selections: list[Selection], seats: int | None) -> bool:
    """Declared at nomination: as many candidates as seats, all winners, no votes cast."""
    return (
        kind is ContestKind.CANDIDATE
        and bool(selections)
        and len(selections) <= (seats or 1)
        and all(s.winner for s in selections)
        and sum(s.votes for s in selections) == 0
    )
