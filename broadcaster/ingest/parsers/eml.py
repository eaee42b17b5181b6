"""OASIS Election Markup Language: 510 counts and 520 results (the Kiesraad profile of EML v5).

A 510 (`Id="510a"` ... `"510d"`) is a count: per contest, a `TotalVotes` block (and one
`ReportingUnitVotes` block per polling station) holding a flat list of `Selection`s, each a
party (`AffiliationIdentifier`, with its `ValidVotes`) followed by that party's candidates
(`CandidateIdentifier` + `ValidVotes`); then `Cast`, `TotalCounted`, `RejectedVotes`. A 510 has
no candidate names (they come from the 230 candidate list): candidates are named by their
identifier. It declares no winners. Its polling stations are the units reported, and a 510 is a
finished count at its level, so progress is all of them.

A 520 is the result: the same flat list, with `CandidateFullName`, optional `ValidVotes`, and
`Elected`. A party's seats are its elected candidates. A 520 without any `ValidVotes` gives seats
and winners but no vote counts (`Contest.votes_known` is false), so nothing shows "0 votes".

How final: a 510a (polling station) or 510b (municipality) count is provisional, a 510c
(principal electoral committee) or 510d (central committee) count is official, and a 520 result
is certified.

XML from outside is untrusted: it is parsed by defusedxml with DTDs (hence entity expansion and
external entities) refused, and nothing is ever fetched.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import tzinfo

import defusedxml
import defusedxml.ElementTree as SafeET

from broadcaster.domain.model import (
    Contest,
    ContestKind,
    ListCandidate,
    Party,
    Progress,
    ResultsStatus,
    Selection,
    Snapshot,
)
from broadcaster.ingest.parsers.base import FeedError, decode_text, is_digits, parse_time

NS = "urn:oasis:names:tc:evs:schema:eml"
KR = "http://www.kiesraad.nl/extensions"
XNL = "urn:oasis:names:tc:ciq:xsdschema:xNL:2.0"
NO_CONTEST = ("geen", "")  # the Kiesraad's "no contest": the whole election is one contest


def _q(tag: str, ns: str = NS) -> str:
    return f"{{{ns}}}{tag}"


def load_xml(body: bytes) -> ET.Element:
    """Parse untrusted XML: no DTD, no entities, no network; errors name line and column."""
    head = body[:200].lower()
    if b"encoding=" not in head or b"utf-8" in head:
        decode_text(body)  # a clear message, with the byte offset, for invalid UTF-8
    try:
        return SafeET.fromstring(body, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except defusedxml.DTDForbidden:
        raise FeedError("XML: a DTD is not allowed in a results feed (nor its entities)") from None
    except defusedxml.EntitiesForbidden:
        raise FeedError("XML: entity declarations are not allowed in a results feed") from None
    except defusedxml.ExternalReferenceForbidden:
        raise FeedError("XML: external references are not allowed in a results feed") from None
    except ET.ParseError as exc:
        line, col = exc.position
        raise FeedError(f"line {line} column {col + 1}: malformed XML ({_reason(exc)})") from None
    except LookupError as exc:  # the declaration names an encoding Python's codecs lack
        raise FeedError(f"XML: unknown character encoding ({str(exc)[:80]!r})") from None


def _reason(exc: ET.ParseError) -> str:
    return str(exc).split(":")[0]


def _text(el: ET.Element | None) -> str | None:
    if el is None or el.text is None:
        return None
    text = el.text.strip()
    return text or None


def _count(el: ET.Element | None, path: str) -> int | None:
    text = _text(el)
    if el is None:
        return None
    if text is None or not is_digits(text):
        raise FeedError(f"{path}: expected a non-negative whole number, got {text!r}")
    return int(text)


def parse_eml(body: bytes, *, default_tz: tzinfo) -> Snapshot:
    root = load_xml(body)
    if root.tag != _q("EML"):
        raise FeedError(f"root element is <{_local(root.tag)}>, expected <EML> (namespace {NS})")
    kind = root.get("Id") or ""
    if kind.startswith("510"):
        election = root.find(f"{_q('Count')}/{_q('Election')}")
        where = "Count/Election"
        # A 510 is a finished count at its level: polling station (a) and municipality (b)
        # are provisional; the principal (c) and central (d) electoral committees, which
        # the returning officers chair, declare it official.
        status = ResultsStatus.OFFICIAL if kind in ("510c", "510d") else ResultsStatus.COMPLETE
    elif kind == "520":
        election = root.find(f"{_q('Result')}/{_q('Election')}")
        where = "Result/Election"
        status = ResultsStatus.CERTIFIED
    else:
        raise FeedError(
            f'EML Id="{kind}": only 510 (counts) and 520 (results) carry results; '
            "set feed.format to what the body publishes"
        )
    if election is None:
        raise FeedError(f"EML {kind}: no {where} element")
    ident = election.find(_q("ElectionIdentifier"))
    if ident is None or not ident.get("Id"):
        raise FeedError(f"{where}/ElectionIdentifier: missing, or without its Id")
    election_id = ident.get("Id") or ""
    election_name = _text(ident.find(_q("ElectionName"))) or election_id
    created = _text(root.find(_q("CreationDateTime", KR))) or _text(root.find(_q("IssueDate")))
    if created is None:
        raise FeedError(
            "kr:CreationDateTime (or IssueDate): missing; it tells when the count was made"
        )
    generated_at = parse_time(created, "kr:CreationDateTime", default_tz)
    authority = root.find(f"{_q('ManagingAuthority')}/{_q('AuthorityIdentifier')}")

    if kind == "520":
        contest_elements = election.findall(_q("Contest"))
        contest_path = f"{where}/Contest"
    else:
        contest_elements = election.findall(f"{_q('Contests')}/{_q('Contest')}")
        contest_path = f"{where}/Contests/Contest"
    if not contest_elements:
        raise FeedError(f"{contest_path}: no contests")
    parties: dict[str, Party] = {}
    contests: list[Contest] = []
    seen: set[str] = set()
    for n, element in enumerate(contest_elements):
        path = f"{contest_path}[{n}]"
        contest = (
            _result_contest(element, path, election_id, election_name, parties)
            if kind == "520"
            else _count_contest(element, path, election_id, election_name, parties)
        )
        if contest.id in seen:
            raise FeedError(f"{path}/ContestIdentifier: duplicate contest id {contest.id!r}")
        seen.add(contest.id)
        contests.append(contest)
    return Snapshot(
        election=election_name,
        status=status,
        generated_at=generated_at,
        contests=tuple(contests),
        is_test=False,  # EML has no test flag: set [feed] is_test for rehearsal data
        issuer=_text(authority),
        parties=parties,
    )


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _contest_id(element: ET.Element, path: str, election_id: str) -> tuple[str, str | None]:
    ident = element.find(_q("ContestIdentifier"))
    if ident is None:
        raise FeedError(f"{path}/ContestIdentifier: missing")
    raw = (ident.get("Id") or "").strip()
    name = _text(ident.find(_q("ContestName")))
    if raw.lower() in NO_CONTEST:
        return election_id, name
    return f"{election_id}/{raw}", name


def _selections(
    block: ET.Element, path: str, parties: dict[str, Party], *, result: bool
) -> tuple[list[Selection], list[ListCandidate]]:
    """The flat Selection list: parties, each followed by its candidates. Returns the party
    selections (with their candidates as members) and candidates outside any party."""
    lists: list[tuple[str, str, int, bool, list[ListCandidate]]] = []
    loose: list[ListCandidate] = []
    ids: set[str] = set()
    first_loose: str | None = None
    for i, sel in enumerate(block.findall(_q("Selection"))):
        where = f"{path}/Selection[{i}]"
        votes = _count(sel.find(_q("ValidVotes")), f"{where}/ValidVotes")
        elected = (_text(sel.find(_q("Elected"))) or "").lower() == "yes"
        affiliation = sel.find(_q("AffiliationIdentifier"))
        candidate = sel.find(_q("Candidate"))
        if affiliation is not None:
            aid = (affiliation.get("Id") or "").strip()
            if not aid:
                raise FeedError(f"{where}/AffiliationIdentifier: missing its Id")
            if aid in ids:
                raise FeedError(f"{where}/AffiliationIdentifier: duplicate party id {aid!r}")
            ids.add(aid)
            name = _text(affiliation.find(_q("RegisteredName"))) or f"List {aid}"
            if votes is None and not result:
                raise FeedError(f"{where}/ValidVotes: missing for party {aid!r}")
            lists.append((aid, name, votes or 0, elected, []))
        elif candidate is not None:
            cident = candidate.find(_q("CandidateIdentifier"))
            cid = (cident.get("Id") or "").strip() if cident is not None else ""
            if not cid:
                raise FeedError(f"{where}/Candidate/CandidateIdentifier: missing its Id")
            if votes is None and not result:
                raise FeedError(f"{where}/ValidVotes: missing for candidate {cid!r}")
            member = ListCandidate(cid, _person_name(candidate) or cid, votes, elected)
            if lists:
                members = lists[-1][4]
                if any(m.id == cid for m in members):
                    raise FeedError(
                        f"{where}/Candidate: duplicate candidate {cid!r} on list {lists[-1][0]!r}"
                    )
                members.append(member)
            else:
                loose.append(member)
                first_loose = first_loose or where
        else:
            raise FeedError(f"{where}: neither an AffiliationIdentifier nor a Candidate")
    if lists and first_loose:
        raise FeedError(f"{first_loose}: a candidate before any party (AffiliationIdentifier)")
    out = []
    for aid, name, votes, elected, members in lists:
        pid = f"list-{aid}"
        parties.setdefault(pid, Party(pid, name))
        seats = sum(1 for m in members if m.elected) if result else None
        if result and elected and not seats:
            seats = None  # the list is marked elected but names no one: seats unknown
        out.append(
            Selection(
                id=pid,
                name=name,
                votes=votes,
                party_id=pid,
                seats=seats,
                members=tuple(members),
            )
        )
    return out, loose


def _person_name(candidate: ET.Element) -> str | None:
    person = candidate.find(f"{_q('CandidateFullName')}/{_q('PersonName', XNL)}")
    if person is None:
        return None
    first = _text(person.find(_q("FirstName", XNL)))
    initials = _text(person.find(_q("NameLine", XNL)))
    prefix = _text(person.find(_q("NamePrefix", XNL)))
    last = _text(person.find(_q("LastName", XNL)))
    parts = [first or initials, prefix, last]
    name = " ".join(p for p in parts if p)
    return name or None


def _count_contest(
    element: ET.Element,
    path: str,
    election_id: str,
    election_name: str,
    parties: dict[str, Party],
) -> Contest:
    contest_id, contest_name = _contest_id(element, path, election_id)
    total = element.find(_q("TotalVotes"))
    if total is None:
        raise FeedError(f"{path}/TotalVotes: missing")
    lists, loose = _selections(total, f"{path}/TotalVotes", parties, result=False)
    units = element.findall(_q("ReportingUnitVotes"))
    cast = _count(total.find(_q("TotalCounted")), f"{path}/TotalVotes/TotalCounted")
    rejected = 0
    for j, r in enumerate(total.findall(_q("RejectedVotes"))):
        rejected += _count(r, f"{path}/TotalVotes/RejectedVotes[{j}]") or 0
    progress = Progress(len(units), len(units)) if units else Progress()
    if lists:
        selections = tuple(lists)
        kind = ContestKind.PARTY
    else:
        selections = tuple(Selection(m.id, m.name, m.votes or 0) for m in loose)
        kind = ContestKind.CANDIDATE
    if not selections:
        raise FeedError(f"{path}/TotalVotes: no Selection")
    return Contest(
        id=contest_id,
        name=contest_name or election_name,
        kind=kind,
        selections=selections,
        progress=progress,
        ballots_cast=cast + rejected if cast is not None else None,
    )


def _result_contest(
    element: ET.Element,
    path: str,
    election_id: str,
    election_name: str,
    parties: dict[str, Party],
) -> Contest:
    contest_id, contest_name = _contest_id(element, path, election_id)
    lists, loose = _selections(element, path, parties, result=True)
    # Vote counts are optional in a 520: without any, there are seats and winners only.
    votes_known = element.find(f"{_q('Selection')}/{_q('ValidVotes')}") is not None
    if lists:
        seats = sum(s.seats or 0 for s in lists)
        return Contest(
            id=contest_id,
            name=contest_name or election_name,
            kind=ContestKind.PARTY,
            selections=tuple(lists),
            seats=seats or None,
            votes_known=votes_known,
        )
    if not loose:
        raise FeedError(f"{path}: no Selection")
    return Contest(
        id=contest_id,
        name=contest_name or election_name,
        kind=ContestKind.CANDIDATE,
        selections=tuple(Selection(m.id, m.name, m.votes or 0, winner=m.elected) for m in loose),
        seats=sum(1 for m in loose if m.elected) or None,
        votes_known=votes_known,
    )
