"""Coalitions from the configuration: which party counts for which coalition, and where.

A real night has parties that stand under a coalition's logo in one state and under their own
in another (Malaysia 2022: "PH 76 or 82 seats?"). So whether a seat counts for a coalition is
decided per contest: candidate → party → coalition. The feed may say it (NIST: a Coalition's
PartyIds, a selection's EndorsementPartyIds; the CSV and mapped formats: a coalition per row);
the configuration adds what the feed lacks:

    [coalitions.PH]                 # a coalition: its name, and parties counted for it
    name = "Pakatan Harapan"
    parties = ["PKR", "DAP", "AMANAH"]

    [contest_coalitions."P.170"]    # in this contest, where it differs:
    UPKO = "PH"                     #   a party (or one candidate, by selection id) stood for PH
    PKR = ""                        #   PKR stood under its own logo: its seat is PKR's only

The configuration wins over the feed; a contest's entry wins over `[coalitions]`.
"""

from __future__ import annotations

from dataclasses import replace

from broadcaster.core.config import CoalitionConfig
from broadcaster.domain.model import Coalition, Contest, Party, Snapshot
from broadcaster.ingest.parsers.base import FeedError


def apply_coalitions(
    snapshot: Snapshot,
    coalitions: dict[str, CoalitionConfig],
    by_contest: dict[str, dict[str, str]],
) -> Snapshot:
    """The snapshot with the configured coalitions and per-contest choices applied; FeedError
    when a contest's entry names a coalition that neither the feed nor `[coalitions]` has."""
    if not coalitions and not by_contest:
        return snapshot
    known = dict(snapshot.coalitions)
    parties = dict(snapshot.parties)
    for cid, cfg in coalitions.items():
        feed = known.get(cid)
        members = list(feed.party_ids if feed else ())
        members += [p for p in cfg.parties if p not in members]
        known[cid] = Coalition(
            cid,
            cfg.name or (feed.name if feed else cid),
            cfg.short or (feed.abbreviation if feed else None),
            tuple(members),
            (cfg.color or "").lstrip("#") or (feed.color if feed else None),
        )
        for pid in cfg.parties:
            party = parties.get(pid) or Party(pid, pid)
            parties[pid] = replace(party, coalition_id=cid)
    for contest_id, choices in by_contest.items():
        for who, cid in choices.items():
            if cid and cid not in known:
                raise FeedError(
                    f"[contest_coalitions.{contest_id!r}] {who} = {cid!r}: no such coalition in "
                    f"the feed or in [coalitions]"
                )
    contests = tuple(_contest(c, by_contest.get(c.id)) for c in snapshot.contests)
    return replace(snapshot, contests=contests, parties=parties, coalitions=known)


def _contest(contest: Contest, choices: dict[str, str] | None) -> Contest:
    if not choices:
        return contest
    selections = tuple(
        replace(s, coalition_id=choices[s.id])
        if s.id in choices
        else replace(s, coalition_id=choices[s.party_id])
        if s.party_id in choices
        else s
        for s in contest.selections
    )
    return replace(contest, selections=selections)
