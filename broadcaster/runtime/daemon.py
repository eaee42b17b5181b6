"""The daemon: APScheduler polls the feed and dispatches the outbox until SIGTERM or SIGINT.

A signal lets the step in progress finish (the current snapshot is committed, the current post is
marked sent) and then stops; everything else is in the database, so a restart resumes exactly
where this run ended.

Several daemons may run on one PostgreSQL database: the one holding the lease (runtime/
leadership.py, outbox/lease.py) polls, publishes and alerts; the others stand by with their
templates and publishers ready, and the first to take the lease over carries on from the
database exactly as a restart would. On SQLite a second daemon on the same file is refused.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any, Protocol

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.blocking import BlockingScheduler

from broadcaster.alerts.alerter import Alerter
from broadcaster.alerts.model import standby_took_over
from broadcaster.core import failpoints
from broadcaster.core.clock import WallClock
from broadcaster.core.config import Config, ConfigError
from broadcaster.core.paths import sqlite_file
from broadcaster.core.secrets import Secrets, register_config_secrets
from broadcaster.delivery.cards import CardMaker
from broadcaster.delivery.dispatcher import Dispatcher, publisher_env
from broadcaster.delivery.videos import ShortSource, VideoMaker, wants_videos
from broadcaster.ingest.health import FeedHealth
from broadcaster.ingest.sources import make_source
from broadcaster.outbox.errors import describe_error
from broadcaster.outbox.lease import (
    InstanceRefused,
    Lease,
    LeaseLost,
    SQLiteInstanceLock,
    default_instance,
    display_name,
)
from broadcaster.outbox.schema import DatabaseUnusable
from broadcaster.outbox.state import State
from broadcaster.outbox.store import DatabaseMode, ModeMismatch, Store, require_mode
from broadcaster.publishers.http import set_send_gate
from broadcaster.runtime.cycle import Pipeline
from broadcaster.runtime.leadership import Leadership
from broadcaster.runtime.preflight import preflight
from broadcaster.runtime.service import HealthServer
from broadcaster.runtime.status import collect_status
from broadcaster.runtime.status_server import StatusSocket

log = logging.getLogger(__name__)


def refuse_test_data(config: Config, store: Store, *, dry_run: bool) -> None:
    """Test data never reaches a real account: refuse to start when the feed is (or was last)
    test data and a real account has not explicitly allowed test posts."""
    if dry_run:
        return
    last = store.last_accepted()
    is_test = config.feed.is_test or (last is not None and last[0].is_test)
    if not is_test:
        return
    refusing = [a.name for a in config.accounts if not a.dry_run and not a.allow_test_posts]
    if refusing:
        raise ConfigError(
            f"the feed is test data ({'[feed] is_test' if config.feed.is_test else 'IsTest'}) and "
            f"these accounts are real: {', '.join(refusing)}. Run with --dry-run, or set "
            "allow_test_posts = true on an account meant to receive test posts"
        )


class Companion(Protocol):
    """Something run beside the daemon on its database (the operator console, the live
    channel): started once the daemon is ready, stopped when it stops. The command that starts
    the daemon chooses them, so the daemon itself knows no web framework or video encoder."""

    name: str

    def start(self, store: Store, stop: threading.Event) -> None: ...

    def stop(self) -> None: ...


# Makes the short videos' source on the daemon's database (broadcaster/live/shorts.py's
# StoreShorts): handed in by the command, so the daemon itself loads no video encoder.
ShortsFactory = Callable[[Config, Store], ShortSource]


class Daemon:
    def __init__(
        self,
        config: Config,
        *,
        dry_run: bool,
        companions: Sequence[Companion] = (),
        shorts: ShortsFactory | None = None,
    ) -> None:
        self.config = config
        self.dry_run = dry_run
        self.companions = list(companions)
        secrets = self.secrets = Secrets(config.path(config.secrets.file))
        problems = preflight(config, secrets=secrets)
        if problems:
            raise ConfigError("\n".join(str(p) for p in problems))
        self.stop = threading.Event()
        # Every secret the configuration can reach, before anything is logged or sent: no log
        # line shows one and no post carrying one goes out.
        register_config_secrets(config)
        self.instance_lock: SQLiteInstanceLock | None = None  # taken by run()
        try:
            self.store = Store(config.database_url, file_mode=config.output.mode)
        except DatabaseUnusable as exc:
            raise ConfigError(str(exc)) from None
        try:
            require_mode(self.store, DatabaseMode.REHEARSAL if dry_run else DatabaseMode.LIVE)
        except ModeMismatch as exc:
            self.store.close()
            raise ConfigError(str(exc)) from None
        database = config.database
        lease = Lease(
            self.store,
            database.instance or default_instance(),
            seconds=database.lease_seconds,
        )
        # From here every claim, outcome and accepted snapshot checks the lease (the fence).
        self.store.fence = lease.check
        self.leadership = Leadership(
            lease, renew_seconds=database.renew_seconds, stop=self.stop, on_active=self._wake
        )
        self._ready_epoch: int | None = None
        self._takeover = threading.Lock()
        self.clock = WallClock()
        posts_path = config.path(config.output.posts) or Path("posts.jsonl")
        env = publisher_env(config, self.store, self.clock, posts_path)
        self.pipeline = Pipeline(config, self.store, clock=self.clock, dry_run=dry_run)
        self.source = make_source(
            config.feed,
            config.base_dir,
            resume_after=self.pipeline.last_source_name,
            secrets=secrets,
        )
        cards_dir = config.path(config.cards.dir) or Path("cards")
        cards = CardMaker(config, self.store, cards_dir) if config.cards.enabled else None
        videos = None
        if shorts is not None and wants_videos(config):
            source = shorts(config, self.store)
            videos = VideoMaker(config, self.store, cards_dir, source, self.clock)
        self.dispatcher = Dispatcher(
            config,
            self.store,
            clock=self.clock,
            env=env,
            dry_run=dry_run,
            stop=self.stop,
            cards=cards,
            videos=videos,
        )
        # Alerts to the operators (broadcaster/alerts): checked once per poll cycle.
        self.alerter = Alerter(config, self.store, clock=self.clock, dry_run=dry_run)
        self.counters: dict[str, float] = {"polls": 0, "poll_failures": 0}
        self.feed_health = FeedHealth(started_at=time.time())
        self.health: HealthServer | None = None
        refuse_test_data(config, self.store, dry_run=dry_run)
        interval = config.feed.poll_interval
        self.executor = ThreadPoolExecutor(max_workers=3)
        self.scheduler = BlockingScheduler(
            timezone=config.election.tz,
            executors={"default": self.executor},
            job_defaults={
                "coalesce": True,
                "max_instances": 1,
                "misfire_grace_time": max(1, round(interval)),
            },
        )

    # -- jobs: each catches everything, so no feed or platform problem can stop the daemon --

    def _leading(self) -> bool:
        """Whether this instance may poll and publish now; on becoming active (at start or on
        taking over from another instance), first carry on from the database as a restart
        does: the differ's state, the feed's position, posts left in doubt."""
        epoch = self.leadership.active_epoch()
        if epoch is None or self.stop.is_set():
            return False
        if epoch == self._ready_epoch:
            return True
        with self._takeover:
            if epoch != self._ready_epoch:
                try:
                    self._take_over(epoch)
                except Exception:
                    log.exception("taking over failed; trying again at the next step")
                    return False
        return True

    def _take_over(self, epoch: int) -> None:
        started = time.monotonic()
        self.pipeline.resume()
        self.source = make_source(
            self.config.feed,
            self.config.base_dir,
            resume_after=self.pipeline.last_source_name,
            secrets=self.secrets,
        )
        recovered = self.dispatcher.recover()
        if recovered.sent or recovered.retried or recovered.held:
            log.info(
                "settled posts interrupted by the last stop: %d found sent, %d to resend, %d held",
                recovered.sent,
                recovered.retried,
                recovered.held,
            )
        self._ready_epoch = epoch
        log.info(
            "took over at epoch %d in %.2f s: resuming after %s",
            epoch,
            time.monotonic() - started,
            self.pipeline.last_source_name or "nothing yet",
        )

    def _wake(self) -> None:
        """Just became active: tell the operators when this was a takeover, and poll and
        dispatch now rather than at the next interval."""
        lease = self.leadership.lease
        taken = lease.taken_from
        if taken is not None and taken[1] == lease.epoch:
            name = display_name(lease.holder) or lease.name
            self.alerter.push(standby_took_over(name, previous=taken[0], epoch=taken[1]))
        now = datetime.now(UTC)
        for job in ("poll", "dispatch"):
            with contextlib.suppress(Exception):  # not scheduled yet, or shutting down
                self.scheduler.modify_job(job, next_run_time=now)

    def poll(self) -> None:
        if not self._leading():
            return
        self.counters["polls"] += 1
        try:
            result = self.pipeline.poll(self.source)
        except LeaseLost as exc:
            log.warning("snapshot not recorded: %s (another instance has taken over)", exc)
            return
        except Exception as exc:
            self.counters["poll_failures"] += 1
            log.exception("poll cycle failed; the snapshot will be read again next cycle")
            self._record_poll("error", describe_error(exc))
            return
        finally:
            self.counters["last_poll"] = time.time()
        if result.outcome in ("down", "rejected"):
            self.counters["poll_failures"] += 1
        self._record_poll(result.outcome, result.error)
        if result.posts and not self.stop.is_set():
            # Dispatch at once rather than at the next tick; fails only while shutting down.
            with contextlib.suppress(Exception):
                self.scheduler.modify_job("dispatch", next_run_time=datetime.now(UTC))

    def _record_poll(self, outcome: str, error: str | None) -> None:
        """Keep the feed's health for /healthz (in memory) and `broadcaster status` (stored)."""
        self.feed_health.record(outcome, error, time.time())
        try:
            State(self.store).set_feed_health(self.feed_health.to_dict())
        except Exception as exc:  # the database is down: /healthz still knows
            log.debug("feed health not stored: %s", exc)

    def dispatch(self) -> None:
        if not self._leading():
            return
        try:
            self.dispatcher.run_once()
        except LeaseLost as exc:
            # Whatever this instance was sending stays `sending`, for the new active instance
            # to look up (as after a crash); nothing more goes out from here.
            log.warning("dispatch stopped, LeaseLost: %s", exc)
        except Exception:
            log.exception("dispatch run failed; posts stay in the outbox for the next run")

    def alert(self) -> None:
        if not self._leading():  # one instance alerts the operators, the one that publishes
            return
        try:
            self.alerter.run_once()
        except Exception:
            log.exception("alert check failed; it runs again next cycle")

    # -- life cycle --

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        # A signal handler runs on the main thread in the middle of whatever it was doing,
        # possibly inside the scheduler's own locked loop: do the shutdown from another thread.
        if self.stop.is_set():
            return
        self.stop.set()
        threading.Thread(
            target=self._shutdown, args=(signal.Signals(signum).name,), name="shutdown"
        ).start()

    def _shutdown(self, signame: str) -> None:
        log.info("received %s: finishing the current step, then stopping", signame)
        self.scheduler.shutdown(wait=False)

    def run(self) -> int:
        """Run until SIGTERM or SIGINT; raises ConfigError (before anything runs) when another
        daemon already runs on the same SQLite file."""
        try:
            self.instance_lock = _lock_sqlite(self.config.database_url)
        except ConfigError:
            self.dispatcher.close()
            self.alerter.close()
            self.store.close()
            raise
        # Alone on its SQLite file: a lease left by a killed predecessor is taken at once.
        self.leadership.lease.exclusive = self.instance_lock is not None
        accounts = ", ".join(f"{a.name} ({a.platform})" for a in self.config.accounts)
        if self.dry_run:
            log.warning(
                "DRY RUN: every account uses the dry-run publisher whatever the config says; "
                "posts are written to %s",
                self.config.path(self.config.output.posts),
            )
        log.info(
            "starting: feed %s every %gs, database %s, accounts: %s",
            self.source.description,
            self.config.feed.poll_interval,
            self.config.database_url.split("://", 1)[0],
            accounts,
        )
        if failpoints.active():
            log.warning("FAILPOINTS ACTIVE (%s): this process will kill itself", failpoints.ENV)
        self._warm()
        lease = self.leadership.lease
        # The last check before any request leaves for a platform (publishers/http.py): half
        # the claiming margin of lease left, by this process's own clock.
        set_send_gate(lambda: lease.remaining() > lease.margin / 2)
        # The first answer (active or standby) before any job runs; an active instance settles
        # interrupted posts in its first job (_take_over), before anything new is sent.
        self.leadership.start()
        now = datetime.now(UTC)
        self.scheduler.add_job(
            self.poll,
            "interval",
            seconds=self.config.feed.poll_interval,
            id="poll",
            next_run_time=now,
        )
        self.scheduler.add_job(
            self.dispatch,
            "interval",
            seconds=self.config.dispatch.interval,
            id="dispatch",
            next_run_time=now,
        )
        self.scheduler.add_job(
            self.alert, "interval", seconds=self.config.feed.poll_interval, id="alerts"
        )
        previous = {
            sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)
        }
        if self.config.service.listen:
            try:
                self.health = HealthServer(
                    self.config,
                    self.store,
                    counters=self.counters,
                    alive=lambda: self.scheduler.running and not self.stop.is_set(),
                    dry_run=self.dry_run,
                    feed_health=self.feed_health,
                    leadership=self.leadership,
                ).start()
            except OSError as exc:
                log.error("health endpoint not started on %s: %s", self.config.service.listen, exc)
        # `broadcaster status` asks here first: answered in a few ms from what is loaded.
        status_socket = StatusSocket(
            self.config.database_url,
            self.config.source_digest,
            self._status_report,
            self._who,
        )
        status_socket.start()
        started = []
        for companion in self.companions:
            try:
                companion.start(self.store, self.stop)
                started.append(companion)
            except Exception as exc:  # a companion that cannot start never stops the daemon
                log.error("%s not started: %s", companion.name, exc)
        try:
            self.scheduler.start()
        finally:
            self.stop.set()
            for companion in reversed(started):
                companion.stop()
            if self.health is not None:
                self.health.stop()
            status_socket.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            # Wait for the job in progress: it checks `stop` between steps.
            self.executor.shutdown(wait=True)
            # Nothing is claimed any more: give the lease to a standby now.
            self.leadership.close()
            set_send_gate(None)
            self.dispatcher.close()
            self.alerter.close()
            self.store.close()
            self._release_instance()
        log.info("stopped cleanly")
        return 0

    def _status_report(self) -> dict[str, Any]:
        """`broadcaster status`, as this daemon sees it (a standby has not polled: the feed's
        health is the active instance's, as stored)."""
        standby = self.leadership.active_epoch() is None
        health = None if standby else self.feed_health
        return collect_status(self.config, self.store, health=health)

    def _who(self) -> tuple[str, str]:
        mine = self.leadership.describe()
        return str(mine["instance"]), str(mine["role"])

    def _warm(self) -> None:
        """Make every account's publisher now, so that a standby taking over has them ready."""
        for account in self.config.accounts:
            try:
                self.dispatcher.publisher(account.name)
            except Exception as exc:  # the dispatcher reports it when it sends
                log.debug("publisher for %s not ready: %s", account.name, exc)

    def _release_instance(self) -> None:
        if self.instance_lock is not None:
            self.instance_lock.release()


def _lock_sqlite(url: str) -> SQLiteInstanceLock | None:
    """One daemon per SQLite file: refuse to start beside another (ConfigError)."""
    path = sqlite_file(url)
    if path is None:
        return None
    try:
        return SQLiteInstanceLock(path).acquire()
    except InstanceRefused as exc:
        raise ConfigError(str(exc)) from None
    except OSError:
        return None  # a folder that does not exist: the database's own error says it better
