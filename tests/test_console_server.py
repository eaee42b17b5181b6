"""The console served for real: uvicorn in a thread, server-sent events reaching a client when
the database changes, `broadcaster run` serving it beside the daemon, and the `console` user
commands."""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
from click.testing import CliRunner

from broadcaster.cli import main
from broadcaster.console.server import ConsoleServer
from broadcaster.console.users import Role, UserStore
from broadcaster.outbox.operations import pause
from broadcaster.outbox.store import Store
from tests.conftest import DEMO, broadcaster_cmd, invoke, wait_for, write_config
from tests.console_support import FAST_HASHER, PASSWORD, demo_night, form_token, make_env
from tests.local_servers import free_port


@pytest.fixture(scope="module")
def night_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return demo_night(tmp_path_factory.mktemp("night"))


def http_login(client: httpx.Client, name: str = "vera") -> None:
    page = client.get("/login")
    answer = client.post(
        "/login",
        data={"csrf": form_token(page.text), "name": name, "password": PASSWORD},
    )
    assert answer.status_code == 303, answer.text[:300]


class Events:
    """Reads a text/event-stream in a thread; `wait` returns the first event data matching."""

    def __init__(self, client: httpx.Client) -> None:
        self.client = client
        self.events: list[tuple[float, str, str]] = []
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.stop = threading.Event()
        self.status = 0
        self.thread.start()

    def _read(self) -> None:
        try:
            self._follow()
        except httpx.HTTPError:
            if not self.stop.is_set():
                raise

    def _follow(self) -> None:
        event, data = "", []
        with self.client.stream("GET", "/events", timeout=60) as response:
            self.status = response.status_code
            for line in response.iter_lines():
                if self.stop.is_set():
                    return
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: "):
                    data.append(line[6:])
                elif line == "" and event:
                    with self.lock:
                        self.events.append((time.monotonic(), event, "\n".join(data)))
                    event, data = "", []

    def wait(self, needle: str, after: float, timeout: float = 10) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                for at, _, data in self.events:
                    if at >= after and needle in data:
                        return at
            time.sleep(0.01)
        raise AssertionError(f"no event with {needle!r} within {timeout} s")


@pytest.fixture
def served(tmp_path: Path, night_db: Path) -> Iterator[tuple[ConsoleServer, Any]]:
    path, config = make_env(tmp_path, night_db, console='listen = "127.0.0.1:0"')
    users = UserStore(path.parent / "console-users.json", hasher=FAST_HASHER)
    server = ConsoleServer(config, users=users).start()
    try:
        yield server, config
    finally:
        server.stop()
    assert not server.thread.is_alive()


def test_a_change_reaches_an_open_night_view_within_a_second(served: Any):
    server, config = served
    with httpx.Client(base_url=server.url, follow_redirects=False) as client:
        http_login(client)
        stream = Events(client)
        stream.wait("14-0200.json", after=0)  # the panels, at once
        store = Store(config.database_url)
        try:
            delays = []
            for i in range(3):
                started = time.monotonic()
                pause(store, ["x-demo"], f"checking X, round {i}", actor="otto")
                arrived = stream.wait(f"checking X, round {i}", after=started)
                delays.append(arrived - started)
        finally:
            store.close()
            stream.stop.set()
        # The watcher looks twice a second; the machine is shared, so allow it some slack.
        assert min(delays) < 1.0, delays
        assert stream.status == 200


def test_the_event_stream_needs_a_session(served: Any):
    server, _ = served
    with httpx.Client(base_url=server.url) as client:
        assert client.get("/events").status_code == 401


def test_run_serves_the_console_beside_the_daemon_and_stops_cleanly(tmp_path: Path):
    files = sorted(DEMO.glob("*.json"))
    feed = tmp_path / "results.json"
    feed.write_bytes(files[8].read_bytes())
    port = free_port()
    cfg = write_config(
        tmp_path / "c.toml",
        source="results.json",
        extra=f'[service]\nlisten = ""\n[console]\nenabled = true\nlisten = "127.0.0.1:{port}"\n',
    )
    added = invoke(
        "console",
        "adduser",
        "vera",
        "--role",
        "viewer",
        "--password-stdin",
        "--config",
        str(cfg),
        input=PASSWORD + "\n",
    )
    assert added.returncode == 0, added.stderr
    log = (tmp_path / "daemon.log").open("w")
    proc = subprocess.Popen(
        [*broadcaster_cmd(), "run", "--config", str(cfg), "--dry-run"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=log,
        start_new_session=True,
    )
    try:

        def up() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/login", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(up, timeout=60)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
            http_login(client)
            wait_for(lambda: "results.json" in client.get("/").text, timeout=60)
            assert "x-test" in client.get("/accounts").text
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            code = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            code = proc.wait(timeout=30)
        log.close()
    assert code == 0, (tmp_path / "daemon.log").read_text()[-2000:]
    lines = [json.loads(x) for x in (tmp_path / "daemon.log").read_text().splitlines() if x]
    assert any("operator console on" in x["msg"] for x in lines)


# -- the console commands ------------------------------------------------------------------------


def test_adduser_asks_the_password_and_stores_an_argon2_hash_privately(tmp_path: Path):
    cfg = write_config(tmp_path / "c.toml", source="f")
    runner = CliRunner()
    result = runner.invoke(
        main,
        ["console", "adduser", "ada", "--role", "admin", "--config", str(cfg)],
        input=f"{PASSWORD}\n{PASSWORD}\n",
    )
    assert result.exit_code == 0, result.output
    users_file = tmp_path / "console-users.json"  # beside the database
    assert stat.S_IMODE(users_file.stat().st_mode) == 0o600
    text = users_file.read_text()
    assert PASSWORD not in text
    assert json.loads(text)["users"]["ada"]["hash"].startswith("$argon2id$")
    assert UserStore(users_file).verify("ada", PASSWORD).role is Role.ADMIN
    short = runner.invoke(
        main,
        ["console", "adduser", "bo", "--role", "viewer", "--config", str(cfg), "--password-stdin"],
        input="short\n",
    )
    assert short.exit_code == 1
    assert "at least 10 characters" in short.output
    twice = runner.invoke(
        main,
        ["console", "adduser", "ada", "--role", "viewer", "--password-stdin", "--config", str(cfg)],
        input=PASSWORD + "\n",
    )
    assert "already a user" in twice.output
    listed = runner.invoke(main, ["console", "--config", str(cfg), "users"])
    assert "ada" in listed.output
    assert "admin" in listed.output


def test_passwd_and_deluser(tmp_path: Path):
    cfg = write_config(tmp_path / "c.toml", source="f")
    users = UserStore(tmp_path / "console-users.json", hasher=FAST_HASHER)
    users.add("ada", Role.ADMIN, PASSWORD)
    users.add("bo", Role.VIEWER, PASSWORD)
    stamp = users.get("bo").stamp
    runner = CliRunner()
    new = "a different password"
    result = runner.invoke(
        main, ["console", "passwd", "bo", "--config", str(cfg)], input=f"{new}\n{new}\n"
    )
    assert result.exit_code == 0, result.output
    fresh = UserStore(tmp_path / "console-users.json", hasher=FAST_HASHER)
    assert fresh.verify("bo", new) is not None
    assert fresh.get("bo").stamp != stamp  # open sessions end
    assert runner.invoke(main, ["console", "deluser", "bo", "--config", str(cfg)]).exit_code == 0
    assert fresh.get("bo") is None
    last = runner.invoke(main, ["console", "deluser", "ada", "--config", str(cfg)])
    assert last.exit_code == 1
    assert "only admin" in last.output


def test_a_users_file_readable_by_others_is_refused(tmp_path: Path):
    users = UserStore(tmp_path / "console-users.json", hasher=FAST_HASHER)
    users.add("ada", Role.ADMIN, PASSWORD)
    os.chmod(users.path, 0o644)
    with pytest.raises(Exception, match="readable by others"):
        UserStore(users.path, hasher=FAST_HASHER).verify("ada", PASSWORD)


def test_console_command_serves_until_sigterm(tmp_path: Path, night_db: Path):
    port = free_port()
    path, _ = make_env(tmp_path, night_db, console=f'listen = "127.0.0.1:{port}"')
    proc = subprocess.Popen(
        [*broadcaster_cmd(), "console", "--config", str(path)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:

        def up() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/login", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(up, timeout=60)
        os.killpg(proc.pid, signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
    assert proc.returncode == 0, out
    assert re.search(r"operator console on http://127\.0\.0\.1:\d+", out)
