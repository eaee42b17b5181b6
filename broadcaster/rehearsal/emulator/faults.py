"""Faults injected on demand: the spec parser, the queues of faults asked for, the random mix,
and the one place where a fault is acted out (a refusal with the platform's wait, or a dropped
connection after the platform accepted the post).

Nothing here knows a platform by name: each platform module declares a `FaultStyle` (its
refusals, the HTTP status of its error codes, its random mix, how it asks a client to wait) and
the registry hands the styles over. The spec grammar is in the package docstring.
"""

from __future__ import annotations

import math
import random
import select
import socket
import struct
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

# Refused before the platform acts, in the platform's own shape (plus `code=C[@H]`).
REFUSING_KINDS = ("429", "503", "500")
# Accepted and recorded, then no answer.
DROPPING_KINDS = ("close", "reset", "timeout")
FAULT_KINDS = frozenset({*REFUSING_KINDS, *DROPPING_KINDS, "token_expired", "chat_ended"})
WAITING_KINDS = frozenset({"429", "503"})  # kinds that take =S, the wait the platform asks for
# What every platform's random mix starts with: the faults any client must recover from alone.
COMMON_MIX = ("500", "503", "429", "close", "reset", "timeout")


@dataclass
class Fault:
    kind: str
    count: int = 1
    wait: float | None = None  # 429 and 503: seconds the platform asks to wait (0: none given)
    code: str | None = None  # code=: the platform's error code or reason
    status: int | None = None  # code=: the HTTP status


# (kind, seconds to wait, now, the headers the answer already has) -> the headers to send.
WaitHeaders = Callable[[str, float, float, Mapping[str, str]], dict[str, str]]


def retry_after(kind: str, wait: float, now: float, headers: Mapping[str, str]) -> dict[str, str]:
    """The common way to ask for a wait: `Retry-After` in whole seconds, none when it is 0."""
    out = dict(headers)
    if wait > 0:
        out["Retry-After"] = str(math.ceil(wait))
    return out


def any_code(code: str) -> str | None:
    """Accept any error code (a platform whose codes are free text)."""
    return None


@dataclass(frozen=True)
class FaultStyle:
    """How one platform words injected faults."""

    # "429", "503", "500" -> (HTTP status, the platform's code or reason, message)
    refusals: Mapping[str, tuple[int, str, str]]
    code_status: int  # the HTTP status of `code=C` without `@H`
    mix: tuple[str, ...]  # what `random=P` draws from: kinds as written in a spec
    wait_headers: WaitHeaders = retry_after
    check_code: Callable[[str], str | None] = any_code  # a problem with a code=C, or None


@dataclass(frozen=True)
class Refusal:
    """The answer to a refusing fault, for the platform module to put in its error shape."""

    status: int
    code: str
    message: str
    headers: dict[str, str]


def parse_spec(spec: str, styles: Mapping[str, FaultStyle]) -> dict[str, list[Fault]]:
    """`x:429:2,tiktok:code=spam_risk_too_many_posts` -> faults per platform, in order, for the
    platforms in `styles`. A `random=P` item comes back as a Fault of kind "random" whose `wait`
    holds P. Raises ValueError naming the item at fault."""
    out: dict[str, list[Fault]] = defaultdict(list)
    for item in filter(None, (s.strip() for s in spec.split(","))):
        parts = item.split(":")
        if len(parts) not in (2, 3) or parts[0] not in styles:
            raise ValueError(
                f"fault {item!r}: expected platform:kind[:count], platform one of {tuple(styles)}"
            )
        platform, kind = parts[0], parts[1]
        try:
            count = int(parts[2]) if len(parts) == 3 else 1
        except ValueError:
            raise ValueError(f"fault {item!r}: the count must be a whole number") from None
        out[platform].append(_parse_kind(item, styles[platform], kind, count))
    return out


def _parse_kind(item: str, style: FaultStyle, kind: str, count: int) -> Fault:
    name, _, arg = kind.partition("=")
    if name == "random":
        return _parse_random(item, arg)
    if name == "code":
        return _parse_code(item, style, arg, count)
    if name not in FAULT_KINDS or (arg and name not in WAITING_KINDS):
        raise ValueError(f"fault {item!r}: unknown kind {kind!r}")
    wait = None
    if arg:
        try:
            wait = float(arg)
        except ValueError:
            raise ValueError(f"fault {item!r}: {name}=S needs seconds") from None
    return Fault(name, count, wait=wait)


def _parse_random(item: str, arg: str) -> Fault:
    try:
        rate = float(arg)
    except ValueError:
        rate = -1.0
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"fault {item!r}: random=P needs a probability 0..1")
    return Fault("random", 1, wait=rate)


def _parse_code(item: str, style: FaultStyle, arg: str, count: int) -> Fault:
    code, _, status = arg.partition("@")
    if not code:
        raise ValueError(f"fault {item!r}: code=C[@status] needs a code")
    problem = style.check_code(code)
    if problem:
        raise ValueError(f"fault {item!r}: {problem}")
    if status and not (status.isdigit() and 200 <= int(status) <= 599):
        raise ValueError(f"fault {item!r}: the status after @ must be an HTTP status")
    return Fault("code", count, code=code, status=int(status) if status else None)


class Faults:
    """The faults asked for, per platform, and the random mode; thread-safe."""

    def __init__(self, styles: Mapping[str, FaultStyle], seed: int | None = None) -> None:
        self.styles = dict(styles)
        for name, style in self.styles.items():  # a typo in a mix fails here, not mid-night
            parse_spec(",".join(f"{name}:{kind}" for kind in style.mix), self.styles)
        self._lock = threading.Lock()
        self._queued: dict[str, list[Fault]] = defaultdict(list)
        self._rates: dict[str, float] = {}
        self._rng = random.Random(seed)
        self._drawn: dict[str, int] = defaultdict(int)  # random faults drawn, by "platform kind"
        self._refreshing: set[str] = set()

    def add(self, spec: str) -> None:
        """Queue the spec's faults (after those already queued); `random=P` sets the rate."""
        parsed = parse_spec(spec, self.styles)
        with self._lock:
            for platform, faults in parsed.items():
                for fault in faults:
                    if fault.kind == "random":
                        self._rates[platform] = fault.wait or 0.0
                    else:
                        self._queued[platform].append(fault)

    def take(self, platform: str) -> Fault | None:
        """The fault for this posting call, if any: the next one asked for, else a random one."""
        with self._lock:
            queue = self._queued.get(platform)
            if queue:
                fault = queue[0]
                fault.count -= 1
                if fault.count <= 0:
                    queue.pop(0)
                return Fault(fault.kind, 1, fault.wait, fault.code, fault.status)
            rate = self._rates.get(platform, 0.0)
            if platform in self._refreshing:
                # The call right after an expired token is the client's retry with a fresh
                # one: a platform does not expire that one too.
                self._refreshing.discard(platform)
                return None
            if rate and self._rng.random() < rate:
                kind = self._rng.choice(self.styles[platform].mix)
                self._drawn[f"{platform} {kind}"] += 1
                if kind == "token_expired":
                    self._refreshing.add(platform)
                return _parse_kind(f"{platform}:{kind}", self.styles[platform], kind, 1)
            return None

    def pending(self) -> dict[str, list[dict[str, Any]]]:
        """The faults asked for and not met yet, per platform."""
        with self._lock:
            return {k: [asdict(f) for f in v] for k, v in self._queued.items() if v}

    def drawn(self) -> dict[str, int]:
        """How many random faults were drawn, by "platform kind"."""
        with self._lock:
            return dict(self._drawn)


def refusal(
    fault: Fault | None,
    style: FaultStyle,
    default_wait: float,
    now: float,
    headers: Mapping[str, str] | None = None,
) -> Refusal | None:
    """The platform's answer to a refusing fault (429, 503, 500, code=), with the wait it asks
    for in its own headers; None when the fault is not one of those."""
    if fault is None or fault.kind not in (*REFUSING_KINDS, "code"):
        return None
    if fault.kind == "code":
        assert fault.code is not None
        status = fault.status or style.code_status
        return Refusal(status, fault.code, f"{fault.code} (injected)", dict(headers or {}))
    status, code, message = style.refusals[fault.kind]
    wait = fault.wait if fault.wait is not None else default_wait
    return Refusal(status, code, message, style.wait_headers(fault.kind, wait, now, headers or {}))


class Drop(Exception):
    """End the exchange without an answer after the platform accepted the post: `close`,
    `reset` or `timeout`, the fault's kind. The server catches it and calls `drop`."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


def after_accept(fault: Fault | None) -> None:
    """The post is recorded: now fail to say so, if the fault asks (raises Drop)."""
    if fault is not None and fault.kind in DROPPING_KINDS:
        raise Drop(fault.kind)


def drop(conn: socket.socket, kind: str, hang_seconds: float) -> None:
    """Act out a dropping fault on the connection: close (FIN), reset (RST: SO_LINGER 0, then
    close), or timeout (say nothing until the client gives up or `hang_seconds` pass)."""
    try:
        if kind == "timeout":
            _hang(conn, hang_seconds)
        if kind == "reset":
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        else:
            conn.shutdown(socket.SHUT_RDWR)
        conn.close()
    except OSError:
        pass


def _hang(conn: socket.socket, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        ready, _, _ = select.select([conn], [], [], min(left, 0.5))
        if ready:
            try:
                if not conn.recv(65536):
                    return
            except OSError:
                return
