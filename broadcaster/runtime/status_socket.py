"""`broadcaster status` answered by the running daemon, over a Unix socket: where the socket
is, asking it, and the answer's form. The daemon's side is runtime/status_server.py.

The daemon has its configuration, its database connection and every library loaded; a status
command that loads them itself spends about a second before it reads a row. So the daemon
serves its status on a socket, and the command asks there first (this module loads the
standard library only) and reads the database itself only when no daemon answers.

Where the socket is, and whom it is trusted from (another local user must never stand in for
the daemon and show an operator a calm night that is not):
- beside a SQLite database file, as `<file>.status.sock`. Whoever owns that folder can replace
  the database itself, so the socket is trusted as much as the file: the folder must be
  writable by its owner alone, and the socket be this user's or the folder owner's;
- for any other database, in this user's own private folder under the temporary folder
  (`broadcaster-<uid>`, mode 0700), named by a digest of the database's URL. Both the folder
  and the socket must be this user's, root included: a folder someone else made there is
  someone else's.

The answer names the database and the configuration file's digest it was made with: an answer
for another database, or from a daemon started before the file was edited (whose report would
hide the edit, or its error), is not shown.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import stat
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from broadcaster.core.logs import redact
from broadcaster.core.paths import (
    DEFAULT_CONFIG,
    DEFAULT_DATABASE_URL,
    config_digest,
    resolve_database_url,
    sqlite_file,
)

PROTOCOL = 2  # raise it whenever the report's keys (REPORT_KEYS) or their shapes change
SUFFIX = ".status.sock"
REQUEST = b"status\n"
ANSWER_LIMIT = 64 * 1024 * 1024  # a status is a few hundred KB at most; never read without end
PATH_LIMIT = 107  # bytes in a Unix socket's path (108 with its final NUL, on Linux)
ASK_TIMEOUT = 5.0  # seconds: a daemon busier than this is read around, not waited for
# What runtime/status.py's collect_status gives (a test keeps the two the same).
REPORT_KEYS = frozenset(
    {
        "now",
        "problems",
        "feed_health",
        "database",
        "last_snapshot",
        "accepted",
        "rejected",
        "events",
        "recent_rejections",
        "states",
        "outbox",
        "held",
        "template_problems",
        "implausible",
        "implausible_held",
        "accounts",
        "latency",
        "live",
        "leadership",
    }
)


class StatusUnavailable(Exception):
    """Why the daemon's status could not be had: said to the operator, who then gets the
    status read from the database."""


@dataclass(frozen=True, slots=True)
class DaemonStatus:
    pid: int
    instance: str
    role: str  # active, standby, or "" where the daemon has no leadership
    report: dict[str, Any]  # as runtime/status.py's collect_status gives it


@dataclass(frozen=True, slots=True)
class ConfigFile:
    database_url: str  # resolved as the full reading resolves it
    digest: str  # of the file's bytes: config_digest, as the daemon took it when it started


@dataclass(frozen=True, slots=True)
class Where:
    path: Path  # the socket
    private: bool  # in this user's private folder (not beside a SQLite file)
    database: str  # the database's identity, digested: a SQLite file's real path, or the URL


def read_config(config_path: Path | None) -> ConfigFile | None:
    """The database a configuration file names and the file's digest, read without validating
    the rest. None when it is not a regular file that reads as TOML: the full reading then says
    what is wrong (and a pipe, such as /dev/stdin, is left unread for it)."""
    file = Path(config_path) if config_path is not None else DEFAULT_CONFIG
    try:
        if not stat.S_ISREG(os.stat(file).st_mode):
            return None
        raw = file.read_bytes()
        data = tomllib.loads(raw.decode("utf-8"))
        base = file.resolve().parent
    except (OSError, RuntimeError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None
    database = data.get("database", {})
    url = database.get("url", DEFAULT_DATABASE_URL) if isinstance(database, dict) else None
    if not isinstance(url, str):
        return None
    return ConfigFile(resolve_database_url(url, base), config_digest(raw))


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:16]


def locate(database_url: str, *, create: bool = False) -> Where | None:
    """Where the daemon on `database_url` serves its status; None where it serves none (an
    in-memory database, or, when asking, a folder that is not there or that the system cannot
    resolve). StatusUnavailable when the folder cannot be trusted, the path is too long for a
    socket, or (`create`: the daemon's side) the folder cannot be had."""
    file = sqlite_file(database_url)
    if database_url.startswith("sqlite") and file is None:
        return None  # in memory: no daemon shares it
    folder: Path | str = file.parent if file is not None else "the temporary folder"
    try:
        if file is not None:
            real = file.resolve()
            folder = real.parent
            where = Where(folder / (real.name + SUFFIX), False, _digest(str(real)))
        else:
            import tempfile  # here: a SQLite night, the usual one, has no use for it

            folder = Path(tempfile.gettempdir()) / f"broadcaster-{os.geteuid()}"
            name = f"status-{_digest(database_url)}.sock"
            where = Where(folder / name, True, _digest(database_url))
            if create:
                with contextlib.suppress(FileExistsError):
                    folder.mkdir(mode=0o700)
        info = os.lstat(folder)
    except (OSError, RuntimeError) as exc:  # missing, a loop, a name too long, no right
        if create:
            raise StatusUnavailable(f"{folder}: {_why(exc)}") from None
        return None
    if not stat.S_ISDIR(info.st_mode):
        if create:  # a symlink or a file where the folder should be
            raise StatusUnavailable(f"{folder}: not a folder")
        return None  # no daemon can have made its database there
    problem = _untrusted(info, private=where.private)
    if problem:
        raise StatusUnavailable(f"{folder}: {problem}")
    if len(os.fsencode(where.path)) > PATH_LIMIT:
        raise StatusUnavailable(
            f"{where.path}: too long for a Unix socket ({PATH_LIMIT} bytes at most)"
        )
    return where


def _why(exc: BaseException) -> str:
    return (exc.strerror if isinstance(exc, OSError) else None) or str(exc) or type(exc).__name__


def _untrusted(info: os.stat_result, *, private: bool) -> str | None:
    """Why a socket's folder cannot be trusted, or None."""
    me = os.geteuid()
    # Root may trust the folder of a database another user owns (the database is theirs
    # anyway), never a private folder that someone else made under the temporary folder.
    if info.st_uid != me and (private or me != 0):
        return f"belongs to uid {info.st_uid}, not to this user ({me})"
    mode = stat.S_IMODE(info.st_mode)
    if mode & (0o077 if private else 0o022):
        return f"others may write in it (mode {mode:04o})"
    return None


def ask(config: ConfigFile, timeout: float = ASK_TIMEOUT) -> DaemonStatus | None:
    """The status of the daemon running on the configuration's database, as it answers on its
    socket; None when no daemon serves one (none runs on this machine). StatusUnavailable when
    a socket is there but gives no trustworthy answer within `timeout` seconds in all."""
    where = locate(config.database_url)
    if where is None or not _socket_there(where):
        return None
    raw = _exchange(where.path, timeout)
    if raw is None:
        return None
    return _answer(raw, config, where)


def _socket_there(where: Where) -> bool:
    """Whether a socket is at `where` (False: none); StatusUnavailable when something is there
    that cannot be trusted to be the daemon's."""
    path = where.path
    try:
        info = os.lstat(path)
        folder_owner = os.lstat(path.parent).st_uid
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise StatusUnavailable(f"{path}: {_why(exc)}") from None
    if not stat.S_ISSOCK(info.st_mode):
        raise StatusUnavailable(f"{path}: not a socket")
    trusted = {os.geteuid()} if where.private else {os.geteuid(), folder_owner}
    if info.st_uid not in trusted:
        raise StatusUnavailable(f"{path}: belongs to uid {info.st_uid}, not to this user")
    return True


def _exchange(path: Path, timeout: float) -> bytes | None:
    """The request sent and the whole answer read, within `timeout` seconds in all; None when
    the socket went away meanwhile (its daemon stopped)."""
    deadline = time.monotonic() + timeout
    chunks: list[bytes] = []
    size = 0
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        try:
            conn.settimeout(timeout)
            conn.connect(os.fspath(path))
            conn.sendall(REQUEST)
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError
                conn.settimeout(left)
                chunk = conn.recv(1 << 16)
                if not chunk:
                    break
                size += len(chunk)
                if size > ANSWER_LIMIT:
                    raise StatusUnavailable(f"{path}: answer longer than {ANSWER_LIMIT} bytes")
                chunks.append(chunk)
        except FileNotFoundError:
            return None  # removed as the daemon stopped
        except (ConnectionResetError, BrokenPipeError):  # closed before or as it was asked
            raise StatusUnavailable(_CLOSED) from None
        except ConnectionRefusedError:
            raise StatusUnavailable(
                f"{path} is there but no daemon answers on it: the daemon is not running "
                "(was it killed?)"
            ) from None
        except (TimeoutError, BlockingIOError):  # BlockingIOError: its queue is full
            raise StatusUnavailable(
                f"the daemon did not answer on {path} within {timeout:g} s (busy or frozen?)"
            ) from None
        except OSError as exc:
            raise StatusUnavailable(f"{path}: {_why(exc)}") from None
    if not chunks:
        raise StatusUnavailable(_CLOSED)
    return b"".join(chunks)


_CLOSED = "the daemon closed the connection without answering (busy with other askers?)"


def _answer(raw: bytes, config: ConfigFile, where: Where) -> DaemonStatus:
    path = where.path
    try:
        body = json.loads(raw)
    except ValueError:
        raise StatusUnavailable(f"{path}: the answer is not JSON") from None
    if not isinstance(body, dict) or body.get("protocol") != PROTOCOL:
        raise StatusUnavailable(f"{path}: a daemon of another version answers there")
    if body.get("database") != where.database:
        raise StatusUnavailable(f"{path}: the daemon there runs on another database")
    if body.get("config") != config.digest:
        raise StatusUnavailable(
            "the running daemon was started with another configuration (this file was edited "
            "since, or it runs another file); its report would not show this one"
        )
    if "error" in body:
        raise StatusUnavailable(f"the daemon could not read its status: {body['error']}")
    try:
        return DaemonStatus(
            pid=int(body["pid"]),
            instance=str(body["instance"]),
            role=str(body["role"]),
            report=from_wire(body["report"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise StatusUnavailable(f"{path}: an incomplete answer ({exc!r})") from None


def to_wire(report: dict[str, Any]) -> dict[str, Any]:
    """A status report as JSON can carry it: the outbox's (account, platform) keys as rows,
    and every text with the secrets masked (the asking command has not read them)."""
    wire = dict(report)
    wire["outbox"] = [[a, p, counts] for (a, p), counts in report["outbox"].items()]
    wire["states"] = [str(s) for s in report["states"]]
    masked: dict[str, Any] = _masked(wire)
    return masked


def from_wire(wire: dict[str, Any]) -> dict[str, Any]:
    """`to_wire` undone: the report `collect_status` gave. ValueError when its keys are not
    this version's (a daemon of an older version still running after an upgrade)."""
    if not isinstance(wire, dict):
        raise TypeError("the report is not an object")
    if set(wire) != REPORT_KEYS:
        raise ValueError(f"the report's keys differ: {sorted(set(wire) ^ REPORT_KEYS)}")
    report = dict(wire)
    report["outbox"] = {(str(a), str(p)): dict(counts) for a, p, counts in wire["outbox"]}
    report["states"] = [str(s) for s in wire["states"]]
    return report


def _masked(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _masked(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_masked(v) for v in value]
    return value
