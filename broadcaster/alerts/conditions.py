"""What raises an alert: each function looks at the outbox and the night's state and returns the
alerts that hold now, each with the command (or console page) that resolves it. They read and
never change anything; the alerter decides what is news."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from broadcaster.alerts.model import Alert
from broadcaster.core.config import Config
from broadcaster.domain.model import ResultsStatus
from broadcaster.ingest.health import FeedHealth
from broadcaster.outbox.state import FeedMark, State
from broadcaster.outbox.store import HoldKind, Store

# Hold kinds that need an operator and what each one means.
HELD = {
    HoldKind.GATE: "held by a plausibility or feed-text gate",
    HoldKind.TEMPLATE: "held: their template failed",
    HoldKind.CARD: "held: their result card could not be drawn",
    HoldKind.SECRET: "held: their text holds a secret value (never sent)",
    HoldKind.TEST_DATA: "held: test data bound for a real account",
}
LIVE_DOWN = ("failed", "reconnecting")
PACING = "pacing"  # the planner's reason when it spreads a budget over the night (planning/)
SYSTEM = (None, "broadcaster")  # who a pause the system made is by (delivery/breaker.py)
LIVE_STALE = 30.0  # seconds without a report from a running live channel: it stopped
_COMMAND = re.compile(r"`(broadcaster [^`]+)`")


def _ids(rows: list[Any]) -> str:
    return " ".join(str(r.id) for r in rows[:20])


def _resolve_held(kind: HoldKind, rows: list[Any]) -> str:
    ids = _ids(rows)
    if kind is HoldKind.GATE:
        return (
            "check each finding against the official results, then `broadcaster outbox "
            f"approve ID` to post it or `broadcaster outbox cancel ID` (held: {ids})"
        )
    if kind is HoldKind.TEMPLATE:
        return (
            "fix the template named above (`broadcaster templates lint` lists every problem); "
            "the posts are rendered and sent by themselves once it passes"
        )
    if kind is HoldKind.CARD:
        return f"fix the card's problem above, then `broadcaster outbox approve {ids}`"
    if kind is HoldKind.SECRET:
        return (
            "find how the secret reached the text (a template or the feed) and remove it, "
            f"then `broadcaster outbox cancel {ids}`"
        )
    return f"`broadcaster outbox cancel {ids}` (a real account never gets test data)"


def held_posts(store: Store) -> list[Alert]:
    """Posts that wait for a person: one alert per kind of hold, listing the posts."""
    alerts = []
    for kind, meaning in HELD.items():
        rows = store.held(kind)
        if not rows:
            continue
        details = tuple(
            f"#{r.id} {r.account}, {r.event_key}: {r.hold_reason or 'no reason recorded'}"
            for r in rows
        )
        alerts.append(
            Alert(
                kind="held",
                subject=kind.value,
                summary=f"{len(rows)} post{'s' if len(rows) != 1 else ''} {meaning}",
                details=details,
                resolve=_resolve_held(kind, rows),
                page=f"/posts/{rows[0].id}",
                facts=tuple(str(r.id) for r in rows),
            )
        )
    return alerts


def posts_in_doubt(store: Store) -> list[Alert]:
    """Posts that may be on their platform: nobody can tell but a person looking."""
    rows = store.held(HoldKind.IN_DOUBT)
    if not rows:
        return []
    first = rows[0].id
    return [
        Alert(
            kind="in_doubt",
            subject="posts",
            summary=f"{len(rows)} post{'s' if len(rows) != 1 else ''} may or may not be on "
            "the platform",
            details=tuple(
                f"#{r.id} {r.account} ({r.platform}), {r.event_key}: {r.hold_reason}" for r in rows
            ),
            resolve=(
                "look at the account: if the post is there, `broadcaster outbox mark-sent "
                f"{first} --url URL`; if not, `broadcaster outbox approve {first}` sends it"
            ),
            page=f"/posts/{first}",
            facts=tuple(str(r.id) for r in rows),
        )
    ]


def paused_accounts(config: Config, state: State) -> list[Alert]:
    """Accounts the system paused (the circuit breaker, a refused token or missing rights);
    an operator's own pause is no news to the operators."""
    alerts = []
    for account in config.accounts:
        pause = state.pause(account.name)
        if pause is None or pause.by not in SYSTEM:
            continue
        commands = _COMMAND.findall(pause.reason)
        resolve = " or ".join(f"`{c}`" for c in dict.fromkeys(commands)) or (
            f"fix the cause above, then `broadcaster resume {account.name}`"
        )
        by_itself = (
            f"; it tries again by itself at {pause.until.isoformat(timespec='seconds')}"
            if pause.until
            else ""
        )
        alerts.append(
            Alert(
                kind="paused",
                subject=account.name,
                summary=f"account {account.name} ({account.platform}) is paused{by_itself}",
                details=(pause.reason,),
                resolve=resolve,
                page="/accounts",
                facts=(_without_numbers(pause.reason),),
            )
        )
    return alerts


def budgets_spent(
    config: Config, store: Store, state: State, now: datetime, minutes: float
) -> list[Alert]:
    """Accounts whose posts wait `minutes` or more before the night's end because a budget
    window is spent (or the platform said to wait), not because the planner paces them."""
    started = state.night_started()
    if started is None:
        return []
    night_ends = started + timedelta(hours=config.planner.night_hours)
    if now >= night_ends:
        return []
    alerts = []
    for account in config.accounts:
        waiting = state.waiting(account.name)
        if waiting is None or waiting.until is None or waiting.reason.startswith(PACING):
            continue  # pacing spreads a budget that lasts: only a spent one is news
        wait = (waiting.until - now).total_seconds()
        if wait < minutes * 60 or not store.due_posts(now, 1, accounts=[account.name]):
            continue
        alerts.append(
            Alert(
                kind="budget",
                subject=account.name,
                summary=(
                    f"account {account.name} ({account.platform}): posts wait "
                    f"{round(wait / 60)} min for its budget, before the night's end"
                ),
                details=(
                    f"{waiting.reason}; next post at {waiting.until.isoformat(timespec='minutes')}",
                ),
                resolve=(
                    "nothing, if this pace is expected (waiting calls go out merged into "
                    "summaries); if the platform allows more, raise the account's `quota` in "
                    "[[accounts]] and restart; `broadcaster status` shows every budget"
                ),
                page="/accounts",
                facts=(_without_numbers(waiting.reason),),
            )
        )
    return alerts


def feed_quiet(
    config: Config,
    store: Store,
    state: State,
    mark: FeedMark | None,
    now: datetime,
    minutes: float,
) -> list[Alert]:
    """No new snapshot accepted for `minutes` (counted from the first one the alerter saw, or
    from its start), with the last poll's outcome: down, unchanged or rejected. A feed whose
    last snapshot is certified has said its last word: its silence is no news."""
    if mark is None:
        return []
    quiet = (now - mark.at).total_seconds()
    if quiet < minutes * 60:
        return []
    last = store.last_accepted() if mark.snapshot_id else None
    if last is not None and last[0].status is ResultsStatus.CERTIFIED:
        return []
    health = FeedHealth.from_dict(state.feed_health())
    outcome = "no poll recorded"
    if health is not None and health.last_outcome:
        outcome = f"last poll: {health.last_outcome}"
        if health.last_error:
            outcome += f" ({health.last_error[:200]})"
    return [
        Alert(
            kind="feed_quiet",
            subject="feed",
            summary=f"no new snapshot for {round(quiet / 60)} min",
            details=(f"{outcome}; source {_where(config.feed.source)}",),
            resolve=(
                f"`broadcaster feed check {_where(config.feed.source)}` reads it as the daemon "
                "does; `broadcaster status` shows the polls"
            ),
            page="/",
            facts=(str(mark.snapshot_id),),
        )
    ]


def feed_rejected(config: Config, state: State, times: int) -> list[Alert]:
    """The feed's snapshot rejected `times` polls in a row (the last good one stays in use)."""
    health = FeedHealth.from_dict(state.feed_health())
    if health is None or health.last_outcome != "rejected" or health.failures < times:
        return []
    why = (health.rejected or health.last_error or "no reason recorded")[:300]
    return [
        Alert(
            kind="feed_rejected",
            subject="feed",
            summary=f"the feed's snapshot was rejected {health.failures} polls in a row",
            details=(why,),
            resolve=(
                f"`broadcaster feed check {_where(config.feed.source)}` shows the problem; ask "
                "the feed's publisher to fix it (the last good snapshot stays in use)"
            ),
            page="/",
            facts=(_without_numbers(why),),
        )
    ]


def live_down(config: Config, state: State, now: datetime, seconds: float) -> list[Alert]:
    """Live channel destinations failed or reconnecting for `seconds`, or the whole channel no
    longer reporting while it should run."""
    if not config.live.enabled:
        return []
    report = state.live_status()
    if not report:
        return []
    epoch = now.timestamp()
    updated = float(report.get("updated_at") or 0)
    if report.get("running") is False or epoch - updated > LIVE_STALE:
        return [
            Alert(
                kind="live_down",
                subject="channel",
                summary="the live results channel is not running",
                details=(f"last report {round(epoch - updated)} s ago",),
                resolve="restart it (`broadcaster run` starts it with [live] enabled = true); "
                "`broadcaster status` shows its last report",
                page="/",
                facts=("stopped",),
            )
        ]
    alerts = []
    for name, dest in sorted((report.get("destinations") or {}).items()):
        state_now = dest.get("state")
        since = float(dest.get("since") or epoch)
        if state_now not in LIVE_DOWN or epoch - since < seconds:
            continue
        reason = dest.get("reason") or dest.get("last_error") or "no reason given"
        alerts.append(
            Alert(
                kind="live_down",
                subject=name,
                summary=(
                    f"live destination {name} ({dest.get('kind')}) {state_now} for "
                    f"{round(epoch - since)} s"
                ),
                details=(str(reason)[:300],),
                resolve=(
                    "check the destination's stream key and the platform's live dashboard; "
                    "`broadcaster status` shows every destination; the others go on"
                ),
                page="/",
                facts=(str(state_now),),
            )
        )
    return alerts


def _without_numbers(text: str) -> str:
    """A reason as a fact: counts and times left out, so "5 failures in a row" and "6
    failures in a row" are the same news."""
    return re.sub(r"\d+", "#", text)[:300]


def _where(source: str) -> str:
    """A feed source without credentials (a URL may carry a user and password)."""
    if "://" in source and "@" in source.split("://", 1)[1].split("/", 1)[0]:
        scheme, rest = source.split("://", 1)
        return f"{scheme}://{rest.split('@', 1)[1]}"
    return source
