"""`broadcaster status` answered by the running daemon, over a Unix socket: where the socket
is, asking it, and the answer's form. The daemon's side is runtime/status_server.py.

The daemon has its configuration, its database connection and every library loaded; a status
command that loads them itself spends about a second before it reads a row. So the daemon
serves its status on a socket, and the command asks there first (this module loads the
standard library only) and reads the database itself only when no daemon answers.

Where the socket is:
- beside a SQLite database file, as `<file>.status.sock`: whoever can reach that folder can
  reach the database itself, so the socket is trusted exactly as much as the file;
- for any other database, in this user's private folder under the temporary folder
  (`broadcaster-<uid>`), named by a digest of the database's URL.

The folder must be writable by its owner alone, and the socket must be this user's or the
folder owner's: otherwise nothing is served there and nothing is asked (another local user could
otherwise stand in for the daemon and show an operator a calm night that is not).
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
    resolve_database_url,
    sqlite_file,
)

PROTOCOL = 1
SUFFIX = ".status.sock"
REQUEST = b"status\n"
ANSWER_LIMIT = 64 * 1024 * 1024  # a status is a few hundred KB at most; never read without end
PATH_LIMIT = 107  # bytes in a Unix socket's path (108 with its final NUL, on Linux)
ASK_TIMEOUT = 5.0  # seconds: a daemon busier than this is read around, not waited for


class StatusUnavailable(Exception):
    """Why the daemon's status could not be had: said to the operator, who then gets the
    status read from the database."""


@dataclass(frozen=True, slots=True)
class DaemonStatus:
    pid: int
    instance: str
    role: str  # active, standby, or "" where the daemon has no leadership
    report: dict[str, Any]  # as runtime/status.py's collect_status gives it


def database_url_in(config_path: Path | None) -> str | None:
    """The database URL a configuration file names, resolved as the daemon resolves it, read
    without validating the rest (None when the file cannot be read as TOML: the full reading
    then says what is wrong)."""
    file = Path(config_path) if config_path is not None else DEFAULT_CONFIG
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None
    database = data.get("database", {})
    url = database.get("url", DEFAULT_DATABASE_URL) if isinstance(database, dict) else None
    if not isinstance(url, str):
        return None
    return resolve_database_url(url, file.resolve().parent)


def digest(database_url: str) -> str:
    return hashlib.sha256(database_url.encode()).hexdigest()[:16]


def socket_path(database_url: str, *, create: bool = False) -> Path | None:
    """Where the daemon on `database_url` serves its status; None where it serves none (an
    in-memory database, or a folder that does not exist and `create` is false).
    StatusUnavailable when the folder is not private enough to trust or the path too long."""
    file = sqlite_file(database_url)
    if database_url.startswith("sqlite") and file is None:
        return None  # in memory: no daemon shares it
    if file is not None:
        folder = file.resolve().parent
        path = folder / (file.name + SUFFIX)
    else:
        import tempfile  # here: a SQLite night, the usual one, has no use for it

        folder = Path(tempfile.gettempdir()) / f"broadcaster-{os.geteuid()}"
        path = folder / f"status-{digest(database_url)}.sock"
        if create:
            with contextlib.suppress(FileExistsError):
                folder.mkdir(mode=0o700)
    try:
        info = os.lstat(folder)
    except FileNotFoundError:
        return None
    problem = _untrusted(info, private=file is None)
    if problem:
        raise StatusUnavailable(f"{folder}: {problem}")
    if len(os.fsencode(path)) > PATH_LIMIT:
        raise StatusUnavailable(f"{path}: too long for a Unix socket ({PATH_LIMIT} bytes at most)")
    return path


def _untrusted(info: os.stat_result, *, private: bool) -> str | None:
    """Why a socket's folder cannot be trusted, or None."""
    if not stat.S_ISDIR(info.st_mode):
        return "not a folder"
    me = os.geteuid()
    if info.st_uid != me and me != 0:
        return f"belongs to uid {info.st_uid}, not to this user ({me})"
    mode = stat.S_IMODE(info.st_mode)
    if mode & (0o077 if private else 0o022):
        return f"others may write in it (mode {mode:04o})"
    return None


def ask(database_url: str, timeout: float = ASK_TIMEOUT) -> DaemonStatus | None:
    """The status of the daemon running on `database_url`, as it answers on its socket; None
    when no daemon serves one (none runs on this machine). StatusUnavailable when a socket is
    there but gives no trustworthy answer within `timeout` seconds."""
    path = socket_path(database_url)
    if path is None:
        return None
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return None
    if not stat.S_ISSOCK(info.st_mode):
        raise StatusUnavailable(f"{path}: not a socket")
    folder_owner = os.lstat(path.parent).st_uid
    if info.st_uid not in (os.geteuid(), folder_owner):
        raise StatusUnavailable(f"{path}: belongs to uid {info.st_uid}, not to this user")
    deadline = time.monotonic() + timeout
    chunks: list[bytes] = []
    size = 0
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(timeout)
        try:
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
        except ConnectionRefusedError:
            raise StatusUnavailable(
                f"{path} is there but no daemon answers on it: the daemon is not running "
                "(was it killed?)"
            ) from None
        except TimeoutError:
            raise StatusUnavailable(
                f"the daemon did not answer on {path} within {timeout:g} s (busy or frozen?)"
            ) from None
        except OSError as exc:
            raise StatusUnavailable(f"{path}: {exc.strerror or exc}") from None
    return _answer(b"".join(chunks), database_url, path)


def _answer(raw: bytes, database_url: str, path: Path) -> DaemonStatus:
    try:
        body = json.loads(raw)
    except ValueError:
        raise StatusUnavailable(f"{path}: the answer is not JSON") from None
    if not isinstance(body, dict) or body.get("protocol") != PROTOCOL:
        raise StatusUnavailable(f"{path}: an answer of another kind or version")
    if body.get("database") != digest(database_url):
        raise StatusUnavailable(f"{path}: the daemon there runs on another database")
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
    """`to_wire` undone: the report `collect_status` gave."""
    if not isinstance(wire, dict):
        raise TypeError("the report is not an object")
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
