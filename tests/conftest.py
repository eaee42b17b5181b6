"""Shared fixtures. Tests read the official sample feeds from ../shared/feeds/ and skip cleanly
where that folder is absent (a user's fresh clone)."""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.local_servers import PostgresUnavailable, fresh_database, throwaway_postgres

ROOT = Path(__file__).resolve().parent.parent
SHARED_FEEDS = Path(os.environ.get("BROADCASTER_SHARED_FEEDS", ROOT.parent / "shared" / "feeds"))
DEMO = ROOT / "broadcaster" / "rehearsal" / "demo" / "snapshots"


def _temporary_files_in_memory(folder: str = "/dev/shm", room: int = 4 << 30) -> None:
    """Tests' temporary folders (tmp_path, and the daemons' and PostgreSQL's, which inherit
    TMPDIR) in a memory file system where there is one with room: every SQLite commit waits
    for fsync, a third of a rehearsal's time on this disk, and no test is about the disk (a
    killed process loses nothing that reached the page cache). A TMPDIR already set wins."""
    if os.environ.get("TMPDIR") or not os.path.isdir(folder) or not os.access(folder, os.W_OK):
        return
    if (stat := os.statvfs(folder)).f_bavail * stat.f_frsize < room:
        return
    os.environ["TMPDIR"] = tempfile.tempdir = folder


_temporary_files_in_memory()


def shared_feed(name: str) -> Path:
    path = SHARED_FEEDS / name
    if not path.is_file():
        pytest.skip(f"sample feed {name} not available (../shared/feeds absent)")
    return path


@pytest.fixture
def demo_files() -> list[Path]:
    return sorted(DEMO.glob("*.json"))


def broadcaster_cmd() -> list[str]:
    exe = shutil.which("broadcaster", path=str(Path(sys.executable).parent))
    return [exe] if exe else [sys.executable, "-m", "broadcaster"]


@pytest.fixture
def run_cli() -> Callable[..., subprocess.CompletedProcess[str]]:
    def run(
        *args: str,
        timeout: float = 120,
        columns: int = 120,
        env: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, **(env or {}), "COLUMNS": str(columns), "PYTHONUNBUFFERED": "1"}
        return subprocess.run(
            [*broadcaster_cmd(), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            check=False,
            **kwargs,
        )

    return run


def invoke(
    *args: str,
    columns: int = 120,
    env: dict[str, str | None] | None = None,
    cwd: Path | str | None = None,
    input: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run `broadcaster ARGS` in this process (click's CliRunner streams), answering like
    `run_cli`: exit status, stdout and stderr apart, an unexpected exception's traceback on
    stderr with status 1. It starts, as a new process would, with no secret registered for
    masking; what a command changes for the whole process (logging handlers, the registered
    secrets, the environment, the working folder) is put back after.
    Commands that serve until a signal (`run`, `console`, `emulator`, `live`) must stay
    subprocesses: one that tries to install a signal handler here fails at once instead of
    blocking the test."""
    from click.testing import CliRunner

    from broadcaster.cli import main
    from broadcaster.core import logs

    root = logging.getLogger()
    loggers = [root, *(v for v in logging.Logger.manager.loggerDict.values())]
    saved_loggers = [
        (lg, lg.level, list(lg.handlers), list(lg.filters))
        for lg in loggers
        if isinstance(lg, logging.Logger)
    ]
    saved_secrets = set(logs._SECRETS)
    saved_env = dict(os.environ)
    saved_cwd = os.getcwd()

    def no_signal_handlers(sig: int, handler: Any) -> Any:
        raise AssertionError(
            f"`broadcaster {' '.join(args)}` installs a handler for signal {sig}: it serves "
            "until stopped, so test it as a subprocess (the `processes` fixture)"
        )

    code = 0
    runner = CliRunner()
    try:
        with (
            runner.isolation(input=input, env={"COLUMNS": str(columns), **(env or {})}) as streams,
            _patched(signal, "signal", no_signal_handlers),
            _widths_from_the_environment(),
        ):
            if cwd is not None:
                os.chdir(cwd)
            with logs._SECRETS_LOCK:  # as in a new process: the command registers its own
                logs._SECRETS.clear()
            try:
                main.main(list(args), prog_name="broadcaster", standalone_mode=True)
            except SystemExit as exc:  # what the interpreter would do with it
                if exc.code is None:
                    code = 0
                elif isinstance(exc.code, int):
                    code = exc.code
                else:
                    print(exc.code, file=sys.stderr)
                    code = 1
            except Exception:
                traceback.print_exc()
                code = 1
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
            stdout, stderr = streams[0].getvalue(), streams[1].getvalue()
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
        with logs._SECRETS_LOCK:
            logs._SECRETS.clear()
            logs._SECRETS.update(saved_secrets)
        for lg, level, handlers, filters in saved_loggers:
            lg.setLevel(level)
            lg.handlers[:] = handlers
            lg.filters[:] = filters
    return subprocess.CompletedProcess(
        ["broadcaster", *args],
        code,
        stdout.decode("utf-8", "replace"),
        stderr.decode("utf-8", "replace"),
    )


@contextlib.contextmanager
def _widths_from_the_environment() -> Iterator[None]:
    """The package's module-level rich consoles measured from $COLUMNS at each call, as in a
    new process: a console made while an earlier `invoke` had its own $COLUMNS keeps that
    width for good otherwise (which command is imported first depends on the test order)."""
    from rich.console import Console

    consoles = [
        value
        for name, module in list(sys.modules.items())
        if name.startswith("broadcaster.") and module is not None
        for value in list(vars(module).values())
        if isinstance(value, Console)
    ]
    with contextlib.ExitStack() as stack:
        for console in consoles:
            stack.enter_context(_patched(console, "_width", None))
        yield


@contextlib.contextmanager
def _patched(owner: Any, name: str, value: Any) -> Iterator[None]:
    saved = getattr(owner, name)
    setattr(owner, name, value)
    try:
        yield
    finally:
        setattr(owner, name, saved)


@pytest.fixture
def cli() -> Callable[..., subprocess.CompletedProcess[str]]:
    """`broadcaster` in this process: the `run_cli` answer without starting an interpreter
    (about a second each on a loaded 2-core machine). Keep `run_cli` for the few smoke tests
    of the installed command itself."""
    return invoke


def write_config(
    path: Path,
    *,
    source: str,
    extra: str = "",
    accounts: str | None = None,
    cards: bool = False,
    dispatch: str = "",
    gates: str = 'votes_decreased = "warn"',
    database: str = "sqlite:///state.db",
) -> Path:
    """A small configuration file for tests (dry-run accounts on the four platforms). Cards
    are off unless asked for: drawing hundreds of images would only slow the suite down."""
    # Generous quotas: most tests are about what is posted, not when (test_delivery is).
    accounts = accounts or "".join(
        f'\n[[accounts]]\nname = "{p}-test"\nplatform = "{p}"\ndry_run = true\n'
        f"quota = [{{posts = 100000, seconds = 86400}}]\n"
        for p in ("facebook", "youtube", "tiktok", "x")
    )
    path.write_text(
        f"""
[election]
timezone = "Asia/Bangkok"

[feed]
source = {json.dumps(source)}
poll_interval = 0.2

[dispatch]
interval = 0.2
{dispatch}

[database]
url = {json.dumps(database)}

[output]
posts = "posts.jsonl"

[cards]
enabled = {"true" if cards else "false"}

[gates]
# The demo night's correction lowers a count, which holds it by default (test_gates covers
# that); most tests are about what flows through, so by default the check only warns here.
{gates}
{extra}
{accounts}
""",
        encoding="utf-8",
    )
    return path


class Processes:
    """Subprocesses a test starts, each in its own process group (session), so that a test that
    fails half-way never leaves one running: the fixture kills every group at teardown."""

    def __init__(self) -> None:
        self.started: list[subprocess.Popen[Any]] = []

    def start(self, args: list[str], **kwargs: Any) -> subprocess.Popen[Any]:
        proc = subprocess.Popen(args, start_new_session=True, **kwargs)
        self.started.append(proc)
        return proc

    def stop(
        self, proc: subprocess.Popen[Any], sig: int = signal.SIGTERM, timeout: float = 30
    ) -> int:
        """Signal the process and wait; if it does not stop in time, kill its group and fail."""
        proc.send_signal(sig)
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            raise AssertionError(f"process {proc.pid} did not stop within {timeout} s") from None

    def kill_all(self) -> None:
        for proc in self.started:
            _kill_group(proc)


def _kill_group(proc: subprocess.Popen[Any]) -> None:
    # The leader may be gone while children it started still run in its group.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)


@pytest.fixture
def processes() -> Iterator[Processes]:
    started = Processes()
    try:
        yield started
    finally:
        started.kill_all()


def wait_for(
    predicate: Callable[[], Any],
    timeout: float = 60,
    *,
    proc: subprocess.Popen[Any] | None = None,
    log: Path | None = None,
) -> None:
    """Poll `predicate` until it is true (a daemon in another process getting somewhere).
    With `proc`, fail as soon as that process has exited instead of waiting out the timeout;
    with `log`, the end of that file is in the failure's message."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc is not None and proc.poll() is not None:
            if predicate():  # it got there, then stopped
                return
            raise AssertionError(
                f"process {proc.pid} exited with {proc.returncode} before the wait was over"
                + _log_tail(log)
            )
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting ({timeout} s)" + _log_tail(log))


def _log_tail(log: Path | None, chars: int = 3000) -> str:
    if log is None or not log.exists():
        return ""
    return f"\n--- {log} (end) ---\n" + log.read_text(errors="replace")[-chars:]


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


# -- Workers sharing the machine ---------------------------------------------------------------


@pytest.fixture(autouse=True, scope="session")
def _consoles_made_first() -> None:
    """The command line's rich consoles (cli/app.py makes each at its first use) made before
    any test gives a command its own $COLUMNS: a console made then keeps that width for good,
    and the next test's output would depend on which test ran first."""
    from broadcaster.cli import app

    for name in ("out", "err"):
        getattr(app, name)


@pytest.fixture(autouse=True)
def _alone_when_marked(request: pytest.FixtureRequest, tmp_path_factory: Any) -> Iterator[None]:
    """Under pytest-xdist, a test marked `alone` (real-time encoding, timed to the frame) runs
    while no other worker runs a test; every other test may run beside any but those."""
    if "PYTEST_XDIST_WORKER" not in os.environ:
        yield
        return
    alone = request.node.get_closest_marker("alone") is not None
    with _turnstile(tmp_path_factory.getbasetemp().parent, exclusive=alone):  # the run's folder
        yield


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under pytest-xdist, the `alone` tests first: waiting for the other workers' tests to end
    costs least at the start, before any long one has begun."""
    if "PYTEST_XDIST_WORKER" in os.environ:
        items.sort(key=lambda item: item.get_closest_marker("alone") is None)  # stable


@contextlib.contextmanager
def _turnstile(folder: Path, *, exclusive: bool) -> Iterator[None]:
    """A readers-writer lock across the workers (flock on two files in `folder`) that lets a
    writer in: one who wants the machine closes the gate, so no new test starts, and gets it
    when the tests already running have finished."""
    with (folder / "tests.gate").open("a") as gate, (folder / "tests.lock").open("a") as lock:
        if exclusive:
            fcntl.flock(gate, fcntl.LOCK_EX)
            fcntl.flock(lock, fcntl.LOCK_EX)
        else:
            fcntl.flock(gate, fcntl.LOCK_SH)
            fcntl.flock(lock, fcntl.LOCK_SH)
            fcntl.flock(gate, fcntl.LOCK_UN)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
            fcntl.flock(gate, fcntl.LOCK_UN)


# -- PostgreSQL ---------------------------------------------------------------------------------

POSTGRES_ENV = "BROADCASTER_TEST_POSTGRES"  # a server's URL to use instead of starting one


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A throwaway PostgreSQL server for the session (initdb and pg_ctl, on 127.0.0.1), or the
    one $BROADCASTER_TEST_POSTGRES names; the tests skip where there is neither."""
    pytest.importorskip("psycopg")
    if url := os.environ.get(POSTGRES_ENV):
        yield url
        return
    with contextlib.ExitStack() as stack:
        try:
            url = stack.enter_context(throwaway_postgres())
        except PostgresUnavailable as exc:
            pytest.skip(str(exc))
        yield url


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A new, empty database on the test server, dropped afterwards."""
    with fresh_database(postgres_server) as url:
        yield url
