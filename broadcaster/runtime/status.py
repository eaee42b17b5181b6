"""Health, from the database: for `broadcaster status`, `GET /healthz` and `GET /metrics`
(runtime/metrics.py).

Everything is read from the tables the daemon writes, so the same picture is available from the
command line while the daemon runs and from the daemon's own HTTP endpoints.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from broadcaster.core.config import Config
from broadcaster.delivery.budgets import account_budget
from broadcaster.domain.posts import ALL_STATES, HoldKind
from broadcaster.ingest.health import FeedHealth, feed_problems
from broadcaster.outbox.lease import leadership_report
from broadcaster.outbox.reports import night_report, sent_latencies
from broadcaster.outbox.state import State
from broadcaster.outbox.store import Store
from broadcaster.runtime.live_health import live_report
from broadcaster.runtime.preflight import runtime_problems


def collect_status(
    config: Config,
    store: Store | None = None,
    *,
    now: datetime | None = None,
    health: FeedHealth | None = None,
) -> dict[str, Any]:
    """Feed, outbox and accounts as plain data. `problems` says what degrades the service: the
    feed failing or stale (from `health`, the running daemon's, else the one it stored) and
    files the configuration names that are missing or unreadable."""
    own = store is None
    store = store or Store(config.database_url, file_mode=config.output.mode)
    now = now or datetime.now(UTC)
    tz = config.election.tz

    def local(moment: datetime | None) -> str | None:
        return moment.astimezone(tz).isoformat() if moment else None

    try:
        report = night_report(store)
        latency = sent_latencies(store, since=now - timedelta(hours=1))
        # Who publishes: the lease's holder and every instance seen lately, with its role.
        leadership = leadership_report(store, config.database.lease_seconds)
        accepted, rejected = store.snapshot_counts()
        state = State(store)
        if health is None:
            health = FeedHealth.from_dict(state.feed_health())
        template_problems = state.template_problems()
        findings = state.gate_findings()[-10:]
        implausible_held = store.count_held(HoldKind.GATE)
        live = live_report(store)  # the live results channel, when it has run
        accounts = []
        for account in config.accounts:
            pause = state.pause(account.name)
            waiting = state.waiting(account.name)
            budget = account_budget(store, account, now)
            accounts.append(
                {
                    "name": account.name,
                    "platform": account.platform,
                    "dry_run": account.dry_run,
                    "state": "paused" if pause else "active",
                    "reason": (pause.reason if pause else None)
                    or (waiting.reason if waiting else ""),
                    "budget_left": budget.remaining if budget.longest else None,
                    "next_slot": local(budget.next_slot) if budget.next_slot > now else None,
                }
            )
    finally:
        if own:
            store.close()
    last = report.last
    problems = [
        str(p)
        for p in (
            *feed_problems(health, config.service, now.timestamp()),
            *runtime_problems(config),
        )
    ]
    return {
        "now": local(now),
        "problems": problems,  # why /healthz is degraded; empty when all is well
        "feed_health": health.to_dict() if health else None,
        "database": config.database_url.split("://", 1)[0],
        "last_snapshot": {
            "name": last.name,
            "generated_at": local(last.generated_at),
            "received_at": local(last.received_at),
        }
        if last
        else None,
        "accepted": accepted,
        "rejected": rejected,
        "events": report.events,
        "recent_rejections": [
            {"name": r.name, "at": local(r.received_at), "error": r.error}
            for r in report.rejections
        ],
        "states": list(ALL_STATES),
        "outbox": report.outbox,
        "held": [{"id": h.id, "account": h.account, "reason": h.reason} for h in report.held],
        "template_problems": template_problems,
        "implausible": findings,  # recent plausibility findings (the last 10)
        "implausible_held": implausible_held,  # posts held by the gates, awaiting an operator
        "accounts": accounts,
        "latency": latency,
        "live": live,
        "leadership": leadership,
    }
