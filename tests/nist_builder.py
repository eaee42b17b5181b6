"""Build small NIST SP 1500-100 v2 documents for tests (fictional data, marked as test)."""

from __future__ import annotations

import json
from typing import Any


def text(value: str) -> dict[str, Any]:
    return {
        "@type": "ElectionResults.InternationalizedText",
        "Text": [{"Content": value, "Language": "en"}],
    }


def report(
    contests: list[dict[str, Any]],
    *,
    candidates: list[dict[str, Any]] | None = None,
    units: list[dict[str, Any]] | None = None,
    parties: list[dict[str, Any]] | None = None,
    status: str = "unofficial-partial",
    generated: str = "2030-01-01T20:00:00+07:00",
    is_test: bool = True,
) -> dict[str, Any]:
    return {
        "@type": "ElectionResults.ElectionReport",
        "Format": "summary-contest",
        "GeneratedDate": generated,
        "Issuer": "Test Commission",
        "IssuerAbbreviation": "TC",
        "IsTest": is_test,
        "SequenceStart": 1,
        "SequenceEnd": 1,
        "Status": status,
        "VendorApplicationId": "tests",
        "GpUnit": units if units is not None else [unit("ru-1"), unit("ru-2")],
        "Party": parties
        if parties is not None
        else [party("par-a", "Party A"), party("par-b", "Party B")],
        "Election": [
            {
                "@type": "ElectionResults.Election",
                "Name": text("Test Election"),
                "ElectionScopeId": "ru-1",
                "StartDate": "2030-01-01",
                "EndDate": "2030-01-01",
                "Type": "general",
                "Candidate": candidates if candidates is not None else [],
                "Contest": contests,
            }
        ],
    }


def unit(uid: str, composing: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    u: dict[str, Any] = {
        "@type": "ElectionResults.ReportingUnit",
        "@id": uid,
        "Type": "other",
        "Name": text(uid),
    }
    if composing:
        u["ComposingGpUnitIds"] = composing
    u.update(extra)
    return u


def party(pid: str, name: str, **extra: Any) -> dict[str, Any]:
    return {"@type": "ElectionResults.Party", "@id": pid, "Name": text(name), **extra}


def coalition(cid: str, name: str, members: list[str]) -> dict[str, Any]:
    return {
        "@type": "ElectionResults.Coalition",
        "@id": cid,
        "Name": text(name),
        "PartyIds": members,
    }


def candidate(
    cid: str, name: str, party_id: str | None = None, winner: bool = False
) -> dict[str, Any]:
    c: dict[str, Any] = {"@type": "ElectionResults.Candidate", "@id": cid, "BallotName": text(name)}
    if party_id:
        c["PartyId"] = party_id
    if winner:
        c["PostElectionStatus"] = "winner"
    return c


def counts(unit_id: str, n: int, kind: str = "total") -> dict[str, Any]:
    return {"@type": "ElectionResults.VoteCounts", "GpUnitId": unit_id, "Type": kind, "Count": n}


def candidate_contest(
    cid: str,
    selections: list[tuple[str, str, list[dict[str, Any]]]],
    district: str = "ru-1",
    reported: tuple[int, int] | None = None,
) -> dict[str, Any]:
    c: dict[str, Any] = {
        "@type": "ElectionResults.CandidateContest",
        "@id": cid,
        "Name": f"Contest {cid}",
        "ElectionDistrictId": district,
        "VotesAllowed": 1,
        "ContestSelection": [
            {
                "@type": "ElectionResults.CandidateSelection",
                "@id": sid,
                "CandidateIds": [cand],
                "VoteCounts": vc,
            }
            for sid, cand, vc in selections
        ],
    }
    if reported:
        c["SubUnitsReported"], c["TotalSubUnits"] = reported
    return c


def party_contest(
    cid: str,
    selections: list[tuple[str, str, list[dict[str, Any]]]],
    district: str = "ru-1",
    seats: int | None = None,
    reported: tuple[int, int] | None = None,
) -> dict[str, Any]:
    c: dict[str, Any] = {
        "@type": "ElectionResults.PartyContest",
        "@id": cid,
        "Name": f"List {cid}",
        "ElectionDistrictId": district,
        "ContestSelection": [
            {
                "@type": "ElectionResults.PartySelection",
                "@id": sid,
                "PartyIds": [pid],
                "VoteCounts": vc,
            }
            for sid, pid, vc in selections
        ],
    }
    if seats is not None:
        c["ExternalIdentifier"] = [
            {
                "@type": "ElectionResults.ExternalIdentifier",
                "Type": "other",
                "OtherType": "number-elected",
                "Value": str(seats),
            }
        ]
    if reported:
        c["SubUnitsReported"], c["TotalSubUnits"] = reported
    return c


def dumps(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc).encode()
