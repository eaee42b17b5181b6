"""What templates see.

When an event is found, everything its posts will need is frozen with it, so a post rendered later
(after a template fix, or after a restart) says exactly what was true when the event happened:
`event_context` keeps the contest as it stood (stored with the event) and `snapshot_context` the
election and the national tally (stored once per snapshot). `template_vars` turns those into the
documented variables (docs/templates.md).

Variables are `View`s: read-only mappings whose keys are also attributes, so `contest.name` in a
template is a plain attribute lookup (fast, and refused for anything starting with `_`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from broadcaster.domain.events import Event, EventKind
from broadcaster.domain.model import (
    Contest,
    ResultsStatus,
    Selection,
    Snapshot,
    contest_from_list,
    contest_to_list,
)
from broadcaster.domain.status import contest_stage, election_stage, report_stage, reports
from broadcaster.domain.tally import Tally


class View(dict[str, Any]):
    """A dict whose keys read as attributes: `v.name` is `v["name"]`."""

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def snapshot_context(
    snapshot: Snapshot, tally: Tally, *, election_name: str | None, issuer: str | None
) -> dict[str, Any]:
    """The election and the national tally as of a snapshot (JSON-safe, stored once)."""
    colors = {p.id: p.color for p in snapshot.parties.values() if p.color}
    colors.update({c.id: c.color for c in snapshot.coalitions.values() if c.color})
    return {
        "election": {
            "name": election_name or snapshot.election,
            "status": snapshot.status.value,
            "stage": election_stage(snapshot).value,
            "is_test": snapshot.is_test,
            "issuer": issuer or snapshot.issuer,
            "generated_at": snapshot.generated_at.isoformat(),
        },
        "tally": tally.to_dict(),
        "colors": colors,
    }


def event_context(event: Event, snapshot: Snapshot) -> dict[str, Any]:
    """The event's contest as it stood, with the parties it names (JSON-safe, stored with it)."""
    contest = snapshot.contest(event.contest_id) if event.contest_id else None
    if contest is None:
        return {"contest": None, "parties": {}, "coalitions": {}}
    parties: dict[str, list[Any]] = {}
    coalitions: dict[str, list[Any]] = {}
    for s in contest.selections:
        if s.party_id and s.party_id not in parties:
            p = snapshot.parties.get(s.party_id)
            if p is not None:
                parties[p.id] = [p.name, p.abbreviation, p.coalition_id, p.color]
                c = snapshot.coalitions.get(p.coalition_id) if p.coalition_id else None
                if c is not None:
                    coalitions[c.id] = [c.name, c.abbreviation, c.color]
        # The coalition it stood for in this contest, and a coalition standing itself.
        for c in (snapshot.coalition_for(s), snapshot.coalitions.get(s.party_id or "")):
            if c is not None and c.id not in coalitions:
                coalitions[c.id] = [c.name, c.abbreviation, c.color]
    return {"contest": contest_to_list(contest), "parties": parties, "coalitions": coalitions}


def _share(votes: int, total: int) -> float | None:
    return 100.0 * votes / total if total > 0 else None


@dataclass(frozen=True, slots=True)
class Display:
    """How the configuration wants a party or coalition shown (any field may be absent)."""

    name: str | None = None
    short: str | None = None
    color: str | None = None


NO_DISPLAY: Mapping[str, Display] = {}


def _selection_view(
    s: Selection,
    total: int | None,
    parties: dict[str, list[Any]],
    coalitions: dict[str, list[Any]],
    display: Mapping[str, Display],
) -> View:
    party = parties.get(s.party_id) if s.party_id else None
    shown = display.get(s.party_id) if s.party_id else None
    # The coalition it stood for in this contest: its own where given, else its party's (a
    # coalition standing in its own name is its own coalition).
    if s.coalition_id is not None:
        coalition_id = s.coalition_id or None
    elif party and party[2]:
        coalition_id = party[2]
    else:
        coalition_id = s.party_id if s.party_id in coalitions else None
    coalition = coalitions.get(coalition_id) if coalition_id else None
    coalition_shown = display.get(coalition_id) if coalition_id else None
    if party is None and s.party_id in coalitions:
        party = [*coalitions[s.party_id][:2], None, coalitions[s.party_id][2]]
    party_name = (shown and shown.name) or (party[0] if party else None)
    # A party-list selection is named after its party: show the configured name there too.
    name = (shown.name if shown and shown.name and party and s.name == party[0] else None) or s.name
    return View(
        id=s.id,
        name=name,
        votes=s.votes if total is not None else None,
        share=_share(s.votes, total) if total is not None else None,
        party=party_name,
        party_id=s.party_id,
        party_abbr=(shown and shown.short) or ((party[1] or party[0]) if party else None),
        party_color=_color((shown and shown.color) or (party[3] if party else None)),
        coalition=(coalition_shown and coalition_shown.name)
        or (coalition[0] if coalition else None),
        coalition_id=coalition_id if coalition else None,
        coalition_abbr=(coalition_shown and coalition_shown.short)
        or ((coalition[1] or coalition[0]) if coalition else None),
        winner=s.winner,
        seats=s.seats,
        candidates=[
            View(id=m.id, name=m.name, votes=m.votes, elected=m.elected) for m in s.members
        ],
    )


def _color(value: str | None) -> str | None:
    if not value:
        return None
    return value if value.startswith("#") else f"#{value}"


def contest_view(
    contest: Contest,
    parties: dict[str, list[Any]],
    coalitions: dict[str, list[Any]],
    display: Mapping[str, Display] = NO_DISPLAY,
    status: ResultsStatus | str = ResultsStatus.PARTIAL,
) -> View:
    """A contest as templates, cards and the live channel see it; `status` is the report's
    (the contest's stage is its own where the feed gives one, else the report's)."""
    total = contest.total_votes
    shown_total = total if contest.votes_known else None
    ranked = [
        _selection_view(s, shown_total, parties, coalitions, display) for s in contest.ranked()
    ]
    leader = contest.leader
    ballots = contest.ballots_cast
    margin = contest.margin
    return View(
        id=contest.id,
        name=contest.name,
        kind=contest.kind.value,
        seats=contest.seats,
        selections=ranked,
        leader=next(v for v in ranked if v["id"] == leader.id) if leader else None,
        winners=[v for v in ranked if v["winner"] or (v["seats"] or 0) > 0],
        called=contest.called,
        total_votes=shown_total,
        votes_known=contest.votes_known,
        stage=contest_stage(contest, status).value,
        state=contest.state.value,
        reporting=reports(contest),
        tied=contest.tied,
        margin=margin if contest.votes_known else None,
        margin_pct=_share(margin, total) if margin is not None and contest.votes_known else None,
        reported=contest.progress.reported,
        units_total=contest.progress.total,
        percent_reported=contest.progress.percent,
        electorate=contest.electorate,
        ballots_cast=ballots,
        turnout=_share(ballots, contest.electorate) if ballots and contest.electorate else None,
    )


def tally_view(
    tally: Tally,
    display: Mapping[str, Display] = NO_DISPLAY,
    colors: Mapping[str, str] | None = None,
) -> View:
    """The national tally for templates and cards: by party, by coalition, and by bloc (each
    coalition, then parties' seats outside any: no seat counted twice)."""
    feed_colors = colors or {}

    def seat_view(c: Any) -> View:
        shown = display.get(c.id)
        return View(
            id=c.id,
            name=(shown and shown.name) or c.name,
            short=(shown and shown.short) or c.name,
            color=_color((shown and shown.color) or feed_colors.get(c.id)),
            seats=c.seats,
            is_coalition=c.is_coalition,
        )

    parties = [seat_view(p) for p in tally.parties]
    not_reporting = [
        View(state=state, contests=contests, seats=seats)
        for state, contests, seats in tally.not_reporting
    ]
    return View(
        total_seats=tally.total_seats,
        declared_seats=tally.declared_seats,
        majority=tally.majority,
        parties=parties,
        coalitions=[seat_view(c) for c in tally.coalitions],
        blocs=[seat_view(b) for b in tally.blocs],
        leader=parties[0] if parties else None,
        contests_called=tally.contests_called,
        contests_total=tally.contests_total,
        not_reporting=not_reporting,
        seats_not_reporting=tally.seats_not_reporting,
        reporting_seats=tally.total_seats - tally.seats_not_reporting,
        complete=tally.complete,
    )


def shared_vars(
    shared: dict[str, Any], timezone: str, display: Mapping[str, Display] = NO_DISPLAY
) -> dict[str, Any]:
    """`election` and `tally` variables from a stored snapshot context (built once per snapshot)."""
    election = View(shared["election"])
    election["generated_at"] = datetime.fromisoformat(election["generated_at"]).astimezone(
        ZoneInfo(timezone)
    )
    if "stage" not in election:  # stored by an earlier version
        election["stage"] = report_stage(election["status"]).value
    return {
        "election": election,
        "tally": tally_view(Tally.from_dict(shared["tally"]), display, shared.get("colors")),
        "display": display,
    }


def template_vars(
    event: Event,
    captured: dict[str, Any],
    shared: dict[str, View],
    *,
    timezone: str,
    account: dict[str, Any] | None = None,
    item_views: dict[str, View] | None = None,
) -> dict[str, Any]:
    """The variables a template is rendered with (documented in docs/templates.md).
    `item_views`: a summary's items already made with this same `shared`, by event key (a
    merge tries several summaries of the same posts), filled in as items are made."""
    tz = ZoneInfo(timezone)
    parties = captured["parties"]
    coalitions = captured["coalitions"]
    raw = captured["contest"]
    display = shared.get("display", NO_DISPLAY)
    status = shared["election"]["status"]
    cview = (
        contest_view(contest_from_list(raw), parties, coalitions, display, status)
        if raw is not None
        else None
    )

    ev = View(kind=event.kind.value, key=event.key, at=event.at.astimezone(tz))
    data = event.data
    if event.kind is EventKind.PROGRESS:
        ev["threshold"] = data["threshold"]
    elif event.kind is EventKind.LEADER and cview is not None:
        ev["previous_leader"] = _named(cview, data.get("previous"))
    elif event.kind is EventKind.CORRECTED and cview is not None:
        ev["winner_changed"] = bool(data.get("winner_changed"))
        ev["official"] = bool(data.get("official"))
        ev["previous_winners"] = [
            _named(cview, w.split(":")[0]) or View(name=w) for w in data.get("previous_winners", [])
        ]
        ev["changes"] = _changes(cview, data.get("previous_votes", {}))
    elif event.kind is EventKind.OFFICIAL and cview is not None:
        ev["figures_changed"] = bool(data.get("figures_changed"))
        ev["changes"] = _changes(cview, data.get("previous_votes", {}))
    elif event.kind is EventKind.TIE and cview is not None:
        ev["tied"] = [v for v in (_named(cview, i) for i in data.get("tied", [])) if v]
    elif event.kind is EventKind.CLOSE and cview is not None:
        ev["ahead"] = _named(cview, data.get("ahead"))
        ev["behind"] = _named(cview, data.get("behind"))
        ev["margin"] = data.get("margin")
        ev["margin_pct"] = (
            _share(data["margin"], cview["total_votes"])
            if data.get("margin") is not None and cview["total_votes"]
            else None
        )
    elif event.kind is EventKind.POSTPONED:
        ev["state"] = data.get("state", cview["state"] if cview else None)
    elif event.kind is EventKind.TALLY:
        ev["final"] = bool(data.get("final"))
    elif event.kind is EventKind.MAJORITY:
        shown = display.get(data["holder"])
        ev["holder"] = View(
            id=data["holder"],
            name=(shown and shown.name) or data["name"],
            seats=data["seats"],
            is_coalition=bool(data.get("is_coalition")),
        )

    variables = {
        "election": shared["election"],
        "event": ev,
        "contest": cview,
        "tally": shared["tally"],
        "account": View(account or {}),
    }
    if event.kind is EventKind.SUMMARY:
        variables["summary"] = summary_view(event, captured, shared, timezone, item_views)
    return variables


def summary_context(items: list[tuple[Event, dict[str, Any]]]) -> dict[str, Any]:
    """The stored context of a summary: each merged event with its own context."""
    return {
        "contest": None,
        "parties": {},
        "coalitions": {},
        "items": [
            {
                "key": e.key,
                "kind": e.kind.value,
                "at": e.at.isoformat(),
                "contest_id": e.contest_id,
                "data": e.data,
                "context": ctx,
            }
            for e, ctx in items
        ],
    }


def summary_view(
    event: Event,
    captured: dict[str, Any],
    shared: dict[str, Any],
    timezone: str,
    item_views: dict[str, View] | None = None,
) -> View:
    items = []
    for item in captured.get("items", []):
        known = item_views.get(item["key"]) if item_views is not None else None
        if known is not None:
            items.append(known)
            continue
        merged = Event(
            key=item["key"],
            kind=EventKind(item["kind"]),
            at=datetime.fromisoformat(item["at"]),
            contest_id=item["contest_id"],
            data=item["data"],
        )
        inner = template_vars(merged, item["context"], shared, timezone=timezone)
        made = View(event=inner["event"], contest=inner["contest"])
        if item_views is not None:
            item_views[item["key"]] = made
        items.append(made)
    return View(kind=event.data.get("kind", ""), count=len(items), items=items)


def _changes(cview: View, before: dict[str, int]) -> list[View]:
    """The figures that differ from `before` (selection id -> votes)."""
    if not before or not cview["votes_known"]:
        return []
    return [
        View(name=s["name"], before=before.get(s["id"]), after=s["votes"])
        for s in cview["selections"]
        if before.get(s["id"]) != s["votes"]
    ]


def _named(cview: View, selection_id: str | None) -> View | None:
    if selection_id is None:
        return None
    for s in cview["selections"]:
        if s["id"] == selection_id:
            return s
    return None
