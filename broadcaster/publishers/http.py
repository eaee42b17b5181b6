"""Transport shared by every adapter (requests for Facebook, TikTok and X, and under
google-api-python-client for YouTube).

Kept apart from the platforms' APIs: a session that never sends a request twice by itself, always
has a timeout, never follows a redirect, can send a client library's fixed host to another base
(the emulator), and maps network failures into the error taxonomy without ever quoting a URL
(URLs can carry tokens).

What "never twice" rests on, audited against the libraries' source:
- urllib3 is given `Retry(total=0, ...)` (adapter.py): a connection dropped or reset after the
  request was written raises at once (requests' own default, `Retry(0, read=False)`, would too;
  ours also covers connect and status retries). A pooled connection found dead *before* writing
  is replaced before anything is sent, which is safe.
- requests follows 307/308 redirects by sending the same POST body again, to wherever the
  Location says (Facebook's token travels in that body). No platform API redirects a call, so a
  redirect answer is refused (`RedirectRefused`, adapter.py): nothing is re-sent, nothing leaks.
- facebook-sdk and tweepy call `session.request` once per call and have no retry of their own
  (tweepy's only loop is `wait_on_rate_limit`, which stays off); the TikTok adapter is plain
  requests. httplib2, which google-api-python-client uses by default, does re-send a POST by
  itself (see broadcaster/publishers/youtube.py), so YouTube runs on this transport too.
"""

from __future__ import annotations

import importlib
import ipaddress
import time
from collections.abc import Callable, Mapping
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from broadcaster.publishers.base import InDoubt, PublishError, RetryLater


class LazyModule:
    """A module imported at the first use of one of its attributes. The platforms' client
    libraries (google-api-python-client and google-auth, tweepy, facebook-sdk) and requests
    cost a third of a second to import: every command that reads the configuration imports
    each configured platform's module (for its settings model) and would pay it, though only
    the adapters at work use them."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._module: Any = None

    def __getattr__(self, attr: str) -> Any:
        if self._module is None:
            self._module = importlib.import_module(self._name)
        return getattr(self._module, attr)


if TYPE_CHECKING:
    import requests
else:
    requests = LazyModule("requests")


class NotSentNow(RetryLater):
    """The send gate refused the request: nothing was sent."""


# Set by the daemon when it shares its database with standbys (runtime/daemon.py): returns
# whether this process may still send. It is asked as the very last step before a request is
# written, so a process paused (SIGSTOP, a frozen VM) between claiming a post and calling the
# platform finds, when it wakes, that its lease has run out, and sends nothing.
_send_gate: Callable[[], bool] | None = None


def set_send_gate(gate: Callable[[], bool] | None) -> None:
    global _send_gate
    _send_gate = gate


def send_allowed() -> bool:
    """Whether the send gate, when one is set, lets a request be written now."""
    gate = _send_gate
    return gate is None or gate()


def platform_session(
    timeout: float,
    *,
    hosts: tuple[str, ...] = (),
    base: str | None = None,
    on_response: Callable[[requests.Response], None] | None = None,
    session: requests.Session | None = None,
) -> requests.Session:
    """A session for one platform (or `session`, set up the same way): requests to `hosts` go
    to `base` when it is another host; no retries, a timeout, redirects refused."""
    from broadcaster.publishers.adapter import PlatformAdapter, refuse_redirect

    session = session if session is not None else requests.Session()
    plain = PlatformAdapter(timeout)
    session.mount("https://", plain)
    session.mount("http://", plain)
    if base:
        target = urlsplit(base)
        for host in hosts:
            if urlsplit(host).netloc != target.netloc or urlsplit(host).scheme != target.scheme:
                session.mount(host, PlatformAdapter(timeout, rewrite_to=base))
    session.hooks["response"].append(refuse_redirect)
    if on_response is not None:
        session.hooks["response"].append(lambda r, *a, **k: on_response(r))
    return session


def network_error(exc: requests.RequestException, action: str) -> PublishError:
    """A network failure as the taxonomy sees it: before anything was sent it is safe to retry;
    after (a read timeout, a dropped or reset connection) the platform may have acted, so it is
    in doubt. The message names the kind of failure only, never the URL."""
    from broadcaster.publishers.adapter import RedirectRefused

    kind = type(exc).__name__
    if isinstance(exc, RedirectRefused):
        return RetryLater(
            f"{action}: the platform answered with a redirect, which is never followed "
            "(check the account's api_base)"
        )
    if isinstance(exc, requests.ConnectTimeout | requests.exceptions.InvalidURL):
        return RetryLater(f"{action}: {kind} (nothing was sent)")
    if isinstance(exc, requests.ConnectionError) and _refused(exc):
        return RetryLater(f"{action}: connection refused (nothing was sent)")
    return InDoubt(f"{action}: {kind} after the request was sent")


def _refused(exc: requests.ConnectionError) -> bool:
    text = repr(exc.args)
    return "Connection refused" in text or "NewConnectionError" in text


def header(headers: Mapping[str, Any] | None, name: str) -> str | None:
    """A header's value whatever the case of its name (requests' headers ignore case,
    httplib2's responses keep lower-case names)."""
    if not headers:
        return None
    value = headers.get(name)
    if value is None:
        lowered = name.lower()
        value = next((v for k, v in headers.items() if str(k).lower() == lowered), None)
    return None if value is None else str(value)


def retry_after(headers: Mapping[str, Any] | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (seconds or an HTTP date); None without one."""
    value = header(headers, "Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            when = parsedate_to_datetime(value).timestamp()
        except (TypeError, ValueError, IndexError):
            return None
        return max(0.0, when - (now if now is not None else time.time()))


def may_have_acted(status: int) -> bool:
    """Whether an HTTP error status on a call that creates something leaves it in doubt.

    429 and 503 say the server did not handle the request ("too many", "unavailable": the
    request was turned away); any other 5xx (500 internal error, 502/504 from a gateway that
    had passed the request on) can come after the platform acted. Any 4xx is a refusal.
    """
    return status >= 500 and status != 503


LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def require_https(url: str) -> str:
    """A platform address that credentials are sent to: https, or plain http on loopback only
    (the local emulator). Used as a pydantic validator: the error names the setting's key."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return url
    if parts.scheme == "http" and is_loopback(parts.hostname):
        return url
    where = f"{parts.scheme}://{parts.hostname}" if parts.scheme else repr(url[:40])
    raise ValueError(
        f"must be an https:// address (got {where}): tokens and secrets would travel in clear; "
        "plain http is allowed only on loopback (127.0.0.0/8, ::1, localhost)"
    )
