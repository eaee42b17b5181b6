"""The console's users: names, roles and argon2 password hashes in one private JSON file.

The file lives beside the database (or where `[console] users` says), mode 600, rewritten
atomically. Each user has a `stamp` that changes with their password: a session remembers the
stamp it was opened under, so changing a password or removing a user ends their sessions, even
when it is done from the command line while the console runs.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import stat
import tempfile
import threading
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from broadcaster.core.config import Config

NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
MIN_PASSWORD = 10
MAX_PASSWORD = 1024  # argon2 takes anything; a bound keeps a hostile request cheap
FILE_NAME = "console-users.json"


class Role(StrEnum):
    """Each role may do what the roles before it may, and more."""

    VIEWER = "viewer"  # reads every page
    OPERATOR = "operator"  # approves, holds, cancels, retries, pauses, announces
    EDITOR = "editor"  # edits templates
    ADMIN = "admin"  # manages users

    @property
    def rank(self) -> int:
        return list(Role).index(self)

    def allows(self, needed: Role) -> bool:
        return self.rank >= needed.rank


class UserError(ValueError):
    """A user cannot be added or changed; the message says why."""


@dataclass(frozen=True, slots=True)
class User:
    name: str
    role: Role
    hash: str
    stamp: str
    created: str


def users_path(config: Config) -> Path:
    """`[console] users`, else console-users.json beside an SQLite database, else beside the
    configuration file."""
    configured = config.path(config.console.users)
    if configured is not None:
        return configured
    url = config.database_url
    if url.startswith("sqlite:///") and ":memory:" not in url:
        return Path(url.removeprefix("sqlite:///").split("?", 1)[0]).parent / FILE_NAME
    return config.base_dir / FILE_NAME


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise UserError(f"a password needs at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise UserError(f"a password has at most {MAX_PASSWORD} characters")


class UserStore:
    """The users file. Reads are cached and re-read when the file changes on disk."""

    def __init__(self, path: Path, hasher: PasswordHasher | None = None) -> None:
        self.path = path
        # argon2id with the library's defaults (RFC 9106's second recommendation); tests pass a
        # cheaper one.
        self.hasher = hasher or PasswordHasher()
        self._lock = threading.Lock()
        self._seen: tuple[int, int, int] | None = None
        self._users: dict[str, User] = {}
        # Verifying against this when the name is unknown takes as long as a real check, so
        # timing does not tell which names exist.
        self._decoy = self.hasher.hash(secrets.token_urlsafe(16))

    # -- reading --

    def _load(self) -> dict[str, User]:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            self._seen, self._users = None, {}
            return self._users
        seen = (st.st_mtime_ns, st.st_size, st.st_ino)
        if seen == self._seen:
            return self._users
        if stat.S_IMODE(st.st_mode) & 0o077:
            raise UserError(
                f"{self.path} is readable by others (mode {stat.S_IMODE(st.st_mode):o}); "
                f"run: chmod 600 {self.path}"
            )
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            users = {
                name: User(
                    name=name,
                    role=Role(entry["role"]),
                    hash=str(entry["hash"]),
                    stamp=str(entry["stamp"]),
                    created=str(entry.get("created", "")),
                )
                for name, entry in data["users"].items()
            }
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise UserError(f"{self.path}: not a console users file ({exc})") from None
        self._seen, self._users = seen, users
        return users

    def all(self) -> list[User]:
        with self._lock:
            return sorted(self._load().values(), key=lambda u: u.name)

    def get(self, name: str) -> User | None:
        with self._lock:
            return self._load().get(name)

    def verify(self, name: str, password: str) -> User | None:
        """The user if `password` is theirs, else None (in about the same time either way)."""
        user = self.get(name)
        candidate = password[:MAX_PASSWORD]
        try:
            self.hasher.verify(user.hash if user else self._decoy, candidate)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return None
        if user is None:
            return None
        if self.hasher.check_needs_rehash(user.hash):
            self._update(name, hash=self.hasher.hash(candidate))
        return user

    # -- changing --

    def add(self, name: str, role: Role, password: str) -> User:
        if not NAME.match(name):
            raise UserError("a user name is 1 to 64 letters, digits, '.', '_' or '-'")
        check_password(password)
        with self._lock:
            users = dict(self._load())
            if name in users:
                raise UserError(f"there is already a user {name!r}")
            user = User(
                name=name,
                role=Role(role),
                hash=self.hasher.hash(password),
                stamp=secrets.token_hex(8),
                created=datetime.now(UTC).isoformat(timespec="seconds"),
            )
            users[name] = user
            self._write(users)
        return user

    def set_password(self, name: str, password: str) -> None:
        """A new password; the user's open sessions end."""
        check_password(password)
        self._update(name, hash=self.hasher.hash(password), stamp=secrets.token_hex(8))

    def set_role(self, name: str, role: Role) -> None:
        with self._lock:
            users = self._load()
            if name not in users:
                raise UserError(f"no user {name!r}")
            self._refuse_last_admin(users, name, Role(role))
        self._update(name, role=Role(role))

    def remove(self, name: str) -> None:
        with self._lock:
            users = dict(self._load())
            if name not in users:
                raise UserError(f"no user {name!r}")
            self._refuse_last_admin(users, name, None)
            del users[name]
            self._write(users)

    def _refuse_last_admin(self, users: dict[str, User], name: str, role: Role | None) -> None:
        admins = [u for u in users.values() if u.role is Role.ADMIN]
        if role is not Role.ADMIN and [u.name for u in admins] == [name]:
            raise UserError(f"{name} is the only admin: make another user admin first")

    def _update(self, name: str, **changes: Any) -> None:
        with self._lock:
            users = dict(self._load())
            user = users.get(name)
            if user is None:
                raise UserError(f"no user {name!r}")
            fields = {**asdict(user), **changes}
            users[name] = User(**fields)
            self._write(users)

    def _write(self, users: dict[str, User]) -> None:
        """Write, fsync and rename: never a half-written file, never readable by others."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "users": {
                u.name: {
                    "role": u.role.value,
                    "hash": u.hash,
                    "stamp": u.stamp,
                    "created": u.created,
                }
                for u in users.values()
            }
        }
        fd, tmp = tempfile.mkstemp(prefix=".users-", dir=self.path.parent)
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(payload, fh, indent=1, sort_keys=True)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self._seen = None
