"""What a platform module is made of, and how a call finds its handler.

A platform module declares one `Platform`: its name, the paths it answers (`claim`, a regular
expression), its route table of `Route(method, pattern, handler)` tried in order, the answer to
a path of its own that no route takes, and how it words injected faults (`FaultStyle` and
`refused`). A handler gets a `Request`: the call parsed (query, form and files, JSON, bearer
token, the route's named groups in `params`) and the means to answer it (JSON answers, the
fault for a posting call, recording an accepted post).
"""

from __future__ import annotations

import email.parser
import email.policy
import json
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from broadcaster.rehearsal.emulator import faults
from broadcaster.rehearsal.emulator.faults import Fault, FaultStyle

if TYPE_CHECKING:  # state.py imports the registry, which imports this module
    from broadcaster.rehearsal.emulator.state import Emulator

Handler = Callable[["Request"], None]
# Answer an injected refusal in the platform's shape: (request, status, code, message, headers).
Refused = Callable[["Request", int, str, str, dict[str, str]], None]


@dataclass(frozen=True)
class Route:
    """One endpoint: `method` ("*" for any), `pattern` (a regular expression the whole path
    must match; its named groups reach the handler as `request.params`), and an optional
    `when` that must also hold (a query parameter present, an id known...)."""

    method: str
    pattern: str
    handler: Handler
    when: Callable[[Request], bool] | None = None
    regex: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "regex", re.compile(self.pattern))

    def match(self, method: str, path: str) -> dict[str, str] | None:
        """The named groups when the method and the whole path match, else None."""
        if self.method not in ("*", method):
            return None
        found = self.regex.fullmatch(path)
        return None if found is None else found.groupdict()


@dataclass(frozen=True)
class Platform:
    """One emulated platform, as its module declares it and the registry lists it."""

    name: str  # as in a fault spec and in the received posts
    claim: str  # a regular expression matching every path of this platform's API
    routes: tuple[Route, ...]
    not_found: Handler  # a claimed path no route takes (after the platform's own checks)
    faults: FaultStyle
    refused: Refused
    claim_regex: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "claim_regex", re.compile(self.claim))

    def claims(self, path: str) -> bool:
        return self.claim_regex.fullmatch(path) is not None


class Request:
    """One call, as a route handler sees it."""

    def __init__(
        self, exchange: BaseHTTPRequestHandler, emulator: Emulator, method: str, body: bytes
    ) -> None:
        self.exchange = exchange
        self.emulator = emulator
        self.method = method
        url = urlsplit(exchange.path)
        self.path = url.path
        self.query: dict[str, str] = {k: v[0] for k, v in parse_qs(url.query).items()}
        self.body = body
        self.params: dict[str, str] = {}  # the matched route's named groups
        self._platform: Platform | None = None
        self._form: tuple[dict[str, str], dict[str, tuple[str, bytes]]] | None = None

    @property
    def platform(self) -> Platform:
        """The platform whose route answers this call (set by `dispatch`)."""
        if self._platform is None:
            raise RuntimeError(f"{self.method} {self.path} was not dispatched to a platform")
        return self._platform

    # -- reading --

    def header(self, name: str) -> str:
        return str(self.exchange.headers.get(name, ""))

    def bearer(self) -> str:
        """The token of an `Authorization: Bearer ...` header ("" without one)."""
        return self.header("Authorization").removeprefix("Bearer ").strip()

    def json(self) -> Any:
        """The body as JSON (an empty body is `{}`); ValueError when it is not JSON."""
        return json.loads(self.body or b"{}")

    def form(self) -> tuple[dict[str, str], dict[str, tuple[str, bytes]]]:
        """Fields and files of a urlencoded or multipart body, and the query string's fields."""
        if self._form is None:
            self._form = self._parse_form()
        return self._form

    def _parse_form(self) -> tuple[dict[str, str], dict[str, tuple[str, bytes]]]:
        fields = dict(self.query)
        files: dict[str, tuple[str, bytes]] = {}
        ctype = self.header("Content-Type")
        if ctype.startswith("multipart/form-data"):
            msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
                f"Content-Type: {ctype}\r\n\r\n".encode() + self.body
            )
            for part in msg.iter_parts():
                name = part.get_param("name", header="content-disposition")
                filename = part.get_filename()
                decoded = part.get_payload(decode=True)
                payload = decoded if isinstance(decoded, bytes) else b""
                if filename:
                    files[str(name)] = (filename, payload)
                else:
                    fields[str(name)] = payload.decode("utf-8", "replace")
        elif self.body and "json" not in ctype:
            form = parse_qs(self.body.decode("utf-8", "replace"))
            fields.update({k: v[0] for k, v in form.items()})
        return fields, files

    # -- answering --

    def send(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        """Answer with `payload` as JSON (None: an empty body)."""
        data = b"" if payload is None else json.dumps(payload).encode()
        delay = self.emulator.limits.response_delay
        if delay and not self.path.startswith("/_emulator"):
            time.sleep(delay)
        out = self.exchange
        out.send_response(status)
        if payload is not None:
            out.send_header("Content-Type", "application/json; charset=UTF-8")
        out.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            out.send_header(k, v)
        out.end_headers()
        out.wfile.write(data)

    def count(self, status: int) -> None:
        """Count this platform's answer in the snapshot's `responses`."""
        self.emulator.count(self.platform.name, status)

    # -- faults and posts --

    def take_fault(self) -> Fault | None:
        """The fault for this posting call, if any (call it once per posting call)."""
        return self.emulator.take_fault(self.platform.name)

    def refuse(self, fault: Fault | None, headers: dict[str, str] | None = None) -> bool:
        """Answer a refusing fault (429, 503, 500, code=) as the platform would, with the
        `headers` it sends anyway; False when the fault is not one of those."""
        emu = self.emulator
        refusal = faults.refusal(
            fault, self.platform.faults, emu.limits.fault_wait, emu.clock(), headers
        )
        if refusal is None:
            return False
        self.platform.refused(self, refusal.status, refusal.code, refusal.message, refusal.headers)
        return True

    def record(
        self,
        target: str,
        post_id: str,
        text: str,
        media: Iterable[str] = (),
        title: str | None = None,
        reply_to: str | None = None,
    ) -> None:
        """Keep the post this call made on the platform."""
        self.emulator.record(self.platform.name, target, post_id, text, media, title, reply_to)

    def accepted(self, fault: Fault | None) -> None:
        """The post is recorded: if the fault is close, reset or timeout, end the exchange
        here without an answer (the server acts it out)."""
        faults.after_accept(fault)


def first_route(routes: Sequence[Route], req: Request) -> bool:
    """Run the first route that takes the call; False when none does."""
    for route in routes:
        params = route.match(req.method, req.path)
        if params is None:
            continue
        req.params = params
        if route.when is not None and not route.when(req):
            continue
        route.handler(req)
        return True
    return False


def dispatch(platforms: Sequence[Platform], req: Request) -> bool:
    """Answer the call by the first platform claiming its path (its routes, else its not-found
    answer); False when no platform claims it."""
    for platform in platforms:
        if platform.claims(req.path):
            req._platform = platform
            if not first_route(platform.routes, req):
                platform.not_found(req)
            return True
    return False
