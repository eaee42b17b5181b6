"""Two machines, one voice: several daemons on one PostgreSQL database, the active one killed and
paused again and again, and never a post twice.

    python bench/bench_failover.py                        # 3 instances, 20 kills, 10 pauses
    python bench/bench_failover.py --seats 8 --kills 2 --pauses 2 --json   # the tests' version
    python bench/bench_failover.py --postgres postgresql+psycopg://user@host/db

A fictional night (every seat called once; broadcaster.rehearsal.fictional) arrives snapshot by
snapshot in a folder, paced so that it lasts as long as the failures asked for, and is read by
`--instances` real daemons (`broadcaster run`, subprocesses) sharing one PostgreSQL database
(`--postgres URL`, else $BROADCASTER_TEST_POSTGRES, else a throwaway server started from the
PostgreSQL binaries) and posting through the real adapters to the platform emulator (in this
process, so it outlives every daemon; each answer delayed by 50 ms). One account per platform.

Again and again, at a random moment, the active instance (the lease's holder) is either
SIGKILLed (and restarted at once, as systemd would: it comes back as a standby) or SIGSTOPped
until a standby has taken over, plus a second, then SIGCONTed: it wakes holding a lease that
is no longer its own, and the fence must stop it from claiming or recording anything. Posts the
active instance holds in doubt (TikTok, when its publish id was never stored) are resolved as an
operator would: look at the account (the emulator), then mark-sent or approve.

At the end it compares what the emulator received with what the feed called, per platform (a
seat announced twice is a duplicate, a called seat never announced is missing), and prints the
takeover times (from the kill or pause to a standby holding the lease, median and longest) and
the longest time with no running instance holding the lease, sampled every 50 ms. It exits 1
unless duplicates and missing are both zero. No daemon outlives it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench_crash import PLATFORMS, SEAT, daemon_cmd
from bench_crash import write_config as write_crash_config

from broadcaster.rehearsal.emulator import Emulator, EmulatorServer, Limits
from broadcaster.rehearsal.fictional import Burst, NightPlan, write_night
from tests.local_servers import (
    PostgresUnavailable,
    fresh_database,
    throwaway_postgres,
)


class Stuck(RuntimeError):
    pass


# -- PostgreSQL ---------------------------------------------------------------------------------


# -- the instances ------------------------------------------------------------------------------


def write_configs(
    work: Path, base: str, url: str, instances: int, lease: float, renew: float
) -> tuple[list[Path], dict[str, str]]:
    """bench_crash's accounts on the emulator, on PostgreSQL, one file per named instance."""
    secrets = write_crash_config(work, base)
    common = (work / "crash.toml").read_text()
    common = common.replace(
        'url = "sqlite:///state.db"',
        f"url = {json.dumps(url)}\nlease_seconds = {lease}\nrenew_seconds = {renew}",
    )
    paths = []
    for n in range(1, instances + 1):
        path = work / f"i{n}.toml"
        path.write_text(common.replace("[database]", f'[database]\ninstance = "i{n}"', 1))
        paths.append(path)
    return paths, secrets


class Instance:
    def __init__(self, name: str, config: Path, work: Path, env: dict[str, str]) -> None:
        self.name, self.config, self.work, self.env = name, config, work, env
        self.proc: subprocess.Popen[bytes] | None = None
        self.stopped = False
        self.starts = 0

    def start(self) -> None:
        log = (self.work / f"{self.name}.log").open("ab")
        self.proc = subprocess.Popen(
            [*daemon_cmd(), "--log-format", "json", "run", "--config", str(self.config)],
            cwd=self.work,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=log,
            start_new_session=True,
        )
        log.close()
        self.stopped = False
        self.starts += 1

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None and not self.stopped

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)
        if sig == signal.SIGKILL:
            self.proc.wait(timeout=30)
        self.stopped = sig == signal.SIGSTOP

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGCONT)
                os.killpg(self.proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=30)

    def fenced(self) -> int:
        """Writes this instance's fence refused (LeaseLost in its log)."""
        path = self.work / f"{self.name}.log"
        return path.read_text(errors="replace").count("LeaseLost") if path.exists() else 0


# -- the database, as the bench sees it ---------------------------------------------------------


def query(engine: Engine, sql: str) -> list[Any]:
    try:
        with engine.connect() as conn:
            return list(conn.execute(text(sql)).all())
    except Exception:  # not created yet, or a daemon is creating it
        return []


def holder(engine: Engine) -> tuple[str | None, int, datetime | None]:
    rows = query(engine, "select holder, epoch, expires_at from leadership where name = 'daemon'")
    if not rows:
        return None, 0, None
    name, epoch, expires = rows[0]
    name = None if name is None else name.split("#", 1)[0]
    return name, int(epoch), None if expires is None else expires.replace(tzinfo=UTC)


def open_posts(engine: Engine) -> int:
    rows = query(
        engine,
        "select count(*) from posts where state not in ('sent', 'superseded', 'cancelled')",
    )
    return int(rows[0][0]) if rows else -1


def finished(engine: Engine, snapshots: int) -> bool:
    accepted = query(engine, "select count(*) from snapshots where accepted")
    total = query(engine, "select count(*) from posts")
    return bool(
        accepted and accepted[0][0] >= snapshots and total[0][0] and open_posts(engine) == 0
    )


def stuck_posts(engine: Engine) -> list[Any]:
    return query(
        engine,
        "select id, account, state, coalesce(hold_reason, last_error) from posts where "
        "state = 'failed' or (state = 'held' and hold_reason not like 'in doubt%')",
    )


def operator(engine: Engine, config: Path, emulator: Emulator, env: dict[str, str]) -> int:
    """Resolve posts held in doubt by looking at the account, as an operator does."""
    held = query(
        engine,
        "select id, platform, text from posts where state = 'held' "
        "and hold_reason like 'in doubt%'",
    )
    received = emulator.snapshot()["posts"] if held else []
    for post_id, platform, body in held:
        there = any(p["platform"] == platform and p["text"] == body for p in received)
        action = "mark-sent" if there else "approve"
        subprocess.run(
            [*daemon_cmd(), "outbox", action, str(post_id), "--config", str(config)],
            cwd=config.parent,
            env=env,
            check=True,
            capture_output=True,
        )
    return len(held)


# -- the run ------------------------------------------------------------------------------------


class Watch:
    """Samples the lease every 50 ms: who holds it, and whether that instance can act."""

    def __init__(self, engine: Engine, instances: dict[str, Instance]) -> None:
        self.engine, self.instances = engine, instances
        self.gap_started: float | None = None
        self.longest_gap = 0.0
        self.last: tuple[str | None, int] = (None, 0)
        self.measuring = False  # from the first leader on (start-up is not a failover)

    def sample(self) -> tuple[str | None, int]:
        name, epoch, expires = holder(self.engine)
        now = time.monotonic()
        alive = (
            name in self.instances
            and self.instances[name].running()
            and expires is not None
            and expires > datetime.now(UTC)
        )
        self.measuring = self.measuring or alive
        if not self.measuring:
            pass
        elif alive:
            if self.gap_started is not None:
                self.longest_gap = max(self.longest_gap, now - self.gap_started)
            self.gap_started = None
        elif self.gap_started is None:
            self.gap_started = now
        self.last = (name if alive else None, epoch)
        return self.last


def make_emulator(seed: int) -> Emulator:
    """Quotas out of the way (this is about failover, not pacing); 50 ms per answer."""
    limits = Limits(
        x_per_15min=100_000,
        x_daily=100_000,
        tiktok_init_per_min=100_000,
        tiktok_creator_per_min=100_000,
        tiktok_status_per_min=100_000,
        tiktok_daily=100_000,
        youtube_daily_units=10**9,
        facebook_per_hour=100_000,
        response_delay=0.05,
    )
    return Emulator(limits, seed=seed)


def tally(received: list[dict[str, Any]], called: set[str]) -> dict[str, Any]:
    """Per platform, seats announced more than once (duplicates) and never (missing)."""
    per_platform = {}
    for platform in PLATFORMS:
        mentions = Counter(
            m for p in received if p["platform"] == platform for m in SEAT.findall(p["text"])
        )
        per_platform[platform] = {
            "duplicates": sum(n - 1 for n in mentions.values() if n > 1),
            "missing": len(called - set(mentions)),
        }
    return {
        "duplicates": sum(f["duplicates"] for f in per_platform.values()),
        "missing": sum(f["missing"] for f in per_platform.values()),
        "per_platform": per_platform,
    }


class Night:
    """The night in progress: snapshots released on time, the operator, the lease watched."""

    def __init__(
        self, work: Path, engine: Engine, fleet: dict[str, Instance], emulator: Emulator, **kw: Any
    ) -> None:
        self.work, self.engine, self.fleet, self.emulator = work, engine, fleet, emulator
        self.recorded: list[Path] = kw["recorded"]
        self.pace: float = kw["pace"]
        self.max_seconds: float = kw["max_seconds"]
        self.env: dict[str, str] = kw["env"]
        self.config: Path = kw["config"]
        self.watch = Watch(engine, fleet)
        self.released = self.held_in_doubt = 0
        self.started = time.monotonic()

    def release(self) -> None:
        due = min(len(self.recorded), 1 + int((time.monotonic() - self.started) / self.pace))
        while self.released < due:
            source = self.recorded[self.released]
            partial = self.work / "night" / (source.name + ".part")
            shutil.copyfile(source, partial)
            partial.rename(self.work / "night" / source.name)  # never seen half-written
            self.released += 1

    def step(self) -> tuple[str | None, int]:
        self.release()
        if stuck := stuck_posts(self.engine):
            raise Stuck(f"posts that will never be delivered: {stuck[:5]} ({self.work})")
        if time.monotonic() - self.started > self.max_seconds:
            raise Stuck(f"gave up after {self.max_seconds:.0f} s ({self.work})")
        self.held_in_doubt += operator(self.engine, self.config, self.emulator, self.env)
        time.sleep(0.05)
        return self.watch.sample()

    def idle(self, seconds: float) -> None:
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            self.step()

    def wait_leader(self, after_epoch: int) -> tuple[str, float]:
        """Until a running instance holds the lease at an epoch after `after_epoch`."""
        t0 = time.monotonic()
        while True:
            name, epoch = self.step()
            if name is not None and epoch > after_epoch:
                return name, time.monotonic() - t0

    def fail(self, action: str) -> tuple[str, float]:
        """Kill (and restart) or pause past its lease the active instance; the takeover time."""
        name, epoch = self.watch.last
        if name is None:
            name, _ = self.wait_leader(epoch - 1)
            epoch = self.watch.last[1]
        victim = self.fleet[name]
        if action == "kill":
            victim.signal(signal.SIGKILL)
            victim.start()  # back at once, as a standby (systemd's Restart=)
            return name, self.wait_leader(epoch)[1]
        victim.signal(signal.SIGSTOP)
        took = self.wait_leader(epoch)[1]
        self.idle(1.0)
        victim.signal(signal.SIGCONT)  # wakes holding a lease that is not its own any more
        return name, took

    def finished(self) -> bool:
        return self.released == len(self.recorded) and finished(self.engine, len(self.recorded))


def run(
    seats: int,
    kills: int,
    pauses: int,
    seed: int,
    *,
    postgres: str,
    instances: int = 3,
    lease: float = 3.0,
    renew: float = 0.5,
    quiet: bool = False,
    max_seconds: float = 1800,
) -> dict[str, Any]:
    rng = random.Random(seed)
    actions = ["kill"] * kills + ["pause"] * pauses
    rng.shuffle(actions)
    work = Path(tempfile.mkdtemp(prefix="broadcaster-failover-"))
    plan = NightPlan(seats=seats, hours=2, step_minutes=10, bursts=(Burst(0.5, 0.3, 5),), seed=seed)
    seats_called = {s.id[1:] for s in write_night(plan, work / "recorded")}
    recorded = sorted((work / "recorded").iterdir())
    (work / "night").mkdir()
    server = EmulatorServer(emulator=make_emulator(seed)).start()
    takeovers: list[float] = []
    with fresh_database(postgres, "broadcaster_failover") as url:
        engine = create_engine(url, pool_pre_ping=True)
        configs, secrets = write_configs(work, server.url, url, instances, lease, renew)
        env = {**os.environ, **secrets}
        fleet = {f"i{n}": Instance(f"i{n}", c, work, env) for n, c in enumerate(configs, 1)}
        night = Night(
            work,
            engine,
            fleet,
            server.emulator,
            recorded=recorded,
            # The night lasts as long as the failures take (a takeover is about one lease).
            pace=max(1.0, len(actions) * (lease + 2.5) / len(recorded)),
            max_seconds=max_seconds,
            env=env,
            config=configs[0],
        )
        try:
            for instance in fleet.values():
                instance.start()
            night.wait_leader(0)
            for n, action in enumerate(actions, 1):
                night.idle(rng.uniform(0.3, 2.5))
                name, took = night.fail(action)
                takeovers.append(took)
                if not quiet:
                    print(f"  {n}/{len(actions)} {action} {name}: {took:.2f} s", file=sys.stderr)
            while not night.finished():
                night.step()
            for instance in fleet.values():
                instance.signal(signal.SIGTERM)
            codes = {i.name: i.proc.wait(timeout=60) for i in fleet.values() if i.proc}
        finally:
            for instance in fleet.values():
                instance.kill()
            received = server.emulator.snapshot()["posts"]
            server.stop()
            engine.dispose()
    counted = tally(received, seats_called)
    result = {
        "instances": instances,
        "seats": seats,
        "snapshots": len(recorded),
        "lease_seconds": lease,
        "renew_seconds": renew,
        "kills": kills,
        "pauses": pauses,
        "takeover_median": round(statistics.median(takeovers), 2) if takeovers else None,
        "takeover_max": round(max(takeovers), 2) if takeovers else None,
        "longest_gap_without_active": round(night.watch.longest_gap, 2),
        "fenced_writes_refused": sum(i.fenced() for i in fleet.values()),
        "held_in_doubt_resolved": night.held_in_doubt,
        "exit_codes": codes,
        **counted,
        "seconds": round(time.monotonic() - night.started, 1),
        "workdir": str(work),
    }
    if counted["duplicates"] == 0 and counted["missing"] == 0:
        shutil.rmtree(work, ignore_errors=True)
        result["workdir"] = None
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seats", type=int, default=40)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--pauses", type=int, default=10)
    parser.add_argument("--instances", type=int, default=3)
    parser.add_argument("--lease", type=float, default=3.0, help="[database] lease_seconds")
    parser.add_argument("--renew", type=float, default=0.5, help="[database] renew_seconds")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--postgres", default=os.environ.get("BROADCASTER_TEST_POSTGRES"))
    parser.add_argument("--max-seconds", type=float, default=1800)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    # A SIGTERM (a test giving up) ends the run through its `finally`: every daemon dies too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(3))
    with contextlib.ExitStack() as stack:
        try:
            server = args.postgres or stack.enter_context(
                throwaway_postgres("broadcaster-failover-pg-")
            )
        except PostgresUnavailable as exc:
            raise SystemExit(f"{exc}: give --postgres URL") from None
        try:
            result = run(
                args.seats,
                args.kills,
                args.pauses,
                args.seed,
                postgres=server,
                instances=args.instances,
                lease=args.lease,
                renew=args.renew,
                quiet=args.json,
                max_seconds=args.max_seconds,
            )
        except Stuck as exc:
            print(f"STUCK: {exc}", file=sys.stderr)
            sys.exit(2)
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"{result['instances']} instances, {result['seats']} seats x {len(PLATFORMS)} "
            f"platforms, {result['snapshots']} snapshots, {result['seconds']} s; lease "
            f"{result['lease_seconds']} s, renewed every {result['renew_seconds']} s"
        )
        print(
            f"active instance SIGKILLed {result['kills']} times, paused past its lease "
            f"{result['pauses']} times"
        )
        print(
            f"takeover: median {result['takeover_median']} s, longest {result['takeover_max']} s;"
            f" longest time without an active instance {result['longest_gap_without_active']} s"
        )
        print(
            f"old leaders' writes refused by the fence: {result['fenced_writes_refused']}; "
            f"posts held in doubt and resolved by the operator: {result['held_in_doubt_resolved']}"
        )
        for platform, f in result["per_platform"].items():
            print(f"  {platform:<10} duplicates {f['duplicates']}  missing {f['missing']}")
        print(f"duplicates={result['duplicates']} missing={result['missing']}")
        if result["workdir"]:
            print(f"evidence kept in {result['workdir']}")
    sys.exit(0 if result["duplicates"] == 0 and result["missing"] == 0 else 1)


if __name__ == "__main__":
    main()
