"""One poll cycle: bytes -> Snapshot -> Events -> PostIntents -> rendered posts in the outbox.

The pipeline owns the differ's state and keeps it in step with the database: the new state is
adopted only after the snapshot, its events and its posts have been committed together. A
snapshot that cannot be read is recorded as rejected and changes nothing else.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

from broadcaster.content.compose import Composer
from broadcaster.content.context import (
    event_context,
    shared_vars,
    snapshot_context,
    template_vars,
)
from broadcaster.content.samples import display_from
from broadcaster.core.clock import Clock
from broadcaster.core.config import Config
from broadcaster.domain.events import Event, EventKind
from broadcaster.domain.model import Snapshot
from broadcaster.domain.posts import HoldKind, NewPost, PostState
from broadcaster.domain.tally import compute_tally
from broadcaster.ingest import gates
from broadcaster.ingest.differ import (
    FINAL_TALLY,
    DiffRules,
    DiffState,
    diff,
    rules_from,
    tally_slot,
)
from broadcaster.ingest.gates import Finding
from broadcaster.ingest.parsers import FeedError, reader_for
from broadcaster.ingest.payload import SpoolUnreadable
from broadcaster.ingest.sources import Fetched, Source, SourceDown
from broadcaster.outbox.errors import database_outage, describe_error
from broadcaster.outbox.lease import LeaseLost
from broadcaster.outbox.state import State
from broadcaster.outbox.store import Store
from broadcaster.outbox.texts import StoredTexts
from broadcaster.planning.planner import plan

log = logging.getLogger(__name__)

CHUNK = 2000  # events rendered and written per step of a large cycle
LARGE_NIGHT = 1000  # contests from which the heap is settled after each snapshot (settle_heap)
LOGGED_FINDINGS = 20  # implausibilities logged one by one per snapshot; the rest are counted


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector: a large snapshot allocates millions of small objects
    that are all alive, and collecting while they are built more than doubles the cycle time."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def settle_heap() -> None:
    """One full collection, then freeze what survives (`gc.freeze`), so the collector's later
    passes look only at what is newer. Without it, on a large night a full pass over everything
    alive (the snapshots, the dispatcher's queues) came whenever enough had piled up, often in
    the middle of a dispatch step: at 20,000 seats, 35 passes of up to 0.57 s each. Run after a
    snapshot is applied, where the cycle is long anyway. What was frozen is unfrozen and
    collected again the next time, so garbage held in reference cycles waits one snapshot."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()


@dataclass
class CycleResult:
    """What one poll cycle did."""

    outcome: str  # accepted | rejected | unchanged | duplicate | down | waiting (backing off)
    name: str | None = None
    events: int = 0
    posts: int = 0
    error: str | None = None
    timings: dict[str, float] = field(default_factory=dict)
    snapshot: Snapshot | None = None
    findings: list[Finding] = field(default_factory=list)  # plausibility, hold or warn


def held_events(events: list[Event], holding: list[Finding]) -> dict[str, str]:
    """Event key -> why its posts are held: events of an implausible contest, and the
    nationwide ones (tally, majority) whenever anything is implausible."""
    if not holding:
        return {}
    by_contest: dict[str | None, list[Finding]] = {}
    for f in holding:
        by_contest.setdefault(f.contest_id, []).append(f)
    everything = by_contest.get(None, [])
    out = {}
    for event in events:
        if event.contest_id is None:
            reasons = holding
        else:
            reasons = by_contest.get(event.contest_id, []) + everything
        if reasons:
            out[event.key] = gates.hold_reason(reasons)
    return out


def _gated(post: NewPost, reason: str | None) -> NewPost:
    """The post with its event's gate hold applied. A post already held for a template problem
    has no text to approve yet: it keeps that hold and carries the gate's reason, so the fixed
    template's post is held for the operator, not sent unchecked."""
    if reason is None or post.state == PostState.CANCELLED:
        return post
    if post.text is None:
        return replace(post, gate_reason=reason)
    return replace(
        post, state=PostState.HELD, hold_reason=reason, hold_kind=HoldKind.GATE, gate_reason=reason
    )


def _finding_record(name: str, snapshot: Snapshot, f: Finding, action: str) -> dict[str, Any]:
    return {
        "snapshot": name,
        "at": snapshot.generated_at.isoformat(),
        "check": f.check,
        "contest": f.contest_id,
        "message": f.message,
        "action": action,
    }


def restore_state(store: Store, rules: DiffRules) -> DiffState:
    """The differ's state as of the last accepted snapshot in the database."""
    last = store.last_accepted()
    state = DiffState(previous=last[0] if last else None, announced=store.announced_outcomes())
    tally = store.last_event(EventKind.TALLY)
    if tally is not None:
        event, data = tally
        state = replace(
            state,
            last_tally=tuple((pid, n) for pid, n in data.get("signature", [])) or None,
            last_tally_slot=tally_slot(event.at, rules.tally_every) if rules.tally_every else None,
            tally_final=store.event_key_exists(FINAL_TALLY),
        )
    return state


class Pipeline:
    def __init__(self, config: Config, store: Store, *, clock: Clock, dry_run: bool) -> None:
        self.config = config
        self.store = store
        self.night = State(store)  # the outbox's typed state (self.state is the differ's)
        self.clock = clock
        self.dry_run = dry_run
        self.rules = rules_from(config)
        self._parse = reader_for(config)
        self.state = restore_state(store, self.rules)
        self.composer = Composer(config, dry_run=dry_run)
        self.display = display_from(config)
        self._last_fingerprint: str | None = None
        self._rerender_due = False  # held posts wait to be rendered again (maintain_templates)
        self._stored_texts = StoredTexts(config, store, self.composer)
        self.composer.preload()
        self._publish_template_problems()

    def resume(self) -> None:
        """Carry on from the database, as after a restart (an instance taking over from
        another that accepted snapshots meanwhile)."""
        self.state = restore_state(self.store, self.rules)
        self._last_fingerprint = None

    @property
    def last_source_name(self) -> str | None:
        last = self.store.last_accepted()
        return last[1] if last else None

    # -- the cycle --

    def poll(self, source: Source) -> CycleResult:
        """Fetch once and ingest what came; never raises for feed problems. Raises only when
        the database cannot be used (the same bytes are then read again next cycle)."""
        try:
            self.maintain_templates()
        except Exception as exc:
            if database_outage(exc):
                raise
            # Releasing held posts must never stop the feed from being read.
            log.exception("template maintenance failed: %s", describe_error(exc))
        if getattr(source, "backing_off", False):
            return CycleResult("waiting")  # the feed failed lately: no request this cycle
        try:
            fetched = source.fetch()
        except SourceDown as exc:
            log.warning("feed is down: %s", exc)
            return CycleResult("down", error=str(exc))
        if fetched is None:
            return CycleResult("unchanged")
        # Handed over, not kept here: the report's bytes (42 MB at 20,000 seats) can then go
        # as soon as they are parsed, before the snapshot is diffed and its posts rendered.
        handed = [fetched]
        del fetched
        try:
            return self._ingest(handed, source.description)
        except Exception:
            # Nothing was committed: the source must hand the same bytes over again next cycle
            # instead of answering "unchanged".
            source.forget()
            raise

    def ingest(self, fetched: Fetched, source: str) -> CycleResult:
        """Parse, check, diff, render and enqueue one snapshot; feed problems are results. Any
        unexpected error rejects the snapshot with the error (so the daemon moves on), except
        a database outage, which is raised so that the same bytes are tried again."""
        return self._ingest([fetched], source)

    def _ingest(self, handed: list[Fetched], source: str) -> CycleResult:
        fetched = handed.pop()
        try:
            read = self.read(fetched, source)
            if isinstance(read, CycleResult):
                return read
            fetched = replace(fetched, body=b"")  # parsed: only its name and fingerprint remain
            return self.apply(fetched, source, read[0], parse_time=read[1])
        except Exception as exc:
            # A spooled body unreadable is the local disk, not the snapshot: read it again.
            if database_outage(exc) or isinstance(exc, LeaseLost | SpoolUnreadable):
                raise
            log.exception(
                "snapshot %s could not be processed; rejecting it",
                fetched.name,
                extra={"snapshot": fetched.name},
            )
            return self._reject(fetched, source, f"unexpected error: {describe_error(exc)}")

    def read(self, fetched: Fetched, source: str) -> tuple[Snapshot, float] | CycleResult:
        """The snapshot in `fetched` (with the time parsing took), or why it will not be used."""
        t0 = time.perf_counter()
        if fetched.fingerprint == self._last_fingerprint or self.store.fingerprint_known(
            fetched.fingerprint
        ):
            self._last_fingerprint = fetched.fingerprint
            return CycleResult("duplicate", name=fetched.name)
        # The fingerprint is remembered once the snapshot is committed (accepted or rejected):
        # if anything fails before, the same bytes are tried again.
        try:
            with gc_paused():
                snapshot = self._parse(fetched.body)
            snapshot = self._check(snapshot)
        except FeedError as exc:
            return self._reject(fetched, source, exc.problem)
        return snapshot, time.perf_counter() - t0

    def apply(
        self, fetched: Fetched, source: str, snapshot: Snapshot, *, parse_time: float = 0.0
    ) -> CycleResult:
        """Diff an accepted snapshot against the last one; commit it with its events and posts."""
        with gc_paused():
            t1 = time.perf_counter()
            findings, recorded = self._gate(self.state.previous, snapshot, fetched.name)
            events, new_state = diff(self.state, snapshot, self.rules)
            t2 = time.perf_counter()
            existing = self.store.existing_event_keys(e.key for e in events) if events else set()
            fresh = [e for e in events if e.key not in existing]
            held = held_events(fresh, [f for f in findings if self._holds(f)])
            tally = compute_tally(snapshot, self.rules.majority_seats)
            shared = snapshot_context(
                snapshot,
                tally,
                election_name=self.config.election.name,
                issuer=self.config.election.issuer,
            )
            views = shared_vars(shared, self.config.election.timezone, self.display)
            render_time = 0.0
            added = 0
            ahead = self.config.templates.render_ahead
            # Every post is rendered before the transaction opens: on PostgreSQL it holds the
            # lock every writer of posts waits for, and the server ends one that goes quiet for
            # long (store.IDLE_IN_TRANSACTION_MS), which rendering between its statements would
            # make it do. In chunks, so a cycle with tens of thousands of events renders in
            # steps of a bounded size.
            prepared: list[tuple[list[tuple[Event, dict[str, Any]]], list[NewPost]]] = []
            for i in range(0, len(fresh), CHUNK):
                chunk = fresh[i : i + CHUNK]
                captured = [(e, event_context(e, snapshot)) for e in chunk]
                r0 = time.perf_counter()
                new_posts = self._render_all(captured, views, defer=len(fresh) > ahead, gated=held)
                if held:
                    new_posts = [_gated(p, held.get(p.event_key)) for p in new_posts]
                render_time += time.perf_counter() - r0
                prepared.append((captured, new_posts))
            with self.store.transaction() as conn:
                snapshot_id = self.store.insert_snapshot(
                    conn,
                    fingerprint=fetched.fingerprint,
                    source=source,
                    name=fetched.name,
                    snapshot=snapshot,
                    received_at=fetched.fetched_at,
                    shared=shared,
                )
                if recorded:
                    # With the snapshot, so a crash before the commit cannot record them twice.
                    self.night.add_gate_findings(recorded, conn)
                # One transaction, so a crash leaves all of it or none.
                for captured, new_posts in prepared:
                    ids = self.store.insert_events(conn, snapshot_id, captured)
                    added += self.store.insert_posts(
                        conn,
                        new_posts,
                        ids,
                        {e.key: e for e, _ in captured},
                        test_data=snapshot.is_test,
                    )
                # A standby that took over owns the feed from now on: all of this is rolled
                # back. Checked last, so the lease row is locked (FOR SHARE) only while this
                # commits: an instance frozen mid-ingest (a paused VM, SIGSTOP) must not hold
                # the lock its successor's takeover waits for.
                self.store.fenced(conn)
            self.state = new_state
            self._last_fingerprint = fetched.fingerprint
            self.night.start_night(self.clock.now())
            t4 = time.perf_counter()
        if len(snapshot.contests) >= LARGE_NIGHT:
            settle_heap()
        log.info(
            "accepted snapshot %s (generated %s, %s): %d new events, %d posts queued",
            fetched.name,
            snapshot.generated_at.isoformat(),
            snapshot.status.value,
            len(fresh),
            added,
            extra={"snapshot": fetched.name},
        )
        return CycleResult(
            "accepted",
            name=fetched.name,
            events=len(fresh),
            posts=added,
            snapshot=snapshot,
            findings=findings,
            timings={
                "parse": parse_time,
                "diff": t2 - t1,
                "render": render_time,
                "enqueue": (t4 - t2) - render_time,
            },
        )

    def _holds(self, finding: Finding) -> bool:
        return self.config.gates.action(finding.check) == "hold"

    def _gate(
        self, previous: Snapshot | None, snapshot: Snapshot, name: str
    ) -> tuple[list[Finding], list[dict[str, Any]]]:
        """Plausibility findings the configuration does not turn off, each logged, and their
        records to keep for `broadcaster status`."""
        findings = [
            f for f in gates.check(previous, snapshot) if self.config.gates.action(f.check) != "off"
        ]
        if not findings:
            return [], []
        recent: list[dict[str, Any]] = []
        for n, f in enumerate(findings):
            action = self.config.gates.action(f.check)
            if n == LOGGED_FINDINGS:
                log.warning(
                    "implausible snapshot %s: %d more findings (see broadcaster status)",
                    name,
                    len(findings) - n,
                    extra={"snapshot": name},
                )
            if n >= LOGGED_FINDINGS:
                recent.append(_finding_record(name, snapshot, f, action))
                continue
            log.warning(
                "implausible snapshot %s: %s (check %s: %s)",
                name,
                f.message,
                f.check,
                "its posts are held for an operator" if action == "hold" else "warning only",
                extra={"snapshot": name},
            )
            recent.append(_finding_record(name, snapshot, f, action))
        return findings, recent

    def _check(self, snapshot: Snapshot) -> Snapshot:
        if self.config.feed.is_test and not snapshot.is_test:
            snapshot = replace(snapshot, is_test=True)
        if not snapshot.contests:
            raise FeedError("the snapshot has no contests")
        prev = self.state.previous
        if prev is not None and snapshot.generated_at < prev.generated_at:
            raise FeedError(
                f"GeneratedDate {snapshot.generated_at.isoformat()} is older than the last "
                f"accepted snapshot's ({prev.generated_at.isoformat()})"
            )
        return snapshot

    def _reject(self, fetched: Fetched, source: str, problem: str) -> CycleResult:
        log.error(
            "rejected snapshot %s from %s: %s; keeping the last accepted state",
            fetched.name,
            source,
            problem,
            extra={"snapshot": fetched.name},
        )
        self.store.record_rejected(
            fetched.fingerprint, source, fetched.name, problem, fetched.fetched_at
        )
        self._last_fingerprint = fetched.fingerprint
        return CycleResult("rejected", name=fetched.name, error=problem)

    # -- rendering --

    def _render_all(
        self,
        captured: list[tuple[Event, dict[str, Any]]],
        views: dict[str, Any],
        *,
        defer: bool = False,
        gated: dict[str, str] | None = None,
    ) -> list[NewPost]:
        """The rows for every account's post of these events. With `defer` (a burst), rows
        are stored unrendered where that is safe (Composer.deferred); posts the gates hold
        are rendered now, since an operator approves their text."""
        contexts = dict((e.key, ctx) for e, ctx in captured)
        per_event: dict[str, dict[str, Any]] = {}
        memo: dict[Any, Any] = {}  # one render per event and template, whatever the accounts
        out: list[NewPost] = []
        is_test = bool(views["election"]["is_test"])
        for intent in plan((e for e, _ in captured), self.config.accounts):
            event = intent.event
            if defer and not (gated and event.key in gated):
                row = self.composer.deferred(
                    event, intent.account, intent.idempotency_key, is_test=is_test
                )
                if row is not None:
                    out.append(row)
                    continue
            variables = per_event.get(event.key)
            if variables is None:
                variables = template_vars(
                    event, contexts[event.key], views, timezone=self.config.election.timezone
                )
                per_event[event.key] = variables
            out.extend(
                self.composer.compose(
                    event, intent.account, variables, intent.idempotency_key, memo=memo
                )
            )
        return out

    # -- templates edited on a live system --

    def maintain_templates(self) -> int:
        """Hot reload (once per cycle): switch to edited templates that pass lint, then render
        again the posts that were held for a template problem. Returns posts released."""
        changed = self.composer.refresh()
        self._publish_template_problems()
        if not changed and not self._rerender_due:
            return 0
        # Until one pass ends: a database outage in the middle leaves it due for the next
        # cycle, though the templates will not change again.
        self._rerender_due = True
        released = self.rerender_held()
        self._rerender_due = False
        return released

    def rerender_held(self) -> int:
        """Render again every post held for a template problem; those that now work go out
        (or wait for an operator, where the plausibility gates held their event)."""
        released = 0
        accounts = {a.name: a for a in self.config.accounts}
        for row in self.store.held(HoldKind.TEMPLATE):
            account = accounts.get(row.account)
            if account is None or "#" in row.idempotency_key:
                continue
            try:
                made = self._stored_texts.texts(row.event_id, account, row.idempotency_key)
                rows = [_gated(r, row.gate_reason) for r in made]
                self.store.replace_held(row.id, rows)
            except Exception as exc:
                if database_outage(exc):
                    raise  # not the post's fault: the next cycle tries again
                # Not a template's error (those hold the post inside compose): a stored event
                # its templates cannot read, or a text the database refuses. It stays held;
                # the others are still released.
                log.error(
                    "post %d stays held: its text could not be made again from its stored "
                    "event: %s",
                    row.id,
                    describe_error(exc),
                    extra={"account": row.account},
                )
                continue
            if rows[0].state == PostState.PENDING:
                released += 1
                log.info("post %d released after a template fix", row.id)
        return released

    def _publish_template_problems(self) -> None:
        self.night.set_template_problems(self.composer.problems())
