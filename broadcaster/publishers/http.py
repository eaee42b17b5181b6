"""Transport shared by the requests-based adapters (Facebook, TikTok, X).

Kept apart from the platforms' APIs: a session that never retries a request by itself, always
has a timeout, can send a client library's fixed host to another base (the emulator), and maps
network failures into the error taxonomy without ever quoting a URL (URLs can carry tokens).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from broadcaster.publishers.base import InDoubt, PublishError, RetryLater


class PlatformAdapter(HTTPAdapter):
    """No automatic retries (a repeated POST could post twice), a default timeout, and an
    optional rewrite of the scheme and host to another base URL."""

    def __init__(self, timeout: float, rewrite_to: str | None = None) -> None:
        super().__init__(max_retries=Retry(total=0, connect=0, read=0, redirect=0, status=0))
        self.timeout = timeout
        self.rewrite_to = urlsplit(rewrite_to) if rewrite_to else None

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.timeout
        if self.rewrite_to is not None and request.url:
            parts = urlsplit(request.url)
            base_path = self.rewrite_to.path.rstrip("/")
            request.url = urlunsplit(
                (
                    self.rewrite_to.scheme,
                    self.rewrite_to.netloc,
                    base_path + parts.path,
                    parts.query,
                    parts.fragment,
                )
            )
        return super().send(request, **kwargs)


def platform_session(
    timeout: float,
    *,
    hosts: tuple[str, ...] = (),
    base: str | None = None,
    on_response: Callable[[requests.Response], None] | None = None,
) -> requests.Session:
    """A session for one platform: requests to `hosts` go to `base` when it is another host."""
    session = requests.Session()
    plain = PlatformAdapter(timeout)
    session.mount("https://", plain)
    session.mount("http://", plain)
    if base:
        target = urlsplit(base)
        for host in hosts:
            if urlsplit(host).netloc != target.netloc or urlsplit(host).scheme != target.scheme:
                session.mount(host, PlatformAdapter(timeout, rewrite_to=base))
    if on_response is not None:
        session.hooks["response"].append(lambda r, *a, **k: on_response(r))
    return session


def network_error(exc: requests.RequestException, action: str) -> PublishError:
    """A network failure as the taxonomy sees it: before anything was sent it is safe to retry;
    after (a read timeout, a dropped connection) the platform may have acted, so it is in doubt.
    The message names the kind of failure only, never the URL."""
    kind = type(exc).__name__
    if isinstance(exc, requests.ConnectTimeout | requests.exceptions.InvalidURL):
        return RetryLater(f"{action}: {kind} (nothing was sent)")
    if isinstance(exc, requests.ConnectionError) and _refused(exc):
        return RetryLater(f"{action}: connection refused (nothing was sent)")
    return InDoubt(f"{action}: {kind} after the request was sent")


def _refused(exc: requests.ConnectionError) -> bool:
    text = repr(exc.args)
    return "Connection refused" in text or "NewConnectionError" in text


def retry_after(headers: Any, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (seconds or an HTTP date)."""
    value = headers.get("Retry-After") if headers is not None else None
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            when = parsedate_to_datetime(value).timestamp()
        except (TypeError, ValueError):
            return None
        return max(0.0, when - (now if now is not None else time.time()))
