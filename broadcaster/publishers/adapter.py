"""The requests adapter under every platform's session (http.platform_session): no automatic
retries, a default timeout, an optional rewrite to another base URL, redirects refused.

Apart from http.py because it subclasses requests' and urllib3's classes: reading the
configuration imports every configured platform's module, and must not import an HTTP client
that only the adapters at work use.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from broadcaster.publishers.http import NotSentNow, send_allowed


class RedirectRefused(requests.RequestException):
    """The platform answered with a redirect; following it would send the request (and the
    credentials in it) again, elsewhere. Nothing was acted on at the address called."""


class PlatformAdapter(HTTPAdapter):
    """No automatic retries (a repeated POST could post twice), a default timeout, and an
    optional rewrite of the scheme and host to another base URL."""

    def __init__(self, timeout: float, rewrite_to: str | None = None) -> None:
        super().__init__(max_retries=Retry(total=0, connect=0, read=0, redirect=0, status=0))
        self.timeout = timeout
        self.rewrite_to = urlsplit(rewrite_to) if rewrite_to else None

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: Any = None,
        verify: Any = True,
        cert: Any = None,
        proxies: dict[str, str] | None = None,
    ) -> requests.Response:
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
        if not send_allowed():  # the very last check before the request is written
            raise NotSentNow("this instance's lease is running out: nothing sent")
        return super().send(
            request,
            stream=stream,
            timeout=self.timeout if timeout is None else timeout,
            verify=verify,
            cert=cert,
            proxies=proxies,
        )


def refuse_redirect(response: requests.Response, *args: Any, **kwargs: Any) -> None:
    """A session's response hook: a redirect answer raises RedirectRefused."""
    if response.is_redirect:
        response.close()
        raise RedirectRefused(f"HTTP {response.status_code} redirect refused")
