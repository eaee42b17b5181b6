"""The alerter: once per cycle, what holds now against what was already said, and the news sent.

An alert about a thing (`kind:subject`) is news when the thing is new, came back after it had
cleared, or has a fact the last alert had not (a newly held post); news waits until the kind's
`[alerting] <kind> every` seconds have passed since the last alert about that thing. A
destination that failed is tried again (with a growing pause) until it has the alert, without
sending it twice to the others. The records live in the database, so a restart neither repeats
an alert nor forgets one; a cleared thing's record is kept a day so a flapping condition stays
within its interval.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

from broadcaster.alerts import conditions
from broadcaster.alerts.destinations import AlertNotSent, Destination, build
from broadcaster.alerts.model import Alert, Context
from broadcaster.core.clock import Clock
from broadcaster.core.config import Config
from broadcaster.outbox.state import AlertRecord, FeedMark, State
from broadcaster.outbox.store import Store

log = logging.getLogger(__name__)

FORGET_AFTER = timedelta(days=1)  # a cleared thing's record is kept this long
RETRY_FIRST = 30.0  # seconds before a failed destination is tried again; doubles to RETRY_MAX
RETRY_MAX = 600.0


class Alerter:
    def __init__(
        self,
        config: Config,
        store: Store,
        *,
        clock: Clock,
        dry_run: bool,
        destinations: Sequence[Destination] | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.state = State(store)
        self.clock = clock
        self.dry_run = dry_run
        workdir = config.path(config.output.posts) or Path("posts.jsonl")
        self.destinations = (
            list(destinations) if destinations is not None else build(config, clock, workdir.parent)
        )
        self.started = clock.now()
        self.pushed: list[Alert] = []
        self.failures: dict[str, tuple[int, datetime]] = {}  # destination -> (count, retry at)

    def push(self, alert: Alert) -> None:
        """Raise a one-off alert on the next run (a standby taking over: the failover code)."""
        self.pushed.append(alert)

    # -- what holds now --

    def current(self, now: datetime) -> list[Alert]:
        """Every alert that holds now, for the kinds switched on."""
        rules = self.config.alerting
        found: list[Alert] = []
        if rules.held.enabled:
            found += conditions.held_posts(self.store)
        if rules.in_doubt.enabled:
            found += conditions.posts_in_doubt(self.store)
        if rules.paused.enabled:
            found += conditions.paused_accounts(self.config, self.state)
        if rules.budget.enabled:
            found += conditions.budgets_spent(
                self.config, self.store, self.state, now, rules.budget.minutes
            )
        mark = self._feed_mark(now)
        if rules.feed_quiet.enabled:
            found += conditions.feed_quiet(
                self.config, self.store, self.state, mark, now, rules.feed_quiet.minutes
            )
        if rules.feed_rejected.enabled:
            found += conditions.feed_rejected(self.config, self.state, rules.feed_rejected.times)
        if rules.live_down.enabled:
            found += conditions.live_down(self.config, self.state, now, rules.live_down.seconds)
        pushed, self.pushed = self.pushed, []
        found += [a for a in pushed if rules.rule(a.kind).enabled]
        return found

    def _feed_mark(self, now: datetime) -> FeedMark:
        """The newest accepted snapshot and when it was first seen; a mark from before this
        process started counts from the start (the daemon was down, not the feed)."""
        ref = self.store.last_snapshot_ref()
        if ref is None:
            return FeedMark(0, self.started)  # nothing yet: quiet since this process started
        mark = self.state.feed_mark()
        if mark is None or mark.snapshot_id != ref[0]:
            mark = FeedMark(ref[0], now)
        elif mark.at < self.started:
            mark = FeedMark(ref[0], self.started)
        self.state.set_feed_mark(mark)
        return mark

    # -- what is news, and sending it --

    def run_once(self) -> list[tuple[str, Alert]]:
        """Send what is news; returns (destination, alert) for each delivery (for tests and
        `alerts test`). Never raises for a destination's failure."""
        now = self.clock.now()
        alerts = self.current(now)
        records = self.state.alert_records()
        delivered: list[tuple[str, Alert]] = []
        seen: set[str] = set()
        for alert in alerts:
            seen.add(alert.key)
            record = records.get(alert.key)
            every = timedelta(seconds=self.config.alerting.rule(alert.kind).every)
            news = record is None or not record.active or bool(set(alert.facts) - set(record.facts))
            if news and record is not None and now - record.sent_at < every:
                continue  # too soon after the last alert about this thing: it waits
            wanted = [d for d in self.destinations if d.wants(alert.kind)]
            if news:
                log.warning("ALERT %s: %s", alert.key, alert.summary)
                targets, have = wanted, tuple[str, ...]()
            else:
                assert record is not None
                targets = [d for d in wanted if d.name not in record.delivered]
                have = record.delivered
            sent = self._send(alert, targets, now)
            delivered += [(name, alert) for name in sent]
            if news and targets and not sent:
                continue  # nobody has it: still news next time
            if news or sent:
                records[alert.key] = AlertRecord(
                    facts=alert.facts,
                    sent_at=now if news else record.sent_at,  # type: ignore[union-attr]
                    delivered=tuple(dict.fromkeys((*have, *sent))),
                )
            elif record is not None and record.facts != alert.facts:
                # Some facts cleared (posts released): forget them, so they are news if back.
                records[alert.key] = replace(record, facts=alert.facts)
        for key, record in list(records.items()):
            if key in seen:
                continue
            if record.active:
                records[key] = replace(record, active=False)
            elif now - record.sent_at > FORGET_AFTER:
                del records[key]
        self.state.set_alert_records(records)
        return delivered

    def _send(self, alert: Alert, targets: Sequence[Destination], now: datetime) -> list[str]:
        ctx = self.context(now)
        sent = []
        for dest in targets:
            failures, retry_at = self.failures.get(dest.name, (0, now))
            if retry_at > now:
                continue
            try:
                dest.send(alert, ctx)
            except AlertNotSent as exc:
                pause = min(RETRY_MAX, RETRY_FIRST * 2**failures)
                self.failures[dest.name] = (failures + 1, now + timedelta(seconds=pause))
                log.error(
                    "alert %s not sent to %s (tried again in %.0f s): %s",
                    alert.key,
                    dest.name,
                    pause,
                    exc,
                )
                continue
            except Exception:  # a destination's bug must never stop the daemon
                self.failures[dest.name] = (failures + 1, now + timedelta(seconds=RETRY_MAX))
                log.exception("alert %s: destination %s failed", alert.key, dest.name)
                continue
            self.failures.pop(dest.name, None)
            sent.append(dest.name)
            log.info("alert %s sent to %s", alert.key, dest.name)
        return sent

    def context(self, now: datetime) -> Context:
        last = self.store.last_accepted()
        election = self.config.election.name or (last[0].election if last else None)
        return Context(
            election=election or "election",
            mode="DRY RUN" if self.dry_run else "LIVE",
            console_url=self.config.alerting.console_url,
            at=now.astimezone(self.config.election.tz),
        )

    def close(self) -> None:
        for dest in self.destinations:
            dest.close()
