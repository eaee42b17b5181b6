"""A local stand-in for the four platforms, close enough for the real client libraries.

It answers the endpoints the adapters use (Facebook Graph, YouTube Data API v3 and Google's
token endpoint, TikTok's Content Posting API and OAuth, X API v2 and its media upload) with their
real success and error shapes, enforces their rate limits, quotas and daily caps, records every
accepted post, and injects faults on demand. `GET /_emulator/posts` lists what it received.

It binds 127.0.0.1 unless told otherwise: it accepts any token and must not be reachable from
outside the machine.

Fault specification (`--faults`, or POST /_emulator/faults {"spec": ...}): comma-separated
`platform:kind[:count]`, applied to that platform's next posting calls (Facebook feed and photo
posts, YouTube chat messages, TikTok content/init, X tweets; count defaults to 1). Each answer
has the platform's own shape (Graph's error object, Google's error list, TikTok's error code,
X's problem document).

Refused before the platform acts (nothing is recorded):
  429[=S]        rate limited, with the platform's own wait: Retry-After: S for YouTube and
                 TikTok, x-rate-limit-reset now+S for X, Graph error 4 with
                 estimated_time_to_regain_access ceil(S/60) minutes for Facebook. S defaults to
                 `Limits.fault_wait` (2); 429=0 sends no wait at all.
  503[=S]        unavailable, with Retry-After: S (Facebook: error 2, is_transient)
  500            an internal server error (Facebook: error 1, is_transient)
  code=C[@H]     the platform's error C with HTTP status H: a Graph error code (default HTTP
                 400), a Google reason such as userRateLimitExceeded (default 403), a TikTok
                 error code (default HTTP 200, as TikTok does), an X problem title (default 400)
  token_expired  the access token is refused (TikTok and YouTube refresh it; X and Facebook need
                 an operator)
  chat_ended     YouTube only: the live chat ends; a new broadcast with a new chat starts
Accepted and recorded, then no answer:
  close          the connection is closed (FIN) without a byte of answer
  reset          the connection is reset (RST: SO_LINGER 0, then close)
  timeout        the connection stays open, unanswered, until the client gives up (or
                 `Limits.hang_seconds` pass)
Random faults:
  random=P       from now on, each posting call of that platform fails with probability P, with
                 a kind drawn from the platform's mix (`RANDOM_MIX`: every kind above that the
                 platform recovers from by itself), from a seeded generator
"""

from __future__ import annotations

import email.parser
import email.policy
import itertools
import json
import logging
import math
import random
import select
import socket
import struct
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from broadcaster.live import emulator_routes as live_routes

log = logging.getLogger(__name__)

PLATFORMS = ("facebook", "youtube", "tiktok", "x")
FAULT_KINDS = {"429", "503", "500", "close", "reset", "timeout", "token_expired", "chat_ended"}
WAITING_KINDS = {"429", "503"}  # kinds that take =S, the wait the platform asks for
# Kinds the random mode draws from, per platform: every fault the platform recovers from without
# an operator (an expired Facebook or X token needs one, so it is left out).
_COMMON_MIX = ("500", "503", "429", "close", "reset", "timeout")
RANDOM_MIX: dict[str, tuple[str, ...]] = {
    "facebook": (*_COMMON_MIX, "code=2@500", "code=17", "code=80001"),
    "youtube": (
        *_COMMON_MIX,
        "code=userRateLimitExceeded",
        "code=backendError@503",
        "token_expired",
        "chat_ended",
    ),
    "tiktok": (*_COMMON_MIX, "code=internal_error", "code=new_unlisted_error@502", "token_expired"),
    "x": (*_COMMON_MIX, "code=Service Unavailable@503"),
}
DEFAULT_STATUS = {"facebook": 400, "youtube": 403, "tiktok": 200, "x": 400}


@dataclass
class Received:
    platform: str
    target: str  # page, channel, creator or user
    id: str
    text: str
    media: list[str] = field(default_factory=list)
    title: str | None = None
    reply_to: str | None = None
    at: str = ""
    deleted: bool = False


@dataclass
class Fault:
    kind: str
    count: int = 1
    wait: float | None = None  # 429 and 503: seconds the platform asks to wait (0: none given)
    code: str | None = None  # code=: the platform's error code or reason
    status: int | None = None  # code=: the HTTP status


@dataclass
class Limits:
    """The platforms' limits the emulator enforces (defaults from the platforms' documentation)."""

    x_per_15min: int = 200
    x_daily: int = 100  # Basic tier per user; Free is 17
    tiktok_init_per_min: int = 6
    tiktok_creator_per_min: int = 20
    tiktok_status_per_min: int = 30
    tiktok_daily: int = 15
    youtube_daily_units: int = 10_000
    facebook_per_hour: int = 200
    fault_wait: float = 2.0  # seconds a 429 or 503 fault asks to wait, unless the spec says
    hang_seconds: float = 30.0  # a `timeout` fault holds the connection at most this long
    # Seconds every platform answer waits after the platform has acted: a slow platform, and a
    # wide window for a crash between the platform accepting a post and us hearing of it.
    response_delay: float = 0.0
    privacy_options: tuple[str, ...] = ("PUBLIC_TO_EVERYONE", "FOLLOWER_OF_CREATOR", "SELF_ONLY")


def parse_faults(spec: str) -> dict[str, list[Fault]]:
    """`x:429:2,tiktok:code=spam_risk_too_many_posts` -> faults per platform, in order. A
    `random=P` item comes back as a Fault of kind "random" whose `wait` holds P."""
    out: dict[str, list[Fault]] = defaultdict(list)
    for item in filter(None, (s.strip() for s in spec.split(","))):
        parts = item.split(":")
        if len(parts) not in (2, 3) or parts[0] not in PLATFORMS:
            raise ValueError(
                f"fault {item!r}: expected platform:kind[:count], platform one of {PLATFORMS}"
            )
        platform, kind = parts[0], parts[1]
        try:
            count = int(parts[2]) if len(parts) == 3 else 1
        except ValueError:
            raise ValueError(f"fault {item!r}: the count must be a whole number") from None
        out[platform].append(_parse_kind(item, platform, kind, count))
    return out


def _parse_kind(item: str, platform: str, kind: str, count: int) -> Fault:
    name, _, arg = kind.partition("=")
    if name == "random":
        try:
            rate = float(arg)
        except ValueError:
            rate = -1.0
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"fault {item!r}: random=P needs a probability 0..1")
        return Fault("random", 1, wait=rate)
    if name == "code":
        code, _, status = arg.partition("@")
        if not code:
            raise ValueError(f"fault {item!r}: code=C[@status] needs a code")
        if platform == "facebook" and not code.isdigit():
            raise ValueError(f"fault {item!r}: a Graph error code is a number")
        if status and not (status.isdigit() and 200 <= int(status) <= 599):
            raise ValueError(f"fault {item!r}: the status after @ must be an HTTP status")
        return Fault("code", count, code=code, status=int(status) if status else None)
    if name not in FAULT_KINDS or (arg and name not in WAITING_KINDS):
        raise ValueError(f"fault {item!r}: unknown kind {kind!r}")
    wait = None
    if arg:
        try:
            wait = float(arg)
        except ValueError:
            raise ValueError(f"fault {item!r}: {name}=S needs seconds") from None
    return Fault(name, count, wait=wait)


class Emulator:
    """The platforms' state; thread-safe. `clock` gives the time used for rate windows and caps
    (a rehearsal passes its feed clock, so limits behave as on the night)."""

    def __init__(
        self,
        limits: Limits | None = None,
        clock: Callable[[], float] | None = None,
        seed: int | None = None,
    ) -> None:
        self.limits = limits or Limits()
        self.clock = clock or time.time
        self.lock = threading.RLock()
        self.posts: list[Received] = []
        self.faults: dict[str, list[Fault]] = defaultdict(list)
        self.random_rate: dict[str, float] = {}
        self.rng = random.Random(seed)
        self.injected: dict[str, int] = defaultdict(int)  # random faults drawn, by kind
        self.refreshing: set[str] = set()
        self.calls: dict[str, deque[float]] = defaultdict(deque)
        self.counts: dict[str, int] = defaultdict(int)  # responses by "platform status"
        self.refusals: dict[str, int] = defaultdict(int)  # calls refused for a limit
        self.ids = itertools.count(1001)
        self.quota_used = 0
        self.quota_day = ""
        self.chat = "chat-1"
        self.chat_seq = 1
        self.tiktok_publish: dict[str, str] = {}
        self.expired_tokens: set[str] = set()

    # -- faults --

    def add_faults(self, spec: str) -> None:
        with self.lock:
            for platform, faults in parse_faults(spec).items():
                for fault in faults:
                    if fault.kind == "random":
                        self.random_rate[platform] = fault.wait or 0.0
                    else:
                        self.faults[platform].append(fault)

    def take_fault(self, platform: str) -> Fault | None:
        """The fault for this posting call, if any: the next one asked for, else a random one."""
        with self.lock:
            queue = self.faults.get(platform)
            if queue:
                fault = queue[0]
                fault.count -= 1
                if fault.count <= 0:
                    queue.pop(0)
                return Fault(fault.kind, 1, fault.wait, fault.code, fault.status)
            rate = self.random_rate.get(platform, 0.0)
            if platform in self.refreshing:
                # The call right after an expired token is the client's retry with a fresh
                # one: a platform does not expire that one too.
                self.refreshing.discard(platform)
                return None
            if rate and self.rng.random() < rate:
                kind = self.rng.choice(RANDOM_MIX[platform])
                fault = parse_faults(f"{platform}:{kind}")[platform][0]
                self.injected[f"{platform} {kind}"] += 1
                if kind == "token_expired":
                    self.refreshing.add(platform)
                return fault
            return None

    # -- limits --

    def allow(self, key: str, limit: int, window: float) -> tuple[bool, float]:
        """Record a call in a sliding window; (allowed, seconds until a slot frees)."""
        now = self.clock()
        with self.lock:
            calls = self.calls[key]
            while calls and calls[0] <= now - window:
                calls.popleft()
            if len(calls) >= limit:
                return False, max(1.0, calls[0] + window - now)
            calls.append(now)
            return True, 0.0

    def record(self, post: Received) -> Received:
        with self.lock:
            post.at = datetime.fromtimestamp(self.clock(), UTC).isoformat()
            self.posts.append(post)
        return post

    def next_id(self) -> str:
        with self.lock:
            return str(next(self.ids))

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {
                "posts": [asdict(p) for p in self.posts],
                "responses": dict(self.counts),
                "youtube_quota_used": self.quota_used,
                "limit_refusals": dict(self.refusals),
                "pending_faults": {k: [asdict(f) for f in v] for k, v in self.faults.items() if v},
                "random_faults": dict(self.injected),
            }

    def refuse(self, platform: str) -> None:
        """Count a call refused for a rate limit, quota or daily cap."""
        with self.lock:
            self.refusals[platform] += 1

    def count(self, platform: str, status: int) -> None:
        with self.lock:
            self.counts[f"{platform} {status}"] += 1


class _Drop(Exception):
    """End the exchange without an answer after the platform accepted the post: `close`,
    `reset` or `timeout`, the fault's kind."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


# The platform's error for each kind of refusal: (HTTP status, code or reason, message).
_REFUSALS: dict[str, dict[str, tuple[int, str, str]]] = {
    "429": {
        "facebook": (400, "4", "(#4) Application request limit reached"),
        "youtube": (429, "rateLimitExceeded", "The request was sent too quickly."),
        "tiktok": (429, "rate_limit_exceeded", "Too many requests."),
        "x": (429, "Too Many Requests", "Too Many Requests"),
    },
    "503": {
        "facebook": (503, "2", "Service temporarily unavailable"),
        "youtube": (503, "backendError", "Backend Error"),
        "tiktok": (503, "internal_error", "Service unavailable."),
        "x": (503, "Service Unavailable", "Service Unavailable"),
    },
    "500": {
        "facebook": (500, "1", "An unknown error has occurred."),
        "youtube": (500, "backendError", "Backend Error"),
        "tiktok": (500, "internal_error", "Something went wrong."),
        "x": (500, "Internal Server Error", "Internal Server Error"),
    },
}


class Handler(BaseHTTPRequestHandler):
    server_version = "broadcaster-emulator"
    protocol_version = "HTTP/1.1"
    emulator: Emulator  # set on the subclass made per server

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("emulator: " + format, *args)

    # -- plumbing --

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _form(self, body: bytes) -> tuple[dict[str, str], dict[str, tuple[str, bytes]]]:
        """Fields and files of a urlencoded or multipart body (and the query string)."""
        fields = {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}
        files: dict[str, tuple[str, bytes]] = {}
        ctype = self.headers.get("Content-Type", "")
        if ctype.startswith("multipart/form-data"):
            msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
                f"Content-Type: {ctype}\r\n\r\n".encode() + body
            )
            for part in msg.iter_parts():
                name = part.get_param("name", header="content-disposition")
                filename = part.get_filename()
                payload = part.get_payload(decode=True) or b""
                if filename:
                    files[str(name)] = (filename, payload)
                else:
                    fields[str(name)] = payload.decode("utf-8", "replace")
        elif body and "json" not in ctype:
            fields.update({k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()})
        return fields, files

    def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = b"" if payload is None else json.dumps(payload).encode()
        delay = self.emulator.limits.response_delay
        if delay and not self.path.startswith("/_emulator"):
            time.sleep(delay)
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _dispatch(self, method: str) -> None:
        path = urlsplit(self.path).path
        body = self._body()
        try:
            if path.startswith("/_emulator"):
                return self._inspect(method, path, body)
            if path.startswith("/2/"):
                return self._x(method, path, body)
            if path.startswith("/youtube/v3/") or path == "/token":
                return self._youtube(method, path, body)
            if path.startswith("/v2/"):
                return self._tiktok(method, path, body)
            if path.startswith("/v") and path[2:3].isdigit():
                return self._facebook(method, path, body)
            self._send(404, {"error": f"no such endpoint: {method} {path}"})
        except _Drop as drop:
            self.close_connection = True
            self._drop(drop.kind)

    def _drop(self, kind: str) -> None:
        conn = self.connection
        try:
            if kind == "timeout":
                self._hang()
            if kind == "reset":
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            else:
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()
        except OSError:
            pass

    def _hang(self) -> None:
        """Say nothing until the client gives up and closes (or hang_seconds pass)."""
        deadline = time.monotonic() + self.emulator.limits.hang_seconds
        while (left := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select([self.connection], [], [], min(left, 0.5))
            if ready:
                try:
                    if not self.connection.recv(65536):
                        return
                except OSError:
                    return

    # -- faults, in each platform's own shape --

    def _refuse(
        self, platform: str, fault: Fault | None, headers: dict[str, str] | None = None
    ) -> bool:
        """Answer a refusing fault (429, 503, 500, code=) as the platform would; False when
        the fault is not one of those."""
        if fault is None or fault.kind not in ("429", "503", "500", "code"):
            return False
        emu = self.emulator
        extra = dict(headers or {})
        if fault.kind == "code":
            assert fault.code is not None
            status = fault.status or DEFAULT_STATUS[platform]
            code, message = fault.code, f"{fault.code} (injected)"
        else:
            status, code, message = _REFUSALS[fault.kind][platform]
            wait = fault.wait if fault.wait is not None else emu.limits.fault_wait
            if wait > 0 and fault.kind == "429" and platform == "facebook":
                usage = {"type": "pages", "call_count": 100, "total_cputime": 5, "total_time": 5}
                usage["estimated_time_to_regain_access"] = math.ceil(wait / 60)
                extra["X-Business-Use-Case-Usage"] = json.dumps({"emulated-business": [usage]})
            elif fault.kind == "429" and platform == "x":
                if wait > 0:
                    extra["x-rate-limit-remaining"] = "0"
                    extra["x-rate-limit-reset"] = str(math.ceil(emu.clock() + wait))
                else:  # no wait at all: none of the reset headers
                    extra = {k: v for k, v in extra.items() if not k.startswith("x-")}
            elif wait > 0:
                extra["Retry-After"] = str(math.ceil(wait))
        self._platform_error(platform, status, code, message, extra)
        return True

    def _platform_error(
        self, platform: str, status: int, code: str, message: str, headers: dict[str, str]
    ) -> None:
        emu = self.emulator
        body: dict[str, Any]
        if platform == "facebook":
            error: dict[str, Any] = {
                "message": message,
                "type": "OAuthException",
                "code": int(code),
                "fbtrace_id": "EmuTrace",
            }
            if status >= 500:
                error["is_transient"] = True
            body = {"error": error}
        elif platform == "youtube":
            domain = "usageLimits" if "RateLimit" in code or "rateLimit" in code else "global"
            errors = [{"message": message, "domain": domain, "reason": code}]
            body = {"error": {"code": status, "message": message, "errors": errors}}
        elif platform == "tiktok":
            body = {
                "data": {},
                "error": {"code": code, "message": message, "log_id": f"EMU{emu.next_id()}"},
            }
        else:
            body = {"title": code, "detail": message, "type": "about:blank", "status": status}
        emu.count(platform, status)
        self._send(status, body, headers)

    @staticmethod
    def _after_accept(fault: Fault | None) -> None:
        """The post is recorded: now fail to say so, if the fault asks."""
        if fault is not None and fault.kind in ("close", "reset", "timeout"):
            raise _Drop(fault.kind)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _inspect(self, method: str, path: str, body: bytes) -> None:
        emu = self.emulator
        if path == "/_emulator/posts" and method == "GET":
            return self._send(200, emu.snapshot())
        if path == "/_emulator/faults" and method == "POST":
            try:
                emu.add_faults(json.loads(body or b"{}").get("spec", ""))
            except (ValueError, AttributeError) as exc:
                return self._send(400, {"error": str(exc)})
            return self._send(200, {"ok": True})
        self._send(404, {"error": "unknown inspection endpoint"})

    # -- Facebook Graph --

    def _facebook(self, method: str, path: str, body: bytes) -> None:
        if live_routes.facebook(self, method, path, body):  # the live channel's live_videos
            return None
        emu = self.emulator
        parts = path.strip("/").split("/")[1:]  # drop the version
        fields, files = self._form(body)
        token = fields.get("access_token", "")

        def error(
            status: int,
            message: str,
            code: int = 1,
            subcode: int | None = None,
            headers: dict[str, str] | None = None,
        ) -> None:
            err: dict[str, Any] = {
                "message": message,
                "type": "OAuthException",
                "code": code,
                "fbtrace_id": "EmuTrace",
            }
            if subcode:
                err["error_subcode"] = subcode
            emu.count("facebook", status)
            self._send(status, {"error": err}, headers)

        if parts == ["oauth", "access_token"] and method == "GET":
            if fields.get("grant_type") != "fb_exchange_token" or not fields.get(
                "fb_exchange_token"
            ):
                return error(400, "Missing grant_type or fb_exchange_token", 100)
            return self._send(
                200,
                {
                    "access_token": f"long-lived-{emu.next_id()}",
                    "token_type": "bearer",
                    "expires_in": 5183944,
                },
            )
        if not token or token in emu.expired_tokens:
            return error(400, "Error validating access token: Session has expired", 190, 463)
        allowed, wait = emu.allow(f"fb:{token}", emu.limits.facebook_per_hour, 3600)
        usage = {"call_count": 100 if not allowed else 10, "total_cputime": 5, "total_time": 5}
        buc = json.dumps(
            {
                "emulated-business": [
                    {
                        "type": "pages",
                        "call_count": usage["call_count"],
                        "total_cputime": 5,
                        "total_time": 5,
                        "estimated_time_to_regain_access": 0
                        if allowed
                        else max(1, int(wait // 60) + 1),
                    }
                ]
            }
        )
        headers = {"X-App-Usage": json.dumps(usage), "X-Business-Use-Case-Usage": buc}
        if not allowed:
            emu.refuse("facebook")
            return error(400, "(#32) Page request limit reached", 32, headers=headers)

        posting = method == "POST" and len(parts) == 2 and parts[1] in ("feed", "photos")
        if posting:
            fault = emu.take_fault("facebook")
            if fault is not None and fault.kind == "token_expired":
                emu.expired_tokens.add(token)
                return error(400, "Error validating access token: Session has expired", 190, 463)
            if self._refuse("facebook", fault, headers):
                return None
            page = parts[0]
            message = fields.get("message", "")
            recent = [
                p
                for p in emu.posts
                if p.platform == "facebook" and p.target == page and not p.deleted
            ]
            if message and recent and recent[-1].text == message:
                return error(400, "Duplicate status message", 506)
            pid = f"{page}_{emu.next_id()}"
            media = [files["source"][0]] if "source" in files else []
            emu.record(Received("facebook", page, pid, message, media))
            self._after_accept(fault)
            emu.count("facebook", 200)
            if parts[1] == "photos":
                return self._send(200, {"id": emu.next_id(), "post_id": pid}, headers)
            return self._send(200, {"id": pid}, headers)
        if method == "GET" and len(parts) == 2 and parts[1] == "posts":
            since = float(fields.get("since", 0) or 0)
            data = [
                {"id": p.id, "message": p.text, "created_time": p.at}
                for p in reversed(emu.posts)
                if p.platform == "facebook"
                and p.target == parts[0]
                and not p.deleted
                and datetime.fromisoformat(p.at).timestamp() >= since
            ]
            return self._send(200, {"data": data}, headers)
        if method == "GET" and len(parts) == 1:
            page = {
                "id": parts[0],
                "name": "Emulated Page (TEST)",
                "tasks": ["ANALYZE", "ADVERTISE", "CREATE_CONTENT", "MANAGE"],
            }
            if "access_token" in fields.get("fields", ""):
                page["access_token"] = f"page-token-for-{parts[0]}"
            return self._send(200, page, headers)
        if method == "DELETE" and len(parts) == 1:
            for p in emu.posts:
                if p.platform == "facebook" and p.id == parts[0]:
                    p.deleted = True
                    return self._send(200, {"success": True}, headers)
            return error(400, "Unsupported delete request.", 100)
        if method == "POST" and len(parts) == 1:  # edit a post
            for p in emu.posts:
                if p.platform == "facebook" and p.id == parts[0]:
                    p.text = fields.get("message", p.text)
                    return self._send(200, {"success": True}, headers)
            return error(400, "Unsupported post request.", 100)
        return error(400, f"Unknown path components: /{'/'.join(parts)}", 2500)

    # -- X --

    def _x(self, method: str, path: str, body: bytes) -> None:
        emu = self.emulator
        auth = self.headers.get("Authorization", "")

        def problem(
            status: int, title: str, detail: str, headers: dict[str, str] | None = None
        ) -> None:
            emu.count("x", status)
            self._send(
                status,
                {"title": title, "detail": detail, "type": "about:blank", "status": status},
                headers,
            )

        if not auth.startswith("OAuth ") or "x-revoked" in auth:
            return problem(401, "Unauthorized", "Unauthorized")
        user = "2244994945"
        if path == "/2/users/me":
            return self._send(
                200, {"data": {"id": user, "name": "Emulated Account", "username": "emulated_test"}}
            )
        if path == f"/2/users/{user}/tweets" and method == "GET":
            tweets = [
                {"id": p.id, "text": p.text, "edit_history_tweet_ids": [p.id]}
                for p in reversed(emu.posts)
                if p.platform == "x" and not p.deleted
            ][:20]
            return self._send(200, {"data": tweets, "meta": {"result_count": len(tweets)}})
        if path == "/2/media/upload" and method == "POST":
            _, files = self._form(body)
            if "media" not in files:
                return problem(400, "Invalid Request", "media is required")
            mid = emu.next_id()
            return self._send(
                200, {"data": {"id": mid, "media_key": f"3_{mid}", "expires_after_secs": 86400}}
            )
        if path.startswith("/2/tweets/") and method == "DELETE":
            tid = path.rsplit("/", 1)[1]
            for p in emu.posts:
                if p.platform == "x" and p.id == tid:
                    p.deleted = True
            return self._send(200, {"data": {"deleted": True}})
        if path == "/2/tweets" and method == "POST":
            now = emu.clock()
            ok15, wait15 = emu.allow(f"x15:{user}", emu.limits.x_per_15min, 900)
            okday, waitday = emu.allow(f"xday:{user}", emu.limits.x_daily, 86400)
            headers = {
                "x-rate-limit-limit": str(emu.limits.x_per_15min),
                "x-rate-limit-remaining": str(
                    max(0, emu.limits.x_per_15min - len(emu.calls[f"x15:{user}"]))
                ),
                "x-rate-limit-reset": str(int(now + (wait15 or 900))),
                "x-user-limit-24hour-limit": str(emu.limits.x_daily),
                "x-user-limit-24hour-remaining": str(
                    max(0, emu.limits.x_daily - len(emu.calls[f"xday:{user}"]))
                ),
                "x-user-limit-24hour-reset": str(int(now + (waitday or 86400))),
            }
            if not ok15 or not okday:
                emu.refuse("x")
                return problem(429, "Too Many Requests", "Too Many Requests", headers)
            fault = emu.take_fault("x")
            if fault is not None and fault.kind == "token_expired":
                return problem(401, "Unauthorized", "Unauthorized")
            if self._refuse("x", fault, headers):
                return None
            try:
                payload = json.loads(body)
            except ValueError:
                return problem(400, "Invalid Request", "body is not JSON")
            text = str(payload.get("text", ""))
            if any(p.platform == "x" and p.text == text and not p.deleted for p in emu.posts):
                return problem(
                    403,
                    "Forbidden",
                    "You are not allowed to create a Tweet with duplicate content.",
                )
            from twitter_text import parse_tweet

            if parse_tweet(text).weightedLength > 280:
                return problem(400, "Invalid Request", "The text is too long")
            reply = (payload.get("reply") or {}).get("in_reply_to_tweet_id")
            media = (payload.get("media") or {}).get("media_ids") or []
            tid = emu.next_id()
            emu.record(Received("x", user, tid, text, list(media), reply_to=reply))
            self._after_accept(fault)
            emu.count("x", 201)
            return self._send(
                201, {"data": {"id": tid, "text": text, "edit_history_tweet_ids": [tid]}}, headers
            )
        return problem(404, "Not Found", f"no route {method} {path}")

    # -- TikTok --

    def _tiktok(self, method: str, path: str, body: bytes) -> None:
        emu = self.emulator

        def answer(
            status: int,
            data: dict[str, Any] | None,
            code: str = "ok",
            message: str = "",
            headers: dict[str, str] | None = None,
        ) -> None:
            emu.count("tiktok", status if code == "ok" else status * 1000 + 1)
            error = {"code": code, "message": message, "log_id": f"EMU{emu.next_id()}"}
            self._send(status, {"data": data or {}, "error": error}, headers)

        if path == "/v2/oauth/token/":
            form, _ = self._form(body)
            grant = form.get("grant_type")
            valid = (grant == "authorization_code" and form.get("code")) or (
                grant == "refresh_token"
                and form.get("refresh_token")
                and not form.get("refresh_token", "").startswith("revoked")
            )
            if not valid:
                return self._send(
                    400,
                    {
                        "error": "invalid_grant",
                        "error_description": "Refresh token is invalid or expired.",
                        "log_id": "EMU",
                    },
                )
            n = emu.next_id()
            return self._send(
                200,
                {
                    "access_token": f"act.emu{n}",
                    "expires_in": 86400,
                    "open_id": "emu-open-id",
                    "refresh_expires_in": 31536000,
                    "refresh_token": f"rft.emu{n}",
                    "scope": "video.publish",
                    "token_type": "Bearer",
                },
            )
        token = self.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not token or token in emu.expired_tokens:
            return answer(
                401,
                None,
                "access_token_invalid",
                "The access token is invalid or not found in the request.",
            )
        try:
            payload = json.loads(body or b"{}")
        except ValueError:
            return answer(400, None, "invalid_param", "body is not JSON")
        if path == "/v2/post/publish/creator_info/query/":
            ok, _ = emu.allow(f"tt-info:{token}", emu.limits.tiktok_creator_per_min, 60)
            if not ok:
                emu.refuse("tiktok")
                return answer(429, None, "rate_limit_exceeded", "Too many requests.")
            return answer(
                200,
                {
                    "creator_avatar_url": "https://example.invalid/a.jpg",
                    "creator_username": "emulated_creator",
                    "creator_nickname": "Emulated (TEST)",
                    "privacy_level_options": list(emu.limits.privacy_options),
                    "comment_disabled": False,
                    "duet_disabled": False,
                    "stitch_disabled": True,
                    "max_video_post_duration_sec": 300,
                },
            )
        if path == "/v2/post/publish/status/fetch/":
            ok, _ = emu.allow(f"tt-status:{token}", emu.limits.tiktok_status_per_min, 60)
            if not ok:
                emu.refuse("tiktok")
                return answer(429, None, "rate_limit_exceeded", "Too many requests.")
            pid = payload.get("publish_id")
            post_id = emu.tiktok_publish.get(str(pid))
            if post_id is None:
                return answer(400, None, "invalid_publish_id", "publish_id not found")
            return answer(
                200,
                {
                    "status": "PUBLISH_COMPLETE",
                    "publicaly_available_post_id": [int(post_id)],
                    "uploaded_bytes": 0,
                    "fail_reason": "",
                },
            )
        if path == "/v2/post/publish/content/init/":
            fault = emu.take_fault("tiktok")
            if fault is not None and fault.kind == "token_expired":
                emu.expired_tokens.add(token)
                return answer(
                    401,
                    None,
                    "access_token_invalid",
                    "The access token is invalid or not found in the request.",
                )
            if self._refuse("tiktok", fault):
                return None
            ok, _ = emu.allow(f"tt-init:{token}", emu.limits.tiktok_init_per_min, 60)
            if not ok:
                emu.refuse("tiktok")
                return answer(429, None, "rate_limit_exceeded", "Too many requests.")
            okday, _ = emu.allow("tt-day", emu.limits.tiktok_daily, 86400)
            if not okday:
                emu.refuse("tiktok")
                return answer(
                    403,
                    None,
                    "spam_risk_too_many_posts",
                    "The user has reached the daily post cap.",
                )
            info = payload.get("post_info") or {}
            src = payload.get("source_info") or {}
            problem = _tiktok_problem(payload, info, src, emu.limits.privacy_options)
            if problem:
                code, message = problem
                return answer(400 if code == "invalid_param" else 403, None, code, message)
            pid = f"p_pub_url~v2.{emu.next_id()}"
            post_id = emu.next_id()
            emu.tiktok_publish[pid] = post_id
            emu.record(
                Received(
                    "tiktok",
                    "emulated_creator",
                    post_id,
                    str(info.get("description", "")),
                    list(src.get("photo_images", [])),
                    title=info.get("title"),
                )
            )
            self._after_accept(fault)
            return answer(200, {"publish_id": pid})
        return answer(404, None, "invalid_params", f"no route {path}")

    # -- YouTube --

    def _youtube(self, method: str, path: str, body: bytes) -> None:
        if live_routes.youtube(self, method, path, body):  # liveStreams, liveBroadcasts
            return None
        emu = self.emulator
        if path == "/token":
            form, _ = self._form(body)
            grant = form.get("grant_type")
            refresh = form.get("refresh_token", "")
            if grant == "authorization_code" and form.get("code"):
                return self._send(
                    200,
                    {
                        "access_token": f"ya29.emu{emu.next_id()}",
                        "expires_in": 3599,
                        "refresh_token": f"1//emu{emu.next_id()}",
                        "scope": "https://www.googleapis.com/auth/youtube.force-ssl",
                        "token_type": "Bearer",
                    },
                )
            if grant != "refresh_token" or not refresh or refresh.startswith("revoked"):
                return self._send(
                    400,
                    {
                        "error": "invalid_grant",
                        "error_description": "Token has been expired or revoked.",
                    },
                )
            return self._send(
                200,
                {
                    "access_token": f"ya29.emu{emu.next_id()}",
                    "expires_in": 3599,
                    "scope": "https://www.googleapis.com/auth/youtube.force-ssl",
                    "token_type": "Bearer",
                },
            )

        def error(status: int, reason: str, message: str, domain: str = "youtube.liveChat") -> None:
            emu.count("youtube", status)
            self._send(
                status,
                {
                    "error": {
                        "code": status,
                        "message": message,
                        "errors": [{"message": message, "domain": domain, "reason": reason}],
                    }
                },
            )

        token = self.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not token or token in emu.expired_tokens:
            return error(
                401, "authError", "Request had invalid authentication credentials.", "global"
            )
        query = {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}
        costs = {
            ("GET", "liveBroadcasts"): 1,
            ("POST", "messages"): 20,
            ("GET", "messages"): 5,
            ("DELETE", "messages"): 50,
        }
        cost = costs.get((method, path.rsplit("/", 1)[1]), 1)
        day = datetime.fromtimestamp(emu.clock(), UTC).astimezone(_pacific()).date().isoformat()
        with emu.lock:
            if emu.quota_day != day:
                emu.quota_day, emu.quota_used = day, 0
            if emu.quota_used + cost > emu.limits.youtube_daily_units:
                emu.refuse("youtube")
                return error(
                    403,
                    "quotaExceeded",
                    "The request cannot be completed because you have exceeded your quota.",
                    "youtube.quota",
                )
            emu.quota_used += cost
        if path == "/youtube/v3/liveBroadcasts":
            items = [
                {
                    "kind": "youtube#liveBroadcast",
                    "id": f"bc-{emu.chat_seq}",
                    "snippet": {
                        "title": "Results night (TEST)",
                        "channelId": "UC-emulated",
                        "liveChatId": emu.chat,
                    },
                }
            ]
            return self._send(200, {"kind": "youtube#liveBroadcastListResponse", "items": items})
        if path == "/youtube/v3/liveChat/messages" and method == "POST":
            fault = emu.take_fault("youtube")
            if fault is not None and fault.kind == "token_expired":
                emu.expired_tokens.add(token)
                return error(
                    401, "authError", "Request had invalid authentication credentials.", "global"
                )
            if self._refuse("youtube", fault):
                return None
            try:
                snippet = json.loads(body)["snippet"]
                text = snippet["textMessageDetails"]["messageText"]
                chat = snippet["liveChatId"]
            except (ValueError, KeyError, TypeError):
                return error(400, "invalidValue", "The request body is malformed.")
            if fault is not None and fault.kind == "chat_ended":
                with emu.lock:
                    emu.chat_seq += 1
                    emu.chat = f"chat-{emu.chat_seq}"
                return error(403, "liveChatEnded", "The specified live chat is no longer live.")
            if chat != emu.chat:
                return error(403, "liveChatEnded", "The specified live chat is no longer live.")
            if not text or len(text) > 200:
                return error(400, "messageTextInvalid", "The message text is invalid or too long.")
            mid = f"msg-{emu.next_id()}"
            emu.record(Received("youtube", chat, mid, text))
            self._after_accept(fault)
            emu.count("youtube", 200)
            return self._send(
                200,
                {
                    "kind": "youtube#liveChatMessage",
                    "id": mid,
                    "snippet": {**snippet, "displayMessage": text},
                    "authorDetails": {"channelId": "UC-emulated", "isChatOwner": True},
                },
            )
        if path == "/youtube/v3/liveChat/messages" and method == "GET":
            items = [
                {
                    "id": p.id,
                    "snippet": {
                        "displayMessage": p.text,
                        "textMessageDetails": {"messageText": p.text},
                    },
                    "authorDetails": {"channelId": "UC-emulated", "isChatOwner": True},
                }
                for p in emu.posts
                if p.platform == "youtube" and p.target == query.get("liveChatId") and not p.deleted
            ]
            return self._send(200, {"items": items})
        if path == "/youtube/v3/liveChat/messages" and method == "DELETE":
            for p in emu.posts:
                if p.platform == "youtube" and p.id == query.get("id"):
                    p.deleted = True
            self.send_response(204)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        return error(404, "notFound", f"no route {method} {path}", "global")


def _pacific() -> Any:
    from zoneinfo import ZoneInfo

    return ZoneInfo("America/Los_Angeles")


def _tiktok_problem(
    payload: dict[str, Any], info: dict[str, Any], src: dict[str, Any], privacy: tuple[str, ...]
) -> tuple[str, str] | None:
    if payload.get("media_type") != "PHOTO" or payload.get("post_mode") not in (
        "DIRECT_POST",
        "MEDIA_UPLOAD",
    ):
        return "invalid_param", "media_type must be PHOTO and post_mode DIRECT_POST or MEDIA_UPLOAD"
    if info.get("privacy_level") not in privacy:
        return "privacy_level_option_mismatch", "privacy_level is not one of the creator's options"
    if len(str(info.get("title", "")).encode("utf-16-le")) // 2 > 90:
        return "invalid_param", "title is longer than 90 UTF-16 units"
    if len(str(info.get("description", "")).encode("utf-16-le")) // 2 > 4000:
        return "invalid_param", "description is longer than 4000 UTF-16 units"
    images = src.get("photo_images") or []
    if src.get("source") != "PULL_FROM_URL" or not images or len(images) > 35:
        return "invalid_param", "photo posts need source PULL_FROM_URL and 1 to 35 photo_images"
    for url in images:
        if not str(url).lower().split("?")[0].endswith((".jpg", ".jpeg", ".webp")):
            return "invalid_param", "photos must be JPEG or WebP"
    return None


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up mid-answer (a timeout, a killed process) is normal here.
        log.debug("emulator: a client went away", exc_info=True)


class EmulatorServer:
    """The emulator on a local port, in a background thread."""

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, emulator: Emulator | None = None
    ) -> None:
        self.emulator = emulator or Emulator()
        handler = type("BoundHandler", (Handler,), {"emulator": self.emulator})
        self.httpd = _Server((host, port), handler)
        # A short poll so that stop() returns at once (tests start and stop many emulators).
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, args=(0.05,), name="emulator", daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> EmulatorServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
