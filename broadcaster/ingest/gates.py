"""Plausibility gates: a wrong number published by an election commission is worse than a late one.

Before a snapshot's events are planned, it is checked against itself and against the last
accepted snapshot. Each check that fails is a Finding naming the contest (or the whole
snapshot) and what is implausible. The configuration (`[gates]`) says per check whether it
holds the affected events' posts for an operator (the default), only warns, or is off. An
operator approves held posts (a genuine correction) or cancels them.

`check` is pure: two snapshots in, findings out.

Besides the numbers, two checks guard the words a post is made of. `feed_markup`: a feed value
(the election's, a contest's, a candidate's, a party's, a coalition's or a list candidate's name,
or the issuer) that a platform would turn into a link, a mention or a hashtag, or that carries
HTML markup, or that held a line break or a bidi override before it was normalised
(parsers/clean.py). `renamed`: a contest, selection, party or coalition whose name changed
since the last snapshot (by id): a results system does not rename a candidate in the night.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from twitter_text.extract_urls import extract_urls

from broadcaster.domain.model import Contest, ResultsStatus, Snapshot

CHECKS: dict[str, str] = {
    "votes_over_ballots": "a contest's votes exceed its electorate or its ballots cast",
    "turnout_over_100": "ballots cast exceed the electorate",
    "votes_decreased": "a vote count goes down",
    "call_withdrawn": "a called contest is no longer called",
    "winner_changed": "a called contest changes winner",
    "contest_missing": "a contest disappears",
    "selection_missing": "a candidate or party disappears from a contest",
    "seats_over": "more seats allocated than the contest has",
    "progress_backwards": "reporting progress goes backwards",
    "status_regressed": "the report's status goes back (certified to official, complete...)",
    "feed_markup": "a name holds a link, domain, mention, hashtag, markup or line break",
    "renamed": "a contest, candidate, party or coalition changes name",
}

HOLD_PREFIX = "implausible"
_RANK = {
    ResultsStatus.PARTIAL: 0,
    ResultsStatus.COMPLETE: 1,
    ResultsStatus.RECOUNT: 1,
    ResultsStatus.OFFICIAL: 2,
    ResultsStatus.CERTIFIED: 3,
    ResultsStatus.CORRECTION: 3,
}


@dataclass(frozen=True, slots=True)
class Finding:
    check: str
    contest_id: str | None  # None: the whole snapshot
    message: str


def check(previous: Snapshot | None, new: Snapshot) -> list[Finding]:
    """Every implausibility in `new`, on its own and compared with `previous`."""
    found: list[Finding] = []
    for contest in new.contests:
        found += _within(contest)
    found += _markup(new)
    if previous is None:
        return found
    found += _renamed(previous, new)
    if _RANK[new.status] < _RANK[previous.status] and previous.status is ResultsStatus.CERTIFIED:
        found.append(
            Finding(
                "status_regressed",
                None,
                f"the report went from {previous.status.value} back to {new.status.value}",
            )
        )
    for before in previous.contests:
        after = new.contest(before.id)
        if after is None:
            found.append(
                Finding("contest_missing", before.id, f"{before.name} is no longer in the feed")
            )
            continue
        found += _between(before, after)
    return found


def _within(c: Contest) -> Iterable[Finding]:
    total = c.total_votes
    if c.ballots_cast is not None and total > c.ballots_cast:
        yield Finding(
            "votes_over_ballots",
            c.id,
            f"{c.name}: {total} votes counted but {c.ballots_cast} ballots cast",
        )
    elif c.electorate is not None and total > c.electorate:
        yield Finding(
            "votes_over_ballots",
            c.id,
            f"{c.name}: {total} votes counted but {c.electorate} registered voters",
        )
    if c.electorate is not None and c.ballots_cast is not None and c.ballots_cast > c.electorate:
        yield Finding(
            "turnout_over_100",
            c.id,
            f"{c.name}: {c.ballots_cast} ballots cast for {c.electorate} registered voters "
            f"({100 * c.ballots_cast / max(1, c.electorate):.1f} % turnout)",
        )
    if c.seats is not None and c.seats_allocated > c.seats:
        yield Finding(
            "seats_over",
            c.id,
            f"{c.name}: {c.seats_allocated} seats allocated, but the contest has {c.seats}",
        )


def _between(before: Contest, after: Contest) -> Iterable[Finding]:
    for s in before.selections:
        now = after.selection(s.id)
        if now is None:
            yield Finding(
                "selection_missing", after.id, f"{after.name}: {s.name} is no longer listed"
            )
        elif now.votes < s.votes:
            yield Finding(
                "votes_decreased",
                after.id,
                f"{after.name}: {s.name} went down from {s.votes} to {now.votes} votes",
            )
    if before.called and not after.called:
        yield Finding("call_withdrawn", after.id, f"{after.name} was declared, and now is not")
    elif before.called and after.called:
        was = _outcome(before)
        now_ = _outcome(after)
        if was != now_:
            yield Finding(
                "winner_changed",
                after.id,
                f"{after.name}: the declared result changed from {_describe(before)} "
                f"to {_describe(after)}",
            )
    b, a = before.progress.reported, after.progress.reported
    if b is not None and a is not None and a < b:
        yield Finding(
            "progress_backwards",
            after.id,
            f"{after.name}: units reported went back from {b} to {a}",
        )


# -- the words: links, mentions, hashtags, markup; renames --------------------------------------

_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://|\bwww\.", re.IGNORECASE)
_MENTION = re.compile(r"(?<![\w@＠])[@＠][A-Za-z0-9_]")
_HASHTAG = re.compile(r"(?<![\w&#＃])[#＃]\w*[^\W\d_]")
_EMAIL = re.compile(r"[\w.+-]+[@＠][\w-]+(?:\.[\w-]+)+")
_MARKUP = re.compile(r"<\s*/?\s*[A-Za-z!?]|&(?:#\d+|#x[0-9A-Fa-f]+|[A-Za-z]+);")
_CLIP = 60


def markup_in(value: str) -> str | None:
    """What in `value` a platform would link or a browser would interpret, or None.

    A domain is what X itself links (twitter-text's list of top-level domains), except, as X
    does, a bare one- or two-letter label before a country code (`M.Sc`, `B.A`): so `evil.com`,
    `results.vote` and `x.com` are found, while `St. John`, `St.John`, `J.R.R. Tolkien` and
    `Mohd.Ali` are names."""
    if "/" in value or ":" in value or "www." in value.lower():
        m = _SCHEME.search(value)
        if m:
            return f"a link ({_clip(value[m.start() :])})"
    if "." in value:
        for url in extract_urls(value):
            host = url.split("/", 1)[0]
            labels = host.split(".")
            if "/" not in url and len(labels) == 2 and len(labels[0]) <= 2 and len(labels[1]) == 2:
                continue  # a short label before a country code without a path: X does not link it
            return f"a domain ({_clip(url)})"
    if "@" in value or "＠" in value:
        m = _EMAIL.search(value)
        if m:
            return f"an e-mail address ({_clip(m.group(0))})"
        m = _MENTION.search(value)
        if m:
            return f"a mention ({_clip(value[m.start() :].split()[0])})"
    if "#" in value or "＃" in value:
        m = _HASHTAG.search(value)
        if m:
            return f"a hashtag ({_clip(value[m.start() :].split()[0])})"
    if "<" in value or "&" in value:
        m = _MARKUP.search(value)
        if m:
            return f"markup ({_clip(value[m.start() :])})"
    return None


def _clip(text: str) -> str:
    return text if len(text) <= _CLIP else text[: _CLIP - 1] + "…"


def _named_values(snap: Snapshot) -> Iterator[tuple[str, str, str | None, str | None]]:
    """(field, value, contest id, party id) for every name a post or card can show."""
    yield "election name", snap.election, None, None
    if snap.issuer:
        yield "issuer", snap.issuer, None, None
    for c in snap.contests:
        yield f"contest {c.id} name", c.name, c.id, None
        for s in c.selections:
            yield f"contest {c.id} selection {s.id} name", s.name, c.id, None
            for m in s.members:
                yield f"contest {c.id} selection {s.id} candidate {m.id} name", m.name, c.id, None
    for p in snap.parties.values():
        yield f"party {p.id} name", p.name, None, p.id
        if p.abbreviation:
            yield f"party {p.id} abbreviation", p.abbreviation, None, p.id
    for co in snap.coalitions.values():
        yield f"coalition {co.id} name", co.name, None, co.id
        if co.abbreviation:
            yield f"coalition {co.id} abbreviation", co.abbreviation, None, co.id


def _contests_of_party(snap: Snapshot, party_id: str) -> list[str]:
    """The contests where a party (or a coalition, through its members) stands."""
    members = {party_id}
    coalition = snap.coalitions.get(party_id)
    if coalition is not None:
        members.update(coalition.party_ids)
    return [c.id for c in snap.contests if any(s.party_id in members for s in c.selections)]


def _findings_for(
    snap: Snapshot, check: str, contest_id: str | None, party_id: str | None, message: str
) -> Iterator[Finding]:
    """A party's or coalition's name is shown with every contest it stands in: one finding
    per such contest (the nationwide posts are held with any of them)."""
    if party_id is None:
        yield Finding(check, contest_id, message)
        return
    contests = _contests_of_party(snap, party_id)
    if not contests:
        yield Finding(check, None, message)
    for cid in contests:
        yield Finding(check, cid, message)


_UNKNOWN = object()


class _Answers:
    """`markup_in`'s answers for the values of the last two snapshots checked. Names repeat
    from one snapshot to the next, and the domain search is most of the gates' cost on a large
    feed (a fifth of a second per 20,000 contests); two generations bound the memory."""

    def __init__(self) -> None:
        self.current: dict[str, str | None] = {}
        self.previous: dict[str, str | None] = {}

    def roll(self) -> None:
        self.previous, self.current = self.current, {}

    def markup(self, value: str) -> str | None:
        found = self.current.get(value, _UNKNOWN)
        if found is _UNKNOWN:
            found = self.previous.get(value, _UNKNOWN)
            if found is _UNKNOWN:
                found = markup_in(value)
            self.current[value] = found  # type: ignore[assignment]
        return found  # type: ignore[return-value]


_ANSWERS = _Answers()


def _markup(snap: Snapshot) -> Iterator[Finding]:
    _ANSWERS.roll()
    for where, value, contest_id, party_id in _named_values(snap):
        what = _ANSWERS.markup(value)
        if what is not None:
            message = f"{where} {_clip(value)!r} holds {what}"
            yield from _findings_for(snap, "feed_markup", contest_id, party_id, message)
    for flag in snap.text_flags:
        message = f"{flag.field} held a {flag.problem} (removed before use)"
        yield from _findings_for(snap, "feed_markup", flag.contest_id, flag.party_id, message)


def _renamed(previous: Snapshot, new: Snapshot) -> Iterator[Finding]:
    def renamed(what: str, before: str, after: str) -> str:
        return f"{what} renamed from {_clip(before)!r} to {_clip(after)!r}"

    for after in new.contests:
        before = previous.contest(after.id)
        if before is None:
            continue
        if before.name != after.name:
            yield Finding(
                "renamed", after.id, renamed(f"contest {after.id}", before.name, after.name)
            )
        old = {s.id: s for s in before.selections}
        for s in after.selections:
            was = old.get(s.id)
            if was is None:
                continue
            if was.name != s.name:
                what = f"{after.name}: selection {s.id}"
                yield Finding("renamed", after.id, renamed(what, was.name, s.name))
            if was.members and s.members:
                names = {m.id: m.name for m in was.members}
                for m in s.members:
                    if m.id in names and names[m.id] != m.name:
                        what = f"{after.name}: candidate {m.id} of {s.name}"
                        yield Finding("renamed", after.id, renamed(what, names[m.id], m.name))
    for kind, before_map, after_map in (
        ("party", previous.parties, new.parties),
        ("coalition", previous.coalitions, new.coalitions),
    ):
        for pid, now in after_map.items():
            renamed_from = before_map.get(pid)
            if renamed_from is not None and renamed_from.name != now.name:
                message = renamed(f"{kind} {pid}", renamed_from.name, now.name)
                yield from _findings_for(new, "renamed", None, pid, message)


def _outcome(c: Contest) -> tuple[tuple[str, int], ...]:
    """Who won and how many seats each: the declared result, comparable across snapshots."""
    return tuple(sorted((s.id, s.seats or 1) for s in c.selections if s.winner or s.seats))


def _describe(c: Contest) -> str:
    winners = [s for s in c.selections if s.winner or s.seats]
    if not winners:
        return "no one"
    return ", ".join(f"{s.name} {s.seats}" if s.seats else s.name for s in winners)


def hold_reason(findings: list[Finding]) -> str:
    """The reason a held post shows: what is implausible, and what the operator can do."""
    first = "; ".join(f.message for f in findings[:3])
    more = f" (+{len(findings) - 3} more)" if len(findings) > 3 else ""
    return (
        f"{HOLD_PREFIX}: {first}{more}. A genuine correction? approve it (broadcaster outbox "
        "approve ID); if not, cancel it (broadcaster outbox cancel ID)"
    )
