"""Sessions, CSRF tokens and the login rate limit, kept in the console's memory.

A session is a random token in an HttpOnly, SameSite=Strict cookie; the server keeps only its
hash, with the user's name, the user's password stamp and a CSRF token for its forms. Sessions
end at logout, after `[console] session_hours`, when the user's password changes or the user is
removed, and when the console restarts (nothing about them is written to disk).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass
class Session:
    user: str
    stamp: str  # the user's password stamp when the session opened
    csrf: str
    expires: float
    flashes: list[tuple[str, str]] = field(default_factory=list)  # (kind, message) to show once


class Sessions:
    def __init__(self, lifetime: float) -> None:
        self.lifetime = lifetime
        self._lock = threading.Lock()
        self._by_digest: dict[str, Session] = {}

    def open(self, user: str, stamp: str) -> tuple[str, Session]:
        """A new session; returns the cookie's token (never stored) and the session."""
        token = secrets.token_urlsafe(32)
        session = Session(user, stamp, secrets.token_urlsafe(32), time.time() + self.lifetime)
        with self._lock:
            self._prune()
            self._by_digest[_digest(token)] = session
        return token, session

    def get(self, token: str | None) -> Session | None:
        if not token or len(token) > 200:
            return None
        with self._lock:
            session = self._by_digest.get(_digest(token))
            if session is not None and session.expires <= time.time():
                del self._by_digest[_digest(token)]
                return None
            return session

    def close(self, token: str | None) -> None:
        if token:
            with self._lock:
                self._by_digest.pop(_digest(token), None)

    def close_user(self, user: str) -> None:
        with self._lock:
            for key in [k for k, s in self._by_digest.items() if s.user == user]:
                del self._by_digest[key]

    def _prune(self) -> None:
        now = time.time()
        for key in [k for k, s in self._by_digest.items() if s.expires <= now]:
            del self._by_digest[key]


def same_token(given: str | None, expected: str | None) -> bool:
    """Constant-time comparison of a submitted CSRF token with the expected one."""
    if not given or not expected:
        return False
    return hmac.compare_digest(given.encode(), expected.encode())


class LoginLimiter:
    """Failed logins per user name and per client address within a sliding window; past the
    limit, further attempts are refused without checking the password until the window has
    moved on. A success clears the name's failures (not the address's)."""

    def __init__(self, per_user: int, per_address: int, window: float) -> None:
        self.per_user = per_user
        self.per_address = per_address
        self.window = window
        self._lock = threading.Lock()
        self._failures: dict[tuple[str, str], deque[float]] = {}

    def _recent(self, key: tuple[str, str], now: float) -> deque[float]:
        times = self._failures.setdefault(key, deque())
        while times and times[0] <= now - self.window:
            times.popleft()
        return times

    def retry_after(self, user: str, address: str) -> float:
        """Seconds until this name or address may try again; 0 when it may now."""
        now = time.monotonic()
        wait = 0.0
        with self._lock:
            for key, limit in (
                (("user", user.lower()), self.per_user),
                (("addr", address), self.per_address),
            ):
                times = self._recent(key, now)
                if len(times) >= limit:
                    wait = max(wait, times[-limit] + self.window - now)
        return wait

    def failed(self, user: str, address: str) -> None:
        now = time.monotonic()
        with self._lock:
            for key in (("user", user.lower()), ("addr", address)):
                self._recent(key, now).append(now)
            if len(self._failures) > 10_000:  # a spray of names: forget the quiet ones
                for key in [k for k, v in self._failures.items() if not v]:
                    del self._failures[key]

    def succeeded(self, user: str) -> None:
        with self._lock:
            self._failures.pop(("user", user.lower()), None)
