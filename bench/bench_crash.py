"""Prove exactly-once delivery across crashes: SIGKILL the daemon again and again mid-night.

    python bench/bench_crash.py                   # 80 seats, at least 50 kills
    python bench/bench_crash.py --seats 8 --kills 5 --json   # the short version the tests run

A fictional night (every seat called once; broadcaster.rehearsal.fictional) arrives snapshot by
snapshot in a folder (paced so that the night lasts long enough for the kills asked for) and is
read by the real daemon (`broadcaster run`, a subprocess) through the real adapters to the platform
emulator (in this process, so it outlives the daemon, like a real platform; each answer delayed
by 50 ms). One account per platform, posting each call.

The daemon is killed with SIGKILL, at random moments from outside (during start-up, recovery,
ingest or a send) and from inside at the riskiest points (`broadcaster.core.failpoints`): just after
a post is committed `sending`, part-way through the platform call, after the platform answered
but before `sent` is committed, and just after. After each kill it is restarted. Posts the
daemon holds as in doubt (TikTok, when it died before TikTok's publish id was stored) are
resolved as an operator would: look at the account (here, the emulator), then `broadcaster outbox
mark-sent ID` if the post is there, `broadcaster outbox approve ID` if not.

At the end it compares what the emulator received with what the feed called, per platform:
a seat announced twice is a duplicate, a called seat never announced is missing. It prints the
figures and exits 1 unless both are zero.

It never hangs and never leaves a daemon behind: a post refused for good, or held for any reason
but a doubt, ends the run at once with the posts' states; so does a night that stops making
progress (`--stall`, seconds) or runs too long (`--max-seconds`); the daemon is killed in any
case. bench/bench_faults.py runs the same night with platform faults on top (`run(...,
fault_rate=...)`).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

from broadcaster.publishers import publisher_class
from broadcaster.rehearsal.emulator import Emulator, EmulatorServer, Limits
from broadcaster.rehearsal.fictional import (
    Burst,
    NightPlan,
    first_seen_called,
    snapshot_times,
    write_night,
)

PLATFORMS = ("facebook", "youtube", "tiktok", "x")
SEAT = re.compile(r"TEST Seat (\d{3})")
FAILPOINTS = "after_claim:0.07,in_call:0.07:0.2,after_call:0.07,after_sent:0.03"


def daemon_cmd() -> list[str]:
    exe = shutil.which("broadcaster", path=str(Path(sys.executable).parent))
    return [exe] if exe else [sys.executable, "-m", "broadcaster"]


def toml_value(value: object) -> str:
    return json.dumps(value)  # strings, numbers and booleans: JSON's forms are TOML's


def write_config(work: Path, base: str, timeout: float | None = None) -> dict[str, str]:
    """The daemon's configuration, tokens file and environment (secrets) for the emulator;
    `timeout` sets every account's seconds to wait for a platform's answer."""
    secrets: dict[str, str] = {}
    tokens: dict[str, object] = {}
    accounts = []
    for platform in PLATFORMS:
        emu = publisher_class(platform).emulator_account(base, work)
        secrets.update(emu.secrets)
        if emu.tokens:
            tokens[platform] = emu.tokens
        values = {**emu.settings, **({"timeout": timeout} if timeout else {})}
        settings = "\n".join(f"{k} = {toml_value(v)}" for k, v in values.items())
        accounts.append(f"""
[[accounts]]
name = "{platform}"
platform = "{platform}"
dry_run = false
allow_test_posts = true  # a fictional night, to the emulator: no real account
events = ["called"]
quota = [{{posts = 100000, seconds = 86400}}]
{settings}
""")
    (work / "tokens.json").write_text(json.dumps(tokens))
    os.chmod(work / "tokens.json", 0o600)
    (work / "crash.toml").write_text(
        """
[election]
timezone = "Asia/Bangkok"

[feed]
source = "night"
poll_interval = 0.2

[dispatch]
interval = 0.1
breaker_failures = 1000

[database]
url = "sqlite:///state.db"

[secrets]
tokens = "tokens.json"

[service]
listen = ""
"""
        + "".join(accounts)
    )
    return secrets


def db_query(db: Path, sql: str) -> list[tuple]:
    conn = sqlite3.connect(db, timeout=30)
    try:
        return conn.execute(sql).fetchall()
    except sqlite3.OperationalError:  # not created yet
        return []
    finally:
        conn.close()


def open_posts(db: Path) -> int:
    rows = db_query(
        db, "select count(*) from posts where state not in ('sent', 'superseded', 'cancelled')"
    )
    return int(rows[0][0]) if rows else -1


def stuck_posts(db: Path) -> list[tuple]:
    """Posts that no waiting will deliver: refused for good, or held for anything but a doubt
    (which the operator below resolves)."""
    return db_query(
        db,
        "select id, account, state, coalesce(hold_reason, last_error) from posts "
        "where state = 'failed' or (state = 'held' and hold_reason not like 'in doubt%')",
    )


def finished(db: Path, snapshots: int) -> bool:
    accepted = db_query(db, "select count(*) from snapshots where accepted")
    total = db_query(db, "select count(*) from posts")
    open_posts = db_query(
        db, "select count(*) from posts where state not in ('sent', 'superseded', 'cancelled')"
    )
    return bool(accepted and accepted[0][0] >= snapshots and total[0][0] and open_posts[0][0] == 0)


def operator(work: Path, emulator: Emulator, env: dict[str, str]) -> tuple[int, int]:
    """Resolve posts held in doubt by looking at the account: (marked sent, approved)."""
    held = db_query(
        work / "state.db",
        "select id, platform, text from posts "
        "where state = 'held' and hold_reason like 'in doubt%'",
    )
    marked = approved = 0
    if not held:
        return 0, 0
    received = emulator.snapshot()["posts"]
    for post_id, platform, text in held:
        on_account = any(p["platform"] == platform and p["text"] == text for p in received)
        action = ["mark-sent", str(post_id)] if on_account else ["approve", str(post_id)]
        subprocess.run(
            [*daemon_cmd(), "outbox", *action, "--config", str(work / "crash.toml")],
            cwd=work,
            env=env,
            check=True,
            capture_output=True,
        )
        marked += on_account
        approved += not on_account
    return marked, approved


class Stuck(RuntimeError):
    """The night stopped progressing: (what, the work folder kept as evidence)."""

    def __str__(self) -> str:
        return str(self.args[0])


def run(
    seats: int,
    kills_wanted: int,
    seed: int,
    quiet: bool,
    *,
    plan: NightPlan | None = None,
    pace: float | None = None,
    fault_rate: float = 0.0,
    failpoints: bool | str = True,
    timeout: float | None = None,
    max_seconds: float = 1800,
    stall: float = 180,
    keep: bool = False,
) -> dict:
    """Play a night through the daemon, killing it `kills_wanted` times, with `fault_rate` of
    the platforms' posting calls failing (the emulator's random mix); the figures."""
    rng = random.Random(seed)
    work = Path(tempfile.mkdtemp(prefix="broadcaster-crash-"))
    plan = plan or NightPlan(
        seats=seats, hours=2, step_minutes=10, bursts=(Burst(0.5, 0.3, 5),), seed=seed
    )
    night = write_night(plan, work / "recorded")
    recorded = sorted((work / "recorded").iterdir())
    snapshots = len(recorded)
    (work / "night").mkdir()
    # The snapshots arrive over time, as on the night, so that the kills land all along it.
    pace = pace if pace is not None else max(1.0, kills_wanted * 4.0 / snapshots)
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
    emulator = Emulator(limits, seed=seed)
    if fault_rate:
        emulator.add_faults(",".join(f"{p}:random={fault_rate}" for p in PLATFORMS))
    server = EmulatorServer(emulator=emulator).start()
    secrets = write_config(work, server.url, timeout)
    failpoint_log = work / "failpoints.log"
    env = {**os.environ, **secrets}
    if failpoints and kills_wanted:
        env["BROADCASTER_FAILPOINTS"] = failpoints if isinstance(failpoints, str) else FAILPOINTS
        env["BROADCASTER_FAILPOINTS_LOG"] = str(failpoint_log)
    operator_env = {k: v for k, v in env.items() if not k.startswith("BROADCASTER_FAILPOINTS")}
    db = work / "state.db"
    config = work / "crash.toml"
    external = starts = marked = approved = 0
    started = time.monotonic()
    released = 0
    released_at: list[float] = []  # wall time each snapshot appeared
    progress = (time.monotonic(), -2)  # (when, open posts) last time the count changed

    def release() -> None:
        nonlocal released
        due = min(snapshots, 1 + int((time.monotonic() - started) / pace))
        while released < due:
            source = recorded[released]
            partial = work / "night" / (source.name + ".part")
            shutil.copyfile(source, partial)
            partial.rename(work / "night" / source.name)  # never seen half-written
            released_at.append(time.time())
            released += 1

    def check() -> None:
        """Fail fast, with the evidence, rather than wait for a night that cannot end."""
        nonlocal progress
        stuck = stuck_posts(db)
        if stuck:
            raise Stuck(f"posts that will never be delivered: {stuck[:5]}", work)
        now, count = time.monotonic(), open_posts(db)
        if count != progress[1]:
            progress = (now, count)
        elif released == snapshots and count > 0 and now - progress[0] > stall:
            states = db_query(
                db,
                "select id, account, state, attempts, coalesce(hold_reason, last_error) "
                "from posts where state not in ('sent', 'superseded', 'cancelled') limit 5",
            )
            raise Stuck(f"no progress for {stall:.0f} s with {count} posts open: {states}", work)
        if now - started > max_seconds:
            raise Stuck(f"gave up after {max_seconds:.0f} s with {count} posts open", work)

    log = (work / "daemon.log").open("ab")
    proc: subprocess.Popen[bytes] | None = None
    try:
        while True:
            starts += 1
            # Once the kills asked for are done, the daemon runs on without failpoints.
            enough = external + _count(failpoint_log) >= kills_wanted
            proc = subprocess.Popen(
                [*daemon_cmd(), "--log-format", "json", "run", "--config", str(config)],
                cwd=work,
                env=operator_env if enough else env,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
            kill_at = time.monotonic() + rng.uniform(0.3, 3.0)
            look_at = time.monotonic() + 1.0
            while proc.poll() is None:
                release()
                check()
                if time.monotonic() >= look_at:  # the operator looks at held posts now and then
                    m, a = operator(work, server.emulator, operator_env)
                    marked, approved = marked + m, approved + a
                    look_at = time.monotonic() + 1.0
                if time.monotonic() >= kill_at and external + _count(failpoint_log) < kills_wanted:
                    proc.send_signal(signal.SIGKILL)
                    proc.wait()
                    external += 1
                    break
                if released == snapshots and finished(db, snapshots):
                    break
                time.sleep(0.05)
            m, a = operator(work, server.emulator, operator_env)
            marked, approved = marked + m, approved + a
            if proc.poll() is None:  # the night is done: stop it the normal way
                proc.send_signal(signal.SIGTERM)
                code = proc.wait(timeout=60)
                if code != 0:
                    raise SystemExit(f"the daemon stopped with {code}; see {work / 'daemon.log'}")
                if released == snapshots and finished(db, snapshots):
                    break
            elif proc.returncode not in (-signal.SIGKILL,):
                raise SystemExit(
                    f"the daemon exited with {proc.returncode}; see {work / 'daemon.log'}"
                )
            if not quiet:
                kills = external + _count(failpoint_log)
                print(f"  start {starts}: {kills} kills so far", file=sys.stderr)
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()  # whatever happened, no daemon outlives the benchmark
            proc.wait()
        log.close()
        snapshot = server.emulator.snapshot()
        server.stop()
    finished_at = time.time()
    received = snapshot["posts"]

    called = {s.id[1:] for s in night}
    duplicates = missing = 0
    per_platform = {}
    arrivals: dict[tuple[str, str], float] = {}  # (platform, seat) -> first arrival, wall time
    for platform in PLATFORMS:
        mentions = Counter(
            m for p in received if p["platform"] == platform for m in SEAT.findall(p["text"])
        )
        for p in received:
            if p["platform"] == platform:
                at = datetime.fromisoformat(p["at"]).timestamp()
                for seat in SEAT.findall(p["text"]):
                    arrivals[(platform, seat)] = min(arrivals.get((platform, seat), at), at)
        dup = sum(n - 1 for n in mentions.values() if n > 1)
        miss = len(called - set(mentions))
        duplicates += dup
        missing += miss
        per_platform[platform] = {
            "posts": sum(1 for p in received if p["platform"] == platform),
            "duplicates": dup,
            "missing": miss,
        }
    # How long each call took from the snapshot that first showed it to each platform.
    times = snapshot_times(plan)
    first_called = first_seen_called(plan, night)
    by_platform: dict[str, list[float]] = {p: [] for p in PLATFORMS}
    for (platform, seat), at in arrivals.items():
        index = times.index(first_called["S" + seat])
        if index < len(released_at):
            by_platform[platform].append(at - released_at[index])
    latencies = sorted(v for values in by_platform.values() for v in values)
    for platform, values in by_platform.items():
        last = max((at for (p, _), at in arrivals.items() if p == platform), default=None)
        if last is not None and released_at:
            per_platform[platform]["arrival_seconds"] = round(last - released_at[0], 1)
        values.sort()
        per_platform[platform]["latency_p95"] = round(_quantile(values, 0.95), 2)
        per_platform[platform]["latency_max"] = round(values[-1], 2) if values else None
    last_arrival = max(arrivals.values(), default=finished_at)
    by_point = (
        Counter(line.strip() for line in failpoint_log.read_text().splitlines())
        if (failpoint_log.exists())
        else Counter()
    )
    result = {
        "seats": seats,
        "snapshots": snapshots,
        "pace_seconds": pace,
        "fault_rate": fault_rate,
        "faults_injected": sum(snapshot["random_faults"].values()),
        "faults_by_kind": snapshot["random_faults"],
        "kills": external + sum(by_point.values()),
        "kills_by_point": {"external (random moment)": external, **dict(by_point)},
        "daemon_starts": starts,
        "operator_marked_sent": marked,
        "operator_approved": approved,
        "duplicates": duplicates,
        "missing": missing,
        "per_platform": per_platform,
        "seconds": round(time.monotonic() - started, 1),
        # first snapshot to the last seat on the last platform; last snapshot to the same
        "arrival_seconds": round(last_arrival - released_at[0], 1) if released_at else None,
        "tail_seconds": round(last_arrival - released_at[-1], 1) if released_at else None,
        "latency_p50": round(_quantile(latencies, 0.5), 2),
        "latency_p95": round(_quantile(latencies, 0.95), 2),
        "latency_max": round(latencies[-1], 2) if latencies else None,
        "workdir": str(work),
    }
    if duplicates == 0 and missing == 0 and not keep:
        shutil.rmtree(work, ignore_errors=True)
        result["workdir"] = None
    return result


def _quantile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return values[min(len(values) - 1, int(q * len(values)))]


def _count(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seats", type=int, default=80)
    parser.add_argument(
        "--kills", type=int, default=50, help="kill at least this many times (sets the pace)"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument(
        "--max-seconds", type=float, default=1800, help="fail when the night takes longer"
    )
    parser.add_argument(
        "--stall", type=float, default=180, help="fail after this long without progress"
    )
    args = parser.parse_args()
    # A SIGTERM (a test giving up) ends the run through its `finally`: the daemon dies too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(3))
    try:
        result = run(
            args.seats,
            args.kills,
            args.seed,
            quiet=args.json,
            max_seconds=args.max_seconds,
            stall=args.stall,
        )
    except Stuck as exc:
        print(f"STUCK: {exc} (evidence kept in {exc.args[1]})", file=sys.stderr)
        sys.exit(2)
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"{result['seats']} seats x {len(PLATFORMS)} platforms, {result['snapshots']} "
            f"snapshots, {result['seconds']} s"
        )
        print(f"kills: {result['kills']} over {result['daemon_starts']} daemon starts")
        for point, n in result["kills_by_point"].items():
            print(f"  {point:<26}{n:>5}")
        print(
            f"held in doubt and resolved by the operator: {result['operator_marked_sent']} "
            f"found on the account (marked sent), {result['operator_approved']} sent again"
        )
        for platform, f in result["per_platform"].items():
            print(
                f"  {platform:<10} posts {f['posts']:>4}  duplicates {f['duplicates']}  "
                f"missing {f['missing']}"
            )
        print(f"duplicates={result['duplicates']} missing={result['missing']}")
        if result["workdir"]:
            print(f"evidence kept in {result['workdir']}")
    sys.exit(0 if result["duplicates"] == 0 and result["missing"] == 0 else 1)


if __name__ == "__main__":
    main()
