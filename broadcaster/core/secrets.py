"""Secrets and tokens, kept out of the configuration, the database, the logs and the posts.

An account's settings name its secrets (for example `page_token = "FB_PAGE_TOKEN"`). A name is
looked up in the environment first, then in the secrets file (`[secrets] file`, a TOML table of
names to values that must be readable by its owner only, mode 600). Tokens that broadcaster
obtains or refreshes itself (`broadcaster auth ...`, TikTok's rotating refresh token) live in
the token store, a JSON file of the same mode, rewritten atomically so a crash never leaves it
half written, under a lock file beside it so two processes (the daemon rotating TikTok's token,
an operator's `broadcaster auth`) never lose each other's update. Every value read is
registered with the log redactor.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import tempfile
import threading
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from broadcaster.core.logs import register_secret

if TYPE_CHECKING:
    from broadcaster.core.config import Config


class SecretError(Exception):
    """A secret is missing or its file is unsafe. The message names it, never its value."""


def _check_private(path: Path) -> None:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise SecretError(f"{path} is readable by others (mode {mode:o}); run: chmod 600 {path}")


class Secrets:
    """Named secrets from the environment or a private secrets file."""

    def __init__(self, file: Path | None = None, environ: dict[str, str] | None = None) -> None:
        self.file = file
        self.environ = environ if environ is not None else os.environ
        self._file_values: dict[str, str] | None = None

    def _from_file(self) -> dict[str, str]:
        if self._file_values is None:
            values: dict[str, str] = {}
            if self.file is not None and self.file.exists():
                _check_private(self.file)
                try:
                    data = tomllib.loads(self.file.read_text(encoding="utf-8"))
                except tomllib.TOMLDecodeError as exc:
                    raise SecretError(f"{self.file}: not valid TOML ({exc})") from None
                values = {str(k): str(v) for k, v in data.items() if isinstance(v, str | int)}
            self._file_values = values
        return self._file_values

    def get(self, name: str, *, what: str = "secret") -> str:
        """The value of secret `name`; SecretError naming it (never its value) if absent."""
        value = self.environ.get(name)
        if not value:
            value = self._from_file().get(name)
        if not value:
            where = f"the environment or {self.file}" if self.file else "the environment"
            raise SecretError(f"{what}: {name} is not set in {where}")
        register_secret(value)
        return value

    def optional(self, name: str | None) -> str | None:
        if not name:
            return None
        try:
            return self.get(name)
        except SecretError:
            return None


class TokenStore:
    """Tokens per account in a private JSON file, written atomically (write, fsync, rename).

    A write reads the file, changes one account and writes it back: that read-modify-write
    holds `<file>.lock` (an OS file lock, through filelock) so that a write from another
    process in between cannot be lost. Reads need no lock: the rename makes each version whole.
    """

    LOCK_TIMEOUT = 30.0  # seconds; a write takes milliseconds, so a longer wait is a stuck process

    def __init__(self, path: Path, *, lock_timeout: float | None = None) -> None:
        self.path = path
        self.lock_path = path.with_name(path.name + ".lock")
        self.lock_timeout = self.LOCK_TIMEOUT if lock_timeout is None else lock_timeout
        self._lock = threading.Lock()  # this process's threads; the file lock, other processes

    def _read(self) -> dict[str, dict[str, Any]]:
        if not self.path.exists():
            return {}
        _check_private(self.path)
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise SecretError(f"{self.path}: not valid JSON (line {exc.lineno})") from None
        return data if isinstance(data, dict) else {}

    def get(self, account: str) -> dict[str, Any]:
        with self._lock:
            tokens = dict(self._read().get(account, {}))
        for value in tokens.values():
            if isinstance(value, str):
                register_secret(value)
        return tokens

    def put(self, account: str, tokens: dict[str, Any]) -> None:
        """Replace an account's tokens in one atomic write (all of them, or none)."""
        for value in tokens.values():
            if isinstance(value, str):
                register_secret(value)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock, self._file_lock():
            data = self._read()
            data[account] = tokens
            fd, tmp = tempfile.mkstemp(prefix=".tokens-", dir=self.path.parent)
            try:
                os.fchmod(fd, 0o600)
                with os.fdopen(fd, "w", encoding="utf-8") as fh:
                    json.dump(data, fh, indent=2, sort_keys=True)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, self.path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise

    @contextlib.contextmanager
    def _file_lock(self) -> Iterator[None]:
        import filelock  # only when tokens are written; every command reads the store

        lock = filelock.FileLock(self.lock_path, timeout=self.lock_timeout, mode=0o600)
        try:
            lock.acquire()
        except filelock.Timeout:
            raise SecretError(
                f"{self.path}: not written: its lock file {self.lock_path} is held by another "
                f"process for more than {self.lock_timeout:g} s"
            ) from None
        try:
            yield
        finally:
            lock.release()


def register_config_secrets(config: Config, environ: dict[str, str] | None = None) -> None:
    """Register every secret value the configuration can reach (the secrets file, the token
    store, and each environment variable an account or the feed names), so that every log line,
    stored error and printed report masks it, and no post carrying one is ever sent. Missing or
    unreadable files are left to the code that needs them to report."""
    env = environ if environ is not None else os.environ
    names: set[str] = set()
    for account in config.accounts:
        names.update(v for v in account.settings.values() if isinstance(v, str))
    headers = getattr(config.feed, "headers", None) or {}
    names.update(v for v in headers.values() if isinstance(v, str))
    for dest in getattr(config, "alerts", ()):  # [[alerts]]: the bot, SMTP, the webhook
        names.update(n for n in (dest.bot_token, dest.username, dest.password, dest.url) if n)
        names.update(dest.headers.values())
    for name in names:
        if name in env:
            register_secret(env[name])
    file = config.path(config.secrets.file)
    if file is not None and file.is_file():
        try:
            for value in Secrets(file, environ={})._from_file().values():
                register_secret(value)
        except (SecretError, OSError, UnicodeDecodeError):
            pass
    tokens = config.path(config.secrets.tokens)
    if tokens is not None and tokens.is_file():
        try:
            for account_tokens in TokenStore(tokens)._read().values():
                for value in account_tokens.values() if isinstance(account_tokens, dict) else ():
                    if isinstance(value, str):
                        register_secret(value)
        except (SecretError, OSError, UnicodeDecodeError):
            pass
