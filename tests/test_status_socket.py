"""The daemon's status socket (runtime/status_socket.py, runtime/status_server.py): what
`broadcaster status` asks before it reads the database itself. Real Unix sockets in real
folders; the daemon's side is the real server class, given a report to serve."""

from __future__ import annotations

import os
import socket
import socketserver
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from broadcaster.core.logs import register_secret
from broadcaster.core.paths import config_digest
from broadcaster.domain.posts import PostState
from broadcaster.runtime import status_server, status_socket
from broadcaster.runtime.configuration import load_config
from broadcaster.runtime.status import collect_status
from broadcaster.runtime.status_server import AT_ONCE, StatusSocket
from broadcaster.runtime.status_socket import (
    REPORT_KEYS,
    ConfigFile,
    StatusUnavailable,
    ask,
    locate,
    read_config,
)
from tests.conftest import invoke, write_config

DIGEST = "d" * 64  # the configuration's, as the daemon and the command both read it
REPORT = {key: None for key in REPORT_KEYS} | {
    "now": "2030-07-29T02:00:00+07:00",
    "states": [PostState.PENDING, PostState.SENT],
    "outbox": {("x-test", "x"): {"sent": 3, "pending": 1}, ("fb", "facebook"): {"sent": 9}},
    "accounts": [{"name": "x-test", "reason": "Ruang Tamu ក្រុង (TEST)", "budget_left": None}],
    "held": [{"id": 7, "account": "fb", "reason": "implausible: D06 went down"}],
}


def config_for(url: str, digest: str = DIGEST) -> ConfigFile:
    return ConfigFile(url, digest)


@pytest.fixture
def serve() -> Iterator[Callable[..., StatusSocket]]:
    """Serves a report on a database's socket; every server made is stopped, pass or fail."""
    made: list[StatusSocket] = []

    def start(url: str, report=None, who=("vm:1", "active"), *, expect: bool = True):
        server = StatusSocket(url, DIGEST, report or (lambda: REPORT), lambda: who)
        made.append(server)
        assert server.start() is expect
        return server

    yield start
    for server in made:
        server.stop()


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A folder with a short path: a Unix socket's path has 107 bytes at most, and pytest's
    own folders are long."""
    with tempfile.TemporaryDirectory(prefix="bss-") as folder:
        os.chmod(folder, 0o755)  # noqa: S103 (what a data folder usually is)
        yield Path(folder)


@pytest.fixture
def listener() -> Iterator[Callable[[Path, int], socket.socket]]:
    """A bare listening socket at a path (a stand-in or a frozen daemon), closed after."""
    made: list[socket.socket] = []

    def listen(path: Path, backlog: int = 4) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX)
        made.append(sock)
        sock.bind(str(path))
        sock.listen(backlog)
        return sock

    yield listen
    for sock in made:
        sock.close()


def raw_ask(path: Path, request: bytes = b"status\n") -> bytes:
    with socket.socket(socket.AF_UNIX) as conn:
        conn.settimeout(10)
        conn.connect(str(path))
        conn.sendall(request)
        return b"".join(iter(lambda: conn.recv(65536), b""))


def test_the_report_arrives_as_the_daemon_made_it(short_tmp: Path, serve) -> None:
    url = f"sqlite:///{short_tmp / 'state.db'}"
    serve(url)
    path = short_tmp / "state.db.status.sock"
    assert path.is_socket()
    assert oct(path.stat().st_mode & 0o777) == oct(0o600)
    answer = ask(config_for(url))
    assert answer is not None
    assert (answer.pid, answer.instance, answer.role) == (os.getpid(), "vm:1", "active")
    # The outbox keeps its (account, platform) keys; states and Khmer text come back equal.
    assert answer.report == REPORT


def test_the_wire_carries_every_key_of_the_real_report(tmp_path: Path) -> None:
    """REPORT_KEYS is what collect_status gives: a key added there without raising PROTOCOL
    would be refused by every command as 'another version'."""
    config = load_config(None).with_overrides(
        database=load_config(None).database.model_copy(
            update={"url": f"sqlite:///{tmp_path / 's.db'}"}
        )
    )
    assert set(collect_status(config)) == REPORT_KEYS


def test_a_report_of_another_shape_is_refused_not_printed(short_tmp: Path, serve) -> None:
    url = f"sqlite:///{short_tmp / 'state.db'}"
    serve(url, lambda: {**REPORT, "added_by_a_newer_version": 1})
    with pytest.raises(StatusUnavailable, match=r"incomplete answer .*added_by_a_newer_version"):
        ask(config_for(url))


def test_secrets_are_masked_before_they_leave_the_daemon(short_tmp: Path, serve) -> None:
    secret = "EAAGtokenvalue-status-socket-0123456789"
    register_secret(secret)
    url = f"sqlite:///{short_tmp / 'state.db'}"
    report = {**REPORT, "accounts": [{"name": "fb", "reason": f"paused: bad token {secret}"}]}
    serve(url, lambda: report)
    raw = raw_ask(short_tmp / "state.db.status.sock")
    assert b"paused: bad token" in raw
    assert secret.encode() not in raw


def test_a_secret_in_a_failure_is_masked_before_it_is_cut(short_tmp: Path, serve) -> None:
    secret = "EAAGanothertoken-status-socket-9876543210"
    register_secret(secret)
    url = f"sqlite:///{short_tmp / 'state.db'}"

    def broken() -> dict:
        raise OSError("x" * 280 + f" token={secret}")  # cut at 300: mid-secret

    serve(url, broken)
    raw = raw_ask(short_tmp / "state.db.status.sock")
    assert b"OSError: xxx" in raw
    assert secret[:6].encode() not in raw


def test_without_a_daemon_nothing_is_asked(short_tmp: Path) -> None:
    assert ask(config_for(f"sqlite:///{short_tmp / 'state.db'}")) is None
    assert ask(config_for(f"sqlite:///{short_tmp / 'no-such-folder' / 'state.db'}")) is None
    assert ask(config_for("sqlite:///:memory:")) is None
    (short_tmp / "file").write_text("")
    assert ask(config_for(f"sqlite:///{short_tmp / 'file' / 'state.db'}")) is None
    loop = short_tmp / "loop"
    loop.symlink_to(loop)
    assert ask(config_for(f"sqlite:///{loop / 'state.db'}")) is None


def test_a_killed_daemons_socket_is_named_and_taken_over(short_tmp: Path, serve) -> None:
    url = f"sqlite:///{short_tmp / 'state.db'}"
    path = short_tmp / "state.db.status.sock"
    left = socket.socket(socket.AF_UNIX)
    left.bind(str(path))  # bound and closed without removing it: what SIGKILL leaves
    left.close()
    with pytest.raises(StatusUnavailable, match="no daemon answers on it"):
        ask(config_for(url))
    serve(url)
    answer = ask(config_for(url))
    assert answer is not None
    assert answer.report == REPORT


def test_a_daemon_that_does_not_answer_is_not_waited_for(short_tmp: Path, listener) -> None:
    url = f"sqlite:///{short_tmp / 'state.db'}"
    listener(short_tmp / "state.db.status.sock")  # never accepts: a SIGSTOPped daemon
    started = time.monotonic()
    with pytest.raises(StatusUnavailable, match=r"did not answer .* within 0\.5 s"):
        ask(config_for(url), timeout=0.5)
    assert time.monotonic() - started < 3


def test_an_answer_that_trickles_is_given_up_on_in_time(short_tmp: Path, listener) -> None:
    """The timeout is for the whole answer, not for each piece of it."""
    url = f"sqlite:///{short_tmp / 'state.db'}"
    sock = listener(short_tmp / "state.db.status.sock")
    stop = threading.Event()

    def trickle() -> None:
        conn, _ = sock.accept()
        with conn:
            while not stop.is_set():
                conn.sendall(b" ")
                time.sleep(0.05)

    threading.Thread(target=trickle, daemon=True).start()
    started = time.monotonic()
    try:
        with pytest.raises(StatusUnavailable, match="did not answer"):
            ask(config_for(url), timeout=0.6)
    finally:
        stop.set()
    assert time.monotonic() - started < 3


def test_an_endless_answer_is_cut_off(short_tmp: Path, listener, monkeypatch) -> None:
    monkeypatch.setattr(status_socket, "ANSWER_LIMIT", 10_000)
    url = f"sqlite:///{short_tmp / 'state.db'}"
    sock = listener(short_tmp / "state.db.status.sock")

    def flood() -> None:
        conn, _ = sock.accept()
        with conn:
            for _ in range(100):
                try:
                    conn.sendall(b"{" * 1000)
                except OSError:
                    return

    threading.Thread(target=flood, daemon=True).start()
    with pytest.raises(StatusUnavailable, match="answer longer than 10000 bytes"):
        ask(config_for(url))


def test_a_frozen_daemons_socket_is_left_to_it(short_tmp: Path, listener, serve) -> None:
    """A socket whose queue is full (its daemon frozen) is not taken for a dead one."""
    path = short_tmp / "state.db.status.sock"
    listener(path, 0)
    queued = []
    for _ in range(4):  # fill the queue: the next connect waits
        conn = socket.socket(socket.AF_UNIX)
        conn.setblocking(False)
        try:
            conn.connect(str(path))
        except BlockingIOError:
            conn.close()
            break
        queued.append(conn)
    try:
        serve(f"sqlite:///{short_tmp / 'state.db'}", expect=False)
        assert path.is_socket()
        # Asking it does not wait on the full queue for longer than it was told to.
        started = time.monotonic()
        with pytest.raises(StatusUnavailable, match="did not answer"):
            ask(config_for(f"sqlite:///{short_tmp / 'state.db'}"), timeout=0.5)
        assert time.monotonic() - started < 3
    finally:
        for conn in queued:
            conn.close()


def test_a_socket_another_daemon_serves_is_left_to_it(short_tmp: Path, serve) -> None:
    url = f"sqlite:///{short_tmp / 'state.db'}"
    serve(url, who=("first", "active"))
    second = serve(url, who=("second", "standby"), expect=False)
    second.stop()  # stops nothing it does not own
    answer = ask(config_for(url))
    assert answer is not None
    assert answer.instance == "first"


def test_stopping_removes_its_own_socket_only(short_tmp: Path, serve) -> None:
    url = f"sqlite:///{short_tmp / 'state.db'}"
    path = short_tmp / "state.db.status.sock"
    first = serve(url)
    first.stop()
    assert not path.exists()
    assert ask(config_for(url)) is None
    # Another daemon's socket under the same name, made while this one still serves (its
    # own was removed by hand), is not this one's to remove when it stops.
    again = serve(url)
    path.unlink()
    serve(url, who=("other", "active"))
    again.stop()
    answer = ask(config_for(url))
    assert answer is not None
    assert answer.instance == "other"


def test_a_failing_report_is_said_not_served_as_empty(short_tmp: Path, serve) -> None:
    url = f"sqlite:///{short_tmp / 'state.db'}"

    def broken() -> dict:
        raise OSError("disk I/O error")

    serve(url, broken)
    with pytest.raises(StatusUnavailable, match="could not read its status: OSError: disk I/O"):
        ask(config_for(url))


def test_an_answer_for_another_database_is_refused(short_tmp: Path, serve) -> None:
    serve(f"sqlite:///{short_tmp / 'a.db'}")
    os.rename(short_tmp / "a.db.status.sock", short_tmp / "b.db.status.sock")
    with pytest.raises(StatusUnavailable, match="runs on another database"):
        ask(config_for(f"sqlite:///{short_tmp / 'b.db'}"))


def test_one_database_reached_by_another_name_is_the_same(short_tmp: Path, serve) -> None:
    (short_tmp / "data").mkdir()
    (short_tmp / "link").symlink_to(short_tmp / "data")
    serve(f"sqlite:///{short_tmp / 'data' / 'state.db'}")
    for url in (
        f"sqlite:///{short_tmp / 'link' / 'state.db'}",
        f"sqlite:///{short_tmp / 'data' / 'state.db'}?timeout=20",
    ):
        answer = ask(config_for(url))
        assert answer is not None, url


def test_an_answer_from_another_configuration_is_refused(short_tmp: Path, serve) -> None:
    """A daemon started before the file was edited would show the old configuration's view
    and hide the edit's error: its answer is not shown."""
    url = f"sqlite:///{short_tmp / 'state.db'}"
    serve(url)
    with pytest.raises(StatusUnavailable, match="started with another configuration"):
        ask(config_for(url, digest="e" * 64))


def test_silent_and_excess_askers_cost_the_daemon_little(
    short_tmp: Path, serve, monkeypatch
) -> None:
    made = []

    def counted() -> dict:
        made.append(1)
        return REPORT

    url = f"sqlite:///{short_tmp / 'state.db'}"
    server = serve(url, counted)
    path = short_tmp / "state.db.status.sock"
    # A client that connects and says nothing is dropped within about a second.
    with socket.socket(socket.AF_UNIX) as silent:
        silent.settimeout(10)
        silent.connect(str(path))
        started = time.monotonic()
        assert silent.recv(10) == b""
        assert time.monotonic() - started < 5
    # Idle connections beyond AT_ONCE are closed at once; the first AT_ONCE are held (here
    # for up to 5 s) while they might still ask.
    monkeypatch.setattr(status_server, "READ_WITHIN", 5)
    idle = [socket.socket(socket.AF_UNIX) for _ in range(AT_ONCE + 3)]
    try:
        for conn in idle:
            for _ in range(100):  # the queue is short: wait for the server to take each
                try:
                    conn.connect(str(path))
                    break
                except BlockingIOError:
                    time.sleep(0.05)
        for conn in idle[AT_ONCE:]:
            conn.settimeout(2)
            assert conn.recv(10) == b"", "closed at once"
        for conn in idle[:AT_ONCE]:
            conn.settimeout(0.2)
            with pytest.raises(TimeoutError):
                conn.recv(10)  # still open, waiting for its request
    finally:
        for conn in idle:
            conn.close()
    # The held places are given back as the server sees those closes (at once, but by threads
    # a loaded machine may not run at once): an asker before that is rightly told "busy".
    slots = server._server._slots
    deadline = time.monotonic() + 5
    while slots._value < AT_ONCE and time.monotonic() < deadline:
        time.sleep(0.01)
    assert slots._value == AT_ONCE
    # Askers in a loop get the same answer for a second: one report made, not ten. (One more
    # for each further second the loop took: on a loaded host ten asks can outlast one.)
    started = time.monotonic()
    for _ in range(10):
        assert ask(config_for(url)) is not None
    took = time.monotonic() - started
    assert 1 <= len(made) <= 1 + int(took / status_server.FRESH_FOR), (len(made), took)


def test_a_folder_others_may_write_in_is_neither_served_nor_asked(
    short_tmp: Path, serve, listener
) -> None:
    url = f"sqlite:///{short_tmp / 'state.db'}"
    os.chmod(short_tmp, 0o777)  # noqa: S103 (the unsafe folder under test)
    serve(url, expect=False)
    assert not (short_tmp / "state.db.status.sock").exists()
    listener(short_tmp / "state.db.status.sock")  # someone else's stand-in
    with pytest.raises(StatusUnavailable, match="others may write in it"):
        ask(config_for(url))


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")
def test_a_socket_of_another_user_is_not_believed(short_tmp: Path, listener) -> None:
    path = short_tmp / "state.db.status.sock"
    stand_in = listener(path)
    os.chown(path, 65534, 65534)
    with pytest.raises(StatusUnavailable, match="belongs to uid 65534"):
        ask(config_for(f"sqlite:///{short_tmp / 'state.db'}"))
    stand_in.setblocking(False)
    with pytest.raises(BlockingIOError):
        stand_in.accept()  # nobody connected to it


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a folder to another user needs root")
def test_a_private_folder_someone_else_made_is_not_used(
    short_tmp: Path, serve, listener, monkeypatch
) -> None:
    """Another user creating /tmp/broadcaster-0 before root's daemon: root neither asks there
    (a forged calm night) nor serves there."""
    monkeypatch.setattr(tempfile, "tempdir", str(short_tmp))
    url = "postgresql+psycopg://broadcaster@db.example/night"
    folder = short_tmp / f"broadcaster-{os.geteuid()}"
    folder.mkdir(mode=0o700)
    os.chown(folder, 65534, 65534)
    listener(folder / f"status-{status_socket._digest(url)}.sock")  # the stand-in
    with pytest.raises(StatusUnavailable, match="belongs to uid 65534"):
        ask(config_for(url))
    serve(url, expect=False)


def test_other_databases_use_a_private_folder(short_tmp: Path, serve, monkeypatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(short_tmp))
    url = "postgresql+psycopg://broadcaster@db.example/night"
    serve(url)
    folder = short_tmp / f"broadcaster-{os.geteuid()}"
    assert oct(folder.stat().st_mode & 0o777) == oct(0o700)
    where = locate(url)
    assert where is not None
    assert where.path.parent == folder
    answer = ask(config_for(url))
    assert answer is not None
    assert answer.report == REPORT
    assert ask(config_for("postgresql+psycopg://broadcaster@db.example/another")) is None
    os.chmod(folder, 0o750)  # noqa: S103 (the unsafe folder under test)
    with pytest.raises(StatusUnavailable, match="others may write in it"):
        ask(config_for(url))


def test_the_configuration_is_read_as_the_daemon_reads_it(tmp_path: Path) -> None:
    base = '[feed]\nsource = "feed"\n[[accounts]]\nname = "x"\nplatform = "x"\ndry_run = true\n'
    (tmp_path / "elsewhere").mkdir()
    for database in (
        "",
        '[database]\nurl = "sqlite:///state.db"\n',
        '[database]\nurl = "sqlite:///sub/../night.db"\n',
        f'[database]\nurl = "sqlite:///{tmp_path}/abs.db"\n',
        '[database]\nurl = "sqlite:///~/night.db"\n',
        '[database]\nurl = "postgresql+psycopg://b@db/night"\n',
    ):
        cfg = tmp_path / "c.toml"
        cfg.write_text(base + database)
        # Through a link in another folder: relative paths resolve against the real file's.
        link = tmp_path / "elsewhere" / "link.toml"
        link.unlink(missing_ok=True)
        link.symlink_to(cfg)
        for path in (cfg, link):
            read = read_config(path)
            loaded = load_config(path)
            assert read is not None
            assert (read.database_url, read.digest) == (
                loaded.database_url,
                loaded.source_digest,
            ), (database, path)
    default = read_config(None)
    assert default is not None
    assert default.database_url == load_config(None).database_url
    (tmp_path / "broken.toml").write_text("[database\n")
    assert read_config(tmp_path / "broken.toml") is None
    assert read_config(tmp_path / "absent.toml") is None
    (tmp_path / "odd.toml").write_text(base + "[database]\nurl = 5\n")
    assert read_config(tmp_path / "odd.toml") is None


def test_a_configuration_that_is_not_a_file_is_left_unread(tmp_path: Path) -> None:
    """A pipe (`--config /dev/stdin`) read here would be empty for the full reading."""
    fifo = tmp_path / "pipe.toml"
    os.mkfifo(fifo)
    assert read_config(fifo) is None  # returns at once: opening a fifo would block


def test_a_report_of_another_inner_shape_is_read_around(short_tmp: Path, serve) -> None:
    """A daemon of another version whose report has the same keys but other shapes inside
    (a renamed field): nothing of it is printed, the database is read instead."""
    cfg = write_config(short_tmp / "c.toml", source="feed")
    config = load_config(cfg)
    report = collect_status(config)
    report["accounts"] = [
        {k: v for k, v in a.items() if k != "budget_left"} for a in report["accounts"]
    ]
    server = StatusSocket(
        config.database_url, config_digest(cfg.read_bytes()), lambda: report, lambda: ("a", "")
    )
    assert server.start()
    try:
        done = invoke("status", "--config", str(cfg))
    finally:
        server.stop()
    assert done.returncode == 0, done.stderr
    assert "not of this version's shape (KeyError: 'budget_left')" in done.stderr
    assert "as the running daemon" not in done.stdout
    assert done.stdout.startswith("database: sqlite")


def test_a_daemon_of_the_previous_version_is_named_so(short_tmp: Path, listener) -> None:
    sock = listener(short_tmp / "state.db.status.sock")

    def answer_v1() -> None:
        conn, _ = sock.accept()
        with conn:
            conn.recv(100)
            conn.sendall(b'{"protocol": 1, "database": "x", "report": {}}\n')

    threading.Thread(target=answer_v1, daemon=True).start()
    with pytest.raises(StatusUnavailable, match="a daemon of another version answers there"):
        ask(config_for(f"sqlite:///{short_tmp / 'state.db'}"))


def test_a_socket_that_cannot_be_looked_at_is_named(short_tmp: Path, serve, monkeypatch) -> None:
    url = f"sqlite:///{short_tmp / 'state.db'}"
    serve(url)
    real_lstat = os.lstat

    def refused(path, *args, **kwargs):
        if str(path).endswith(".status.sock"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_lstat(path, *args, **kwargs)

    monkeypatch.setattr(status_socket.os, "lstat", refused)
    with pytest.raises(StatusUnavailable, match="Permission denied"):
        ask(config_for(url))


def test_threads_that_cannot_start_lose_no_place(short_tmp: Path, serve, monkeypatch) -> None:
    """Requests whose thread could not be started (a task limit) give their place back: the
    socket answers again once threads can start."""
    url = f"sqlite:///{short_tmp / 'state.db'}"
    serve(url)

    def no_thread(self, request, client_address):
        raise RuntimeError("can't start new thread")

    with monkeypatch.context() as patch:
        patch.setattr(socketserver.ThreadingMixIn, "process_request", no_thread)
        patch.setattr(socketserver.BaseServer, "handle_error", lambda *a: None)
        for _ in range(AT_ONCE + 2):
            with pytest.raises(StatusUnavailable):
                ask(config_for(url))
    answer = ask(config_for(url))
    assert answer is not None
    assert answer.report == REPORT


def test_a_busy_daemon_and_a_trickling_asker_are_said_and_dropped(short_tmp: Path, serve) -> None:
    url = f"sqlite:///{short_tmp / 'state.db'}"
    server = serve(url)
    path = short_tmp / "state.db.status.sock"
    # A client trickling its request a byte at a time is dropped within about a second,
    # before its request is whole: it gets no answer.
    with socket.socket(socket.AF_UNIX) as slow:
        slow.settimeout(10)
        slow.connect(str(path))
        started = time.monotonic()
        answered = b""
        try:
            for byte in b"status\n":
                slow.sendall(bytes([byte]))
                time.sleep(0.3)
            answered = slow.recv(100)
        except OSError:
            pass  # closed under it: what is wanted
        assert answered == b""
        assert time.monotonic() - started < 3
    # All places held by silent askers: the next asker is told the daemon is busy.
    silent = [socket.socket(socket.AF_UNIX) for _ in range(AT_ONCE)]
    try:
        for conn in silent:
            conn.connect(str(path))
        # Taken by the server (on a loaded machine that takes a while; each place is held for
        # about a second): the semaphore's count, read rather than guessed with a sleep.
        slots = server._server._slots
        deadline = time.monotonic() + 5
        while slots._value > 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert slots._value == 0
        with pytest.raises(StatusUnavailable, match="closed the connection without answering"):
            ask(config_for(url))
    finally:
        for conn in silent:
            conn.close()


def test_a_folder_that_cannot_be_had_is_logged(short_tmp: Path, monkeypatch, caplog) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(short_tmp))
    (short_tmp / "elsewhere").mkdir()
    (short_tmp / f"broadcaster-{os.geteuid()}").symlink_to(short_tmp / "elsewhere")
    server = StatusSocket("postgresql://b@db/night", DIGEST, lambda: REPORT, lambda: ("a", ""))
    with caplog.at_level("INFO", logger="broadcaster.runtime.status_server"):
        assert not server.start()
    assert "not a folder" in caplog.text


def test_a_daemon_that_hangs_up_without_answering_is_said(short_tmp: Path, listener) -> None:
    sock = listener(short_tmp / "state.db.status.sock")

    def hang_up() -> None:
        conn, _ = sock.accept()
        with conn:
            conn.recv(100)  # read the request, then close: no reset, no answer

    threading.Thread(target=hang_up, daemon=True).start()
    with pytest.raises(StatusUnavailable, match="closed the connection without answering"):
        ask(config_for(f"sqlite:///{short_tmp / 'state.db'}"))


def test_a_daemon_that_closes_before_the_request_is_sent_is_said_busy(
    short_tmp: Path, serve, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A busy daemon closes a connection at once; an asker still writing its request then
    meets a broken pipe, which says the same as a connection closed without an answer."""
    url = f"sqlite:///{short_tmp / 'state.db'}"
    serve(url)

    def closed_under_it(self: socket.socket, data: bytes) -> None:
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(socket.socket, "sendall", closed_under_it)
    with pytest.raises(StatusUnavailable, match="closed the connection without answering"):
        ask(config_for(url))
