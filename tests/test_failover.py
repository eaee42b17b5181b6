"""Several instances, one voice: the lease, its fencing and the daemon's roles (outbox/lease.py,
runtime/leadership.py, runtime/daemon.py).

The lease and the fence are exercised on a real database (SQLite, and PostgreSQL where its
binaries are installed; tests/conftest.py starts a throwaway server): a standby takes over only
when the lease has run out, an old leader can neither claim nor record once another has taken
over, a takeover waits for a claim in progress, instances starting at the same instant elect
one, and an instance cut from the database (through a TCP proxy that the test cuts) stops,
reports itself degraded, and comes back as a standby. Real daemons (`broadcaster run`
subprocesses) show the roles in /healthz and `status`, a second daemon on one SQLite file is
refused, and the short version of bench/bench_failover.py pauses and kills the active one
against the platform emulator and counts duplicates.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, select
from sqlalchemy.engine import make_url

from broadcaster.domain.posts import HoldKind, PostState
from broadcaster.outbox.lease import Lease, LeaseLost
from broadcaster.outbox.store import Store, events, posts, snapshots
from broadcaster.publishers.base import RetryLater
from broadcaster.publishers.http import set_send_gate
from broadcaster.runtime.configuration import load_config
from broadcaster.runtime.leadership import ACTIVE, STANDBY, Leadership
from broadcaster.runtime.service import HealthServer
from tests.alert_servers import Webhook, webhook_server
from tests.conftest import Processes, broadcaster_cmd, read_jsonl, wait_for, write_config
from tests.local_servers import free_port

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state.db'}"
    return str(request.getfixturevalue("postgres_url"))


def pending_post(store: Store, n: int = 1) -> int:
    """A pending post (with its snapshot and event), as the pipeline would have written it."""
    now = datetime.now(UTC)
    with store.transaction() as conn:
        snap = conn.execute(
            insert(snapshots).values(
                fingerprint=f"f{n}", source="t", name=f"s{n}", accepted=True, received_at=now
            )
        ).inserted_primary_key[0]
        event = conn.execute(
            insert(events).values(
                key=f"contest/P{n}/called",
                kind="called",
                at=now,
                snapshot_id=snap,
                data={},
                context={},
                created_at=now,
            )
        ).inserted_primary_key[0]
        return int(
            conn.execute(
                insert(posts).values(
                    idempotency_key=f"contest/P{n}/called|x|x-test",
                    event_id=event,
                    event_key=f"contest/P{n}/called",
                    event_kind="called",
                    account="x-test",
                    platform="x",
                    state=PostState.PENDING,
                    priority=1,
                    text="t",
                    media=[],
                    attempts=0,
                    feed_time=now,
                    created_at=now,
                    updated_at=now,
                    dry_run=True,
                    wants_card=False,
                    test_data=True,
                )
            ).inserted_primary_key[0]
        )


def state_of(store: Store, post_id: int) -> str:
    with store.engine.connect() as conn:
        return str(conn.execute(select(posts.c.state).where(posts.c.id == post_id)).scalar_one())


# -- the lease and its fence ----------------------------------------------------------------------


def test_a_standby_takes_the_lease_only_once_it_has_run_out(db_url: str):
    a_store, b_store = Store(db_url), Store(db_url)
    try:
        a = Lease(a_store, "a", seconds=2)
        b = Lease(b_store, "b", seconds=2)
        assert a.tick()
        assert a.epoch == 1
        assert a.taken_from is None, "a first start takes the lease from nobody"
        assert not b.tick()
        assert b.epoch is None
        assert a.tick()
        assert a.epoch == 1, "renewing keeps the epoch"
        time.sleep(2.3)  # a stops renewing (killed, paused, cut off)
        assert b.tick()
        assert b.epoch == 2, "a new holder, a new epoch"
        assert b.taken_from == ("a", 2), "a takeover, for the operators' alert"
        assert not a.tick()
        assert a.epoch is None, "the old holder finds it gone"
        b.release()
        assert a.tick()
        assert a.epoch == 3, "a released lease is free at once"
        assert a.taken_from == ("b", 3), "a clean stop's successor took over too"
    finally:
        a_store.close()
        b_store.close()


def test_an_old_leader_can_neither_claim_nor_record_after_a_takeover(db_url: str):
    a_store, b_store = Store(db_url), Store(db_url)
    try:
        first, second = pending_post(a_store, 1), pending_post(a_store, 2)
        a = Lease(a_store, "a", seconds=2, margin=0.5)
        b = Lease(b_store, "b", seconds=2, margin=0.5)
        a_store.fence, b_store.fence = a.check, b.check
        assert a.tick()
        assert a_store.claim(first, datetime.now(UTC)) == 1  # a calls the platform...
        time.sleep(2.3)  # ...and freezes past its lease
        assert b.tick()
        # a wakes: nothing it writes about the post it had claimed, nor a new claim, goes in.
        with pytest.raises(LeaseLost, match="held by b"):
            a_store.mark_sent(first, "p1", None, datetime.now(UTC))
        with pytest.raises(LeaseLost):
            a_store.mark_retry(first, "timeout", datetime.now(UTC))
        with pytest.raises(LeaseLost):
            a_store.claim(second, datetime.now(UTC))
        with pytest.raises(LeaseLost):  # nor hold one (a refusal, a card, a template failing)
            a_store.refuse(second, PostState.HELD, HoldKind.TEMPLATE, "its template failed")
        with pytest.raises(LeaseLost):
            a_store.mark_held(second, HoldKind.CARD, "card: disk full")
        assert state_of(a_store, first) == PostState.SENDING  # in doubt: b settles it
        assert state_of(a_store, second) == PostState.PENDING
        # The new leader settles the post in doubt and sends the other.
        b_store.mark_sent(first, "p1", None, datetime.now(UTC))
        assert b_store.claim(second, datetime.now(UTC)) == 1
        assert state_of(b_store, first) == PostState.SENT
    finally:
        a_store.close()
        b_store.close()


def test_claiming_stops_before_the_lease_runs_out_by_the_local_clock(tmp_path: Path):
    store = Store(f"sqlite:///{tmp_path / 'state.db'}")
    clock = [100.0]
    try:
        post = pending_post(store)
        lease = Lease(store, "a", seconds=20, margin=10, monotonic=lambda: clock[0])
        store.fence = lease.check
        assert lease.tick()
        clock[0] += 10.5  # no renewal for 10.5 s (a pause, a slow database): 9.5 s left
        assert lease.leading()
        assert not lease.may_claim()
        with pytest.raises(LeaseLost, match="lease left"):
            store.claim(post, datetime.now(UTC))
        assert state_of(store, post) == PostState.PENDING
        assert lease.tick()  # renewed: claiming again
        assert store.claim(post, datetime.now(UTC)) == 1
    finally:
        store.close()


def test_a_takeover_waits_for_a_claim_in_progress(postgres_url: str):
    a_store, b_store = Store(postgres_url), Store(postgres_url)
    try:
        a = Lease(a_store, "a", seconds=1, margin=0)
        b = Lease(b_store, "b", seconds=1)
        assert a.tick()
        took: list[bool] = []
        with a_store.transaction() as conn:
            a.check(conn, False)  # inside a's transaction: the lease row is read FOR SHARE
            time.sleep(1.2)  # the lease runs out meanwhile
            thread = threading.Thread(target=lambda: took.append(b.tick()))
            thread.start()
            thread.join(1.0)
            assert thread.is_alive(), "b must wait for a's transaction to end"
        thread.join(10)
        assert took == [True]
        with pytest.raises(LeaseLost), a_store.transaction() as conn:
            a.check(conn, False)
    finally:
        a_store.close()
        b_store.close()


def test_instances_starting_at_the_same_instant_elect_exactly_one(postgres_url: str):
    n = 6
    barrier = threading.Barrier(n)
    results: dict[str, bool] = {}
    errors: list[BaseException] = []

    def instance(name: str) -> None:
        try:
            barrier.wait()
            store = Store(postgres_url)  # the schema is created by one, under its lock
            try:
                results[name] = Lease(store, name, seconds=30).tick()
            finally:
                store.close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=instance, args=(f"i{k}",)) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert sorted(results.values()) == [False] * (n - 1) + [True]


# -- an instance cut from the database ------------------------------------------------------------


class Proxy:
    """A TCP forwarder to the database that the test can cut and restore."""

    def __init__(self, port: int) -> None:
        self.target = port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.open = True
        self.sockets: list[socket.socket] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.open:
                client.close()
                continue
            upstream = socket.create_connection(("127.0.0.1", self.target))
            with self.lock:
                self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        self.open = False
        with self.lock:
            for s in self.sockets:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()
            self.sockets.clear()

    def restore(self) -> None:
        self.open = True

    def close(self) -> None:
        self.cut()
        self.listener.close()


def _healthz(server: HealthServer) -> tuple[int, dict[str, Any]]:
    code, _, body = server.answer("/healthz")
    return code, json.loads(body)


def test_an_instance_cut_from_the_database_stops_then_comes_back_as_standby(
    tmp_path: Path, postgres_url: str, demo_files: list[Path]
):
    url = make_url(postgres_url)
    proxy = Proxy(int(url.port or 5432))
    via_proxy = url.set(port=proxy.port).render_as_string(hide_password=False)
    config = load_config(
        write_config(
            tmp_path / "c.toml",
            source=str(demo_files[0]),
            database=via_proxy,
            extra='[service]\nlisten = "127.0.0.1:0"\n',
        )
    )
    a_store, b_store = Store(via_proxy), Store(postgres_url)
    stop = threading.Event()
    a = Leadership(Lease(a_store, "a", seconds=2, margin=0.5), renew_seconds=0.5, stop=stop)
    b = Lease(b_store, "b", seconds=2)
    a_store.fence = a.lease.check
    health = HealthServer(
        config, a_store, counters={}, alive=lambda: True, dry_run=True, leadership=a
    )
    try:
        post = pending_post(b_store)
        a.tick()
        assert a.role.role == ACTIVE
        code, body = _healthz(health)
        assert (code, body["role"], body["instance"]) == (200, ACTIVE, "a"), body["problems"]
        assert body["leader"]["holder"] == "a"
        metrics = health.answer("/metrics")[2].decode()
        assert "broadcaster_active 1.0" in metrics
        assert "broadcaster_lease_epoch 1.0" in metrics

        proxy.cut()
        a.tick()
        assert a.database_error is not None
        assert a.role.role == ACTIVE, "acts on its lease until its own clock says it ran out"
        code, body = _healthz(health)
        assert code == 503
        assert body["status"] == "degraded"
        assert any("database: unreachable" in p for p in body["problems"])
        time.sleep(2.2)
        a.tick()
        assert a.role.role == STANDBY
        assert a.active_epoch() is None
        assert b.tick()
        assert b.epoch == 2, "the lease ran out: the standby takes over"

        proxy.restore()
        a.tick()
        assert a.database_error is None
        assert a.role.role == STANDBY
        with pytest.raises(LeaseLost):
            a_store.claim(post, datetime.now(UTC))
        code, body = _healthz(health)
        assert (code, body["role"], body["status"]) == (200, STANDBY, "ok")
        assert body["leader"]["holder"] == "b"
        assert "broadcaster_active 0.0" in health.answer("/metrics")[2].decode()
    finally:
        stop.set()
        health.httpd.server_close()
        a_store.close()
        b_store.close()
        proxy.close()


# -- the send gate --------------------------------------------------------------------------------


@pytest.fixture
def closed_gate() -> Iterator[None]:
    set_send_gate(lambda: False)
    try:
        yield
    finally:
        set_send_gate(None)


def test_a_closed_send_gate_sends_nothing_to_any_platform(tmp_path: Path, closed_gate: None):
    from broadcaster.rehearsal.emulator import Emulator, EmulatorServer
    from tests.test_conformance import EMULATED, make_subject

    server = EmulatorServer(emulator=Emulator()).start()
    try:
        for platform in EMULATED:
            folder = tmp_path / platform
            folder.mkdir()
            subject = make_subject(platform, folder, server)
            try:
                with pytest.raises(RetryLater, match="lease"):
                    subject.publisher.publish(subject.post(card=subject.caps.card is not None))
            finally:
                subject.publisher.close()
        assert server.emulator.snapshot()["posts"] == []
    finally:
        server.stop()


# -- real daemons ---------------------------------------------------------------------------------


def _get(port: int) -> tuple[int, dict[str, Any]] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())
    except OSError:
        return None


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    """The operators' alerts arrive here (a local webhook receiver)."""
    with webhook_server() as hook:
        yield hook


def _daemon_config(
    folder: Path, name: str, database: str, feed: Path, port: int, extra: str = ""
) -> Path:
    path = write_config(
        folder / f"{name}.toml",
        source=str(feed),
        database=database,
        extra=f'[service]\nlisten = "127.0.0.1:{port}"\n{extra}',
    )
    body = path.read_text().replace(
        f"url = {json.dumps(database)}",
        f"url = {json.dumps(database)}\nlease_seconds = 3\nrenew_seconds = 0.5\n"
        f"instance = {json.dumps(name)}",
    )
    path.write_text(body)
    return path


def test_two_daemons_one_active_one_standby_and_a_pause_past_the_lease(
    tmp_path: Path,
    postgres_url: str,
    demo_files: list[Path],
    processes: Processes,
    run_cli,
    monkeypatch: pytest.MonkeyPatch,
    webhook: Webhook,
):
    feed = tmp_path / "feed"
    feed.mkdir()
    ports = {"a": free_port(), "b": free_port()}
    monkeypatch.setenv("ALERT_WEBHOOK_URL", webhook.url)
    alerts = '[[alerts]]\nname = "ops"\nkind = "webhook"\nurl = "ALERT_WEBHOOK_URL"\n'
    configs = {
        n: _daemon_config(tmp_path, n, postgres_url, feed, p, alerts) for n, p in ports.items()
    }
    logs = {n: (tmp_path / f"{n}.log").open("wb") for n in ports}

    def start(name: str) -> subprocess.Popen[Any]:
        return processes.start(
            [*broadcaster_cmd(), "--log-format", "json", "run", "--config", str(configs[name])],
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=logs[name],
        )

    def role(name: str) -> str | None:
        got = _get(ports[name])
        return None if got is None else got[1].get("role")

    # Half the night is there; the active one posts it, the standby waits.
    for path in demo_files[:7]:
        (feed / path.name).write_bytes(path.read_bytes())
    a = start("a")
    wait_for(lambda: role("a") == ACTIVE, timeout=60)
    b = start("b")
    wait_for(lambda: role("b") == STANDBY, timeout=60)
    wait_for(lambda: len(read_jsonl(tmp_path / "posts.jsonl")) > 0, timeout=60)
    for name, port in ports.items():  # both healthy, each saying what it is
        code, body = _get(port) or (0, {})
        assert code == 200, body
        assert body["leader"]["holder"] == "a"
        assert body["instance"] == name
    status = run_cli("status", "--config", str(configs["b"]), cwd=tmp_path)
    assert status.returncode == 0, status.stderr
    assert "leader: a since" in status.stdout
    assert "instance a: active" in status.stdout
    assert "instance b: standby" in status.stdout

    a.send_signal(signal.SIGSTOP)  # frozen past its lease: b takes over within it
    paused = time.monotonic()
    wait_for(lambda: role("b") == ACTIVE, timeout=30)
    takeover = time.monotonic() - paused
    assert takeover < 3 + 0.5 + 3, f"took over in {takeover:.1f} s"
    for path in demo_files[7:]:
        (feed / path.name).write_bytes(path.read_bytes())
    a.send_signal(signal.SIGCONT)  # wakes believing it leads: its lease is gone
    wait_for(lambda: role("a") == STANDBY, timeout=30)

    def takeovers() -> list[dict[str, Any]]:
        return [body for _, body in webhook.received if body.get("kind") == "standby"]

    wait_for(takeovers, timeout=60)  # b tells the operators, on its first poll as leader
    (told,) = takeovers()
    assert told["summary"].startswith("the standby b took over from a (lease epoch ")
    assert "broadcaster status" in told["resolve"]

    def night_done() -> bool:
        got = _get(ports["b"])
        if got is None:
            return False
        return got[1]["last_snapshot"] is not None and got[1]["last_snapshot"]["name"] == (
            demo_files[-1].name
        )

    wait_for(night_done, timeout=120)
    time.sleep(2)  # the last posts go out
    assert processes.stop(a) == 0
    assert processes.stop(b) == 0
    sent = read_jsonl(tmp_path / "posts.jsonl")
    keys = Counter(r["idempotency_key"] for r in sent)
    assert sent
    assert max(keys.values()) == 1, "no post twice"
    assert len(takeovers()) == 1, "one takeover, one alert (a, back as standby, sends none)"


def test_a_second_daemon_on_one_sqlite_file_is_refused(
    tmp_path: Path, demo_files: list[Path], processes: Processes
):
    feed = tmp_path / "feed"
    feed.mkdir()
    (feed / demo_files[0].name).write_bytes(demo_files[0].read_bytes())
    port = free_port()
    config = write_config(
        tmp_path / "c.toml", source=str(feed), extra=f'[service]\nlisten = "127.0.0.1:{port}"\n'
    )
    cmd = [*broadcaster_cmd(), "run", "--config", str(config)]
    first = processes.start(cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(lambda: (_get(port) or (0, {}))[1].get("role") == ACTIVE, timeout=60)
    second = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert second.returncode == 2
    said = " ".join(second.stderr.split())  # as the terminal wrapped it
    assert "already running on the SQLite database" in said
    assert f"pid {first.pid}" in said
    # Killed, the first leaves no lock behind: a restart is not refused, and leads at once.
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    again = processes.start(cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(lambda: (_get(port) or (0, {}))[1].get("role") == ACTIVE, timeout=60)
    assert processes.stop(again) == 0


def test_failover_bench_short_version_posts_nothing_twice(postgres_server: str):
    """Three daemons on PostgreSQL against the emulator; the active one killed twice and paused
    past its lease twice: every seat on every platform exactly once."""
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "bench_failover.py"),
            *("--seats", "8", "--kills", "2", "--pauses", "2", "--json"),
            *("--postgres", postgres_server, "--max-seconds", "240"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        start_new_session=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    figures = json.loads(result.stdout)
    assert figures["duplicates"] == 0
    assert figures["missing"] == 0
    assert figures["takeover_max"] < 3 + 0.5 + 3  # a lease, a renewal, and slack
    assert set(figures["exit_codes"].values()) == {0}


def test_an_instance_frozen_mid_ingest_does_not_hold_up_the_takeover(
    postgres_url: str, tmp_path: Path, demo_files: list[Path]
) -> None:
    """The ingest's fence is checked last in its transaction: an instance frozen half-way
    through a snapshot (a paused VM, SIGSTOP) holds no lock on the lease row, so a standby
    takes over once the lease runs out; the frozen ingest, when it wakes, is rolled back."""
    from broadcaster.core.clock import FeedClock
    from broadcaster.ingest.sources import make_fetched
    from broadcaster.runtime.cycle import Pipeline

    config = load_config(write_config(tmp_path / "c.toml", source="f", database=postgres_url))
    a_store, b_store = Store(postgres_url), Store(postgres_url)
    try:
        a = Lease(a_store, "a", seconds=1, margin=0)
        b = Lease(b_store, "b", seconds=1)
        assert a.tick()
        a_store.fence = a.check
        pipeline = Pipeline(config, a_store, clock=FeedClock(), dry_run=True)
        frozen, wake = threading.Event(), threading.Event()
        insert_events = a_store.insert_events

        def freezing(*args: Any, **kwargs: Any) -> Any:
            ids = insert_events(*args, **kwargs)
            frozen.set()
            wake.wait(30)  # frozen mid-transaction, the events written, the posts not yet
            return ids

        a_store.insert_events = freezing  # type: ignore[method-assign]
        outcome: list[BaseException | str] = []

        def ingest() -> None:
            body = demo_files[3].read_bytes()
            try:
                outcome.append(pipeline.ingest(make_fetched(body, demo_files[3].name), "t").outcome)
            except BaseException as exc:  # the outcome is what is checked
                outcome.append(exc)

        thread = threading.Thread(target=ingest)
        thread.start()
        assert frozen.wait(30)
        time.sleep(1.2)  # the lease runs out while `a` is frozen
        took: list[bool] = []
        taker = threading.Thread(target=lambda: took.append(b.tick()))
        taker.start()
        taker.join(10)
        frozen_still = thread.is_alive()
        wake.set()
        thread.join(30)
        assert frozen_still
        assert took == [True], "the takeover waited for the frozen instance"
        assert len(outcome) == 1
        assert isinstance(outcome[0], LeaseLost)
        with b_store.engine.connect() as conn:
            assert conn.execute(select(snapshots.c.id)).first() is None  # rolled back
    finally:
        a_store.close()
        b_store.close()
