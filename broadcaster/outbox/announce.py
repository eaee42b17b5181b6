"""Announcements: an operator's own post ("results from Region X are delayed") for chosen accounts.

It is posted as written, without a template, but otherwise like every other post: one event of
kind `announcement` and one outbox row per account, written in one transaction with the audit
entry, then sent by the dispatcher under the account's budget and pacing, held first where the
account requires approval, refused when it carries a secret or does not fit the platform.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from broadcaster.core.config import AccountConfig, Config
from broadcaster.core.logs import holds_secret
from broadcaster.domain.events import Event, EventKind
from broadcaster.domain.limits import shorten
from broadcaster.outbox import audit
from broadcaster.outbox.store import DatabaseMode, HoldKind, NewPost, PostState, Store
from broadcaster.planning.planner import idempotency_key
from broadcaster.publishers import capabilities_for, text_limits

MAX_TEXT = 5000  # longer than any platform takes; a bound on what is stored
NONCE = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
_UNIT = {"chars": "characters", "utf16": "UTF-16 units", "x-weighted": "weighted characters"}


class AnnouncementError(ValueError):
    """The announcement cannot be made; the message says why (nothing was stored)."""


@dataclass(frozen=True, slots=True)
class Fit:
    """How an announcement's text measures on one account's platform."""

    account: str
    platform: str
    count: int
    limit: int
    unit: str
    problem: str | None = None  # why it cannot go to this account, if it cannot


def clean_text(text: str) -> str:
    """The text as it will be posted: NFC, newlines kept, other control and bidi-override
    characters removed (an operator's paste can carry them invisibly)."""
    text = unicodedata.normalize("NFC", text.replace("\r\n", "\n").replace("\r", "\n"))
    kept = []
    for ch in text:
        category = unicodedata.category(ch)
        if ch == "\n" or not (
            category == "Cc" or (category == "Cf" and ch not in "\u200b\u200c\u200d")
        ):
            kept.append(ch)
    return "".join(kept).strip()


def measure(config: Config, text: str, names: Sequence[str]) -> list[Fit]:
    """The text's length on each named account, counted the platform's way, and what stops it."""
    accounts = {a.name: a for a in config.accounts}
    text = clean_text(text)
    fits = []
    for name in names:
        account = accounts.get(name)
        if account is None:
            fits.append(Fit(name, "?", 0, 0, "", f"no account {name!r} in the configuration"))
            continue
        limit, _ = text_limits(account.platform, config.limits)
        count = limit.count(text)
        problem = None
        if capabilities_for(account.platform).requires_media:
            problem = f"{account.platform} posts need an image; an announcement is text only"
        elif count > limit.limit:
            problem = f"{count} of {limit.limit} {_UNIT[limit.counter]}: too long"
        fits.append(Fit(name, account.platform, count, limit.limit, _UNIT[limit.counter], problem))
    return fits


def planned_dry_run(config: Config, store: Store, account: AccountConfig) -> bool:
    """The mode the account's posts are planned in: as its newest post was (the daemon may run
    with --dry-run); before any, a rehearsal's database means dry run, else the account's own
    setting. A post planned in the other mode is never sent, so a wrong guess fails safe."""
    seen = store.planned_dry_run(account.name)
    if seen is not None:
        return seen
    if store.mode() == DatabaseMode.REHEARSAL:
        return True
    return account.dry_run or account.platform == "dryrun"


@dataclass(frozen=True, slots=True)
class Announcement:
    event_key: str
    post_ids: list[int]


def announce(
    config: Config,
    store: Store,
    text: str,
    accounts: Sequence[str],
    *,
    actor: str,
    nonce: str,
    now: datetime | None = None,
) -> Announcement:
    """Queue `text` for each of `accounts`, in one transaction with its audit entry. `nonce`
    names the announcement: sending the same form twice adds nothing the second time."""
    text = clean_text(text)
    if not text:
        raise AnnouncementError("the announcement is empty")
    if len(text) > MAX_TEXT:
        raise AnnouncementError(f"the announcement is {len(text)} characters; {MAX_TEXT} at most")
    if not NONCE.match(nonce):
        raise AnnouncementError("the form is stale; open the announcement page again")
    if not accounts:
        raise AnnouncementError("choose at least one account")
    if holds_secret(text):
        raise AnnouncementError(
            "the text contains a secret value (a token or key this configuration uses); "
            "nothing was saved"
        )
    problems = [f"{f.account}: {f.problem}" for f in measure(config, text, accounts) if f.problem]
    if problems:
        raise AnnouncementError("; ".join(problems))
    last = store.last_snapshot_ref()
    if last is None:
        raise AnnouncementError(
            "no snapshot has been accepted yet: an announcement belongs to the night's feed, "
            "so it can be made once the first snapshot is in"
        )
    snapshot_id, feed_time = last
    by_name = {a.name: a for a in config.accounts}
    # Its time on the feed's clock: now, or the latest snapshot's time when that is later (a
    # rehearsal of a recorded night runs on the recording's clock).
    now = max(now or datetime.now(UTC), feed_time or datetime.min.replace(tzinfo=UTC))
    event = Event(
        key=f"announcement/{nonce}",
        kind=EventKind.ANNOUNCEMENT,
        at=now,
        data={"text": text, "by": actor, "accounts": list(accounts)},
    )
    rows = []
    for name in dict.fromkeys(accounts):
        account = by_name[name]
        _, title_limit = text_limits(account.platform, config.limits)
        held = account.require_approval
        rows.append(
            NewPost(
                idempotency_key=idempotency_key(event.key, account.platform, account.name),
                event_key=event.key,
                account=account.name,
                platform=account.platform,
                text=text,
                media=(),
                dry_run=planned_dry_run(config, store, account),
                state=PostState.HELD if held else PostState.PENDING,
                hold_reason="awaiting approval" if held else None,
                hold_kind=HoldKind.APPROVAL if held else None,
                title=shorten(text.split("\n", 1)[0], title_limit) if title_limit else None,
            )
        )
    with store.transaction() as conn:
        ids = store.insert_events(conn, snapshot_id, [(event, {})])
        added = store.insert_posts(conn, rows, ids, {event.key: event}, test_data=False)
        if added:
            audit.record(
                conn,
                actor,
                "announce",
                f"event {event.key}",
                f"to {', '.join(r.account for r in rows)}: {text}",
                at=now,
            )
    post_ids = []
    for row in rows:
        stored = store.post_by_key(row.idempotency_key)
        if stored is not None:
            post_ids.append(int(stored.id))
    return Announcement(event.key, post_ids)
