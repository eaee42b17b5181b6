"""An alert, and how it reads in a chat, an email and a webhook's JSON."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from broadcaster.core.logs import redact

MAX_DETAILS = 10  # lines listed in one alert; the rest are counted
MAX_TEXT = 3500  # characters: well inside a Telegram message (4,096 UTF-16 units)

TITLES = {
    "held": "posts held",
    "paused": "account paused",
    "budget": "budget spent early",
    "in_doubt": "posts in doubt",
    "feed_quiet": "feed quiet",
    "feed_rejected": "feed rejected",
    "live_down": "live destination down",
    "standby": "standby took over",
}


@dataclass(frozen=True, slots=True)
class Alert:
    """One thing the operators must know. `facts` are what make it news: a later alert about
    the same `kind:subject` goes out only when it has a fact the last one had not (a newly held
    post, another pause reason) and the kind's minimum interval has passed."""

    kind: str  # one of core.config.ALERT_KINDS
    subject: str  # what it is about: an account, "feed", a live destination, a hold kind
    summary: str  # one line: what happened
    details: tuple[str, ...] = ()  # a line per post, or the reason
    resolve: str = ""  # the exact command(s) that resolve it
    page: str | None = None  # the console page that resolves it (a path)
    facts: tuple[str, ...] = field(default=())

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.subject}"


@dataclass(frozen=True, slots=True)
class Context:
    """What every alert says about where it comes from."""

    election: str
    mode: str  # "LIVE" or "DRY RUN"
    console_url: str | None = None
    at: datetime | None = None

    def link(self, page: str | None) -> str | None:
        if page is None:
            return None
        return f"{self.console_url.rstrip('/')}{page}" if self.console_url else page


def text(alert: Alert, ctx: Context) -> str:
    """The alert as plain text (a chat message, an email body), masked of every secret."""
    head = f"broadcaster {ctx.mode}: {TITLES.get(alert.kind, alert.kind)} ({ctx.election})"
    lines = [head, alert.summary]
    shown = alert.details[:MAX_DETAILS]
    lines += [f"  {d}" for d in shown]
    if len(alert.details) > len(shown):
        lines.append(f"  ... and {len(alert.details) - len(shown)} more")
    if alert.resolve:
        lines.append(f"To resolve: {alert.resolve}")
    link = ctx.link(alert.page)
    if link:
        lines.append(f"Console: {link}")
    if ctx.at is not None:
        lines.append(f"At {ctx.at.isoformat(timespec='seconds')}")
    body = redact("\n".join(lines))
    return body if len(body) <= MAX_TEXT else body[: MAX_TEXT - 1] + "…"


def subject_line(alert: Alert, ctx: Context) -> str:
    """An email's subject."""
    return redact(f"[broadcaster {ctx.mode}] {alert.summary}")[:200]


def payload(alert: Alert, ctx: Context) -> dict[str, Any]:
    """A webhook's JSON: `text` for chat receivers (Slack, Teams), the fields for the rest."""
    return {
        "text": text(alert, ctx),
        "source": "broadcaster",
        "kind": alert.kind,
        "subject": redact(alert.subject),
        "summary": redact(alert.summary),
        "details": [redact(d) for d in alert.details[:MAX_DETAILS]],
        "resolve": redact(alert.resolve),
        "console": ctx.link(alert.page),
        "election": ctx.election,
        "mode": ctx.mode,
        "at": ctx.at.isoformat(timespec="seconds") if ctx.at else None,
    }


def standby_took_over(
    instance: str, previous: str | None = None, epoch: int | None = None
) -> Alert:
    """The alert a standby instance raises when it takes the lease over (the failover code
    calls `Alerter.push` with it): who runs the night now, and how to check it."""
    before = f" from {previous}" if previous else ""
    at = f" (lease epoch {epoch})" if epoch is not None else ""
    return Alert(
        kind="standby",
        subject=instance,
        summary=f"the standby {instance} took over{before}{at}",
        resolve=(
            f"find out why the leader stopped; on {instance}, `broadcaster status` shows the "
            "night resuming from the database"
        ),
        page="/",
        facts=(f"{instance}:{epoch}",),
    )
