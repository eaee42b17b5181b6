"""The daemon's status socket (runtime/status_socket.py, runtime/status_server.py): what
`broadcaster status` asks before it reads the database itself. Real Unix sockets in real
folders; the daemon's side is the real server class, given a report to serve."""

from __future__ import annotations

import os
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from broadcaster.core.logs import register_secret
from broadcaster.domain.posts import PostState
from broadcaster.runtime.configuration import load_config
from broadcaster.runtime.status_server import StatusSocket
from broadcaster.runtime.status_socket import (
    StatusUnavailable,
    ask,
    database_url_in,
    socket_path,
)

REPORT = {
    "now": "2030-07-29T02:00:00+07:00",
    "states": [PostState.PENDING, PostState.SENT],
    "outbox": {("x-test", "x"): {"sent": 3, "pending": 1}, ("fb", "facebook"): {"sent": 9}},
    "accounts": [{"name": "x-test", "reason": "Ruang Tamu ក្រុង (TEST)", "budget_left": None}],
    "held": [{"id": 7, "account": "fb", "reason": "implausible: D06 went down"}],
}


def served(url: str, report: dict | None = None, who=("vm:1", "active")) -> StatusSocket:
    made = StatusSocket(url, lambda: report or REPORT, lambda: who)
    assert made.start(), "the socket should be served"
    return made


@pytest.fixture
def sockets() -> Iterator[list[StatusSocket]]:
    """Every socket a test serves is stopped, whether it passes or not."""
    made: list[StatusSocket] = []
    yield made
    for one in made:
        one.stop()


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A folder with a short path: a Unix socket's path has 107 bytes at most, and pytest's
    own folders are long."""
    with tempfile.TemporaryDirectory(prefix="bss-") as folder:
        os.chmod(folder, 0o755)  # noqa: S103 (what a data folder usually is)
        yield Path(folder)


def test_the_report_arrives_as_the_daemon_made_it(short_tmp: Path, sockets) -> None:
    url = f"sqlite:///{short_tmp / 'state.db'}"
    sockets.append(served(url))
    path = short_tmp / "state.db.status.sock"
    assert path.is_socket()
    assert oct(path.stat().st_mode & 0o777) == oct(0o600)
    answer = ask(url)
    assert answer is not None
    assert (answer.pid, answer.instance, answer.role) == (os.getpid(), "vm:1", "active")
    # The outbox keeps its (account, platform) keys; states and Khmer text come back equal.
    assert answer.report == REPORT


def test_secrets_are_masked_before_they_leave_the_daemon(short_tmp: Path, sockets) -> None:
    secret = "EAAGtokenvalue-status-socket-0123456789"
    register_secret(secret)
    url = f"sqlite:///{short_tmp / 'state.db'}"
    report = {**REPORT, "accounts": [{"name": "fb", "reason": f"paused: bad token {secret}"}]}
    sockets.append(served(url, report))
    with socket.socket(socket.AF_UNIX) as conn:
        conn.connect(str(short_tmp / "state.db.status.sock"))
        conn.sendall(b"status\n")
        raw = b"".join(iter(lambda: conn.recv(65536), b""))
    assert b"paused: bad token" in raw
    assert secret.encode() not in raw


def test_without_a_daemon_nothing_is_asked(short_tmp: Path) -> None:
    assert ask(f"sqlite:///{short_tmp / 'state.db'}") is None
    assert ask(f"sqlite:///{short_tmp / 'no-such-folder' / 'state.db'}") is None
    assert ask("sqlite:///:memory:") is None


def test_a_killed_daemons_socket_is_named_and_taken_over(short_tmp: Path, sockets) -> None:
    url = f"sqlite:///{short_tmp / 'state.db'}"
    path = short_tmp / "state.db.status.sock"
    left = socket.socket(socket.AF_UNIX)
    left.bind(str(path))  # bound and closed without removing it: what SIGKILL leaves
    left.close()
    with pytest.raises(StatusUnavailable, match="no daemon answers on it"):
        ask(url)
    sockets.append(served(url))
    answer = ask(url)
    assert answer is not None
    assert answer.report == REPORT


def test_a_daemon_that_does_not_answer_is_not_waited_for(short_tmp: Path) -> None:
    url = f"sqlite:///{short_tmp / 'state.db'}"
    frozen = socket.socket(socket.AF_UNIX)
    frozen.bind(str(short_tmp / "state.db.status.sock"))
    frozen.listen(4)  # connections queue, nobody ever accepts: a SIGSTOPped daemon
    try:
        started = time.monotonic()
        with pytest.raises(StatusUnavailable, match=r"did not answer .* within 0\.5 s"):
            ask(url, timeout=0.5)
        assert time.monotonic() - started < 5
    finally:
        frozen.close()


def test_a_socket_another_daemon_serves_is_left_to_it(short_tmp: Path, sockets) -> None:
    url = f"sqlite:///{short_tmp / 'state.db'}"
    sockets.append(served(url, who=("first", "active")))
    second = StatusSocket(url, lambda: REPORT, lambda: ("second", "standby"))
    assert not second.start()
    second.stop()  # stops nothing it does not own
    answer = ask(url)
    assert answer is not None
    assert answer.instance == "first"


def test_stopping_removes_its_own_socket_only(short_tmp: Path, sockets) -> None:
    url = f"sqlite:///{short_tmp / 'state.db'}"
    first = served(url)
    first.stop()
    assert not (short_tmp / "state.db.status.sock").exists()
    assert ask(url) is None
    # A socket that took the name since is not the stopping one's to remove.
    again = served(url)
    sockets.append(again)
    first.stop()
    assert ask(url) is not None


def test_a_failing_report_is_said_not_served_as_empty(short_tmp: Path, sockets) -> None:
    url = f"sqlite:///{short_tmp / 'state.db'}"

    def broken() -> dict:
        raise OSError("disk I/O error")

    made = StatusSocket(url, broken, lambda: ("vm:1", "active"))
    assert made.start()
    sockets.append(made)
    with pytest.raises(StatusUnavailable, match="could not read its status: OSError: disk I/O"):
        ask(url)


def test_a_folder_others_may_write_in_is_neither_served_nor_asked(short_tmp: Path) -> None:
    url = f"sqlite:///{short_tmp / 'state.db'}"
    os.chmod(short_tmp, 0o777)  # noqa: S103 (the unsafe folder under test)
    made = StatusSocket(url, lambda: REPORT, lambda: ("vm:1", "active"))
    assert not made.start()
    assert not (short_tmp / "state.db.status.sock").exists()
    # Someone else's socket there is not believed either.
    stand_in = socket.socket(socket.AF_UNIX)
    stand_in.bind(str(short_tmp / "state.db.status.sock"))
    stand_in.listen(1)
    try:
        with pytest.raises(StatusUnavailable, match="others may write in it"):
            ask(url)
    finally:
        stand_in.close()


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another user needs root")
def test_a_socket_of_another_user_is_not_believed(short_tmp: Path) -> None:
    path = short_tmp / "state.db.status.sock"
    stand_in = socket.socket(socket.AF_UNIX)
    stand_in.bind(str(path))
    stand_in.listen(1)
    os.chown(path, 65534, 65534)
    try:
        with pytest.raises(StatusUnavailable, match="belongs to uid 65534"):
            ask(f"sqlite:///{short_tmp / 'state.db'}")
        stand_in.setblocking(False)
        with pytest.raises(BlockingIOError):
            stand_in.accept()  # nobody connected to it
    finally:
        stand_in.close()


def test_other_databases_use_a_private_folder(short_tmp: Path, sockets, monkeypatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(short_tmp))
    url = "postgresql+psycopg://broadcaster@db.example/night"
    sockets.append(served(url))
    folder = short_tmp / f"broadcaster-{os.geteuid()}"
    assert oct(folder.stat().st_mode & 0o777) == oct(0o700)
    assert socket_path(url) is not None
    assert socket_path(url).parent == folder
    answer = ask(url)
    assert answer is not None
    assert answer.report == REPORT
    assert ask("postgresql+psycopg://broadcaster@db.example/another") is None
    os.chmod(folder, 0o750)  # noqa: S103 (the unsafe folder under test)
    with pytest.raises(StatusUnavailable, match="others may write in it"):
        ask(url)


def test_the_database_is_found_as_the_configuration_finds_it(tmp_path: Path) -> None:
    base = '[feed]\nsource = "feed"\n[[accounts]]\nname = "x"\nplatform = "x"\ndry_run = true\n'
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
        assert database_url_in(cfg) == load_config(cfg).database_url, database
    assert database_url_in(None) == load_config(None).database_url
    (tmp_path / "broken.toml").write_text("[database\n")
    assert database_url_in(tmp_path / "broken.toml") is None
    assert database_url_in(tmp_path / "absent.toml") is None
