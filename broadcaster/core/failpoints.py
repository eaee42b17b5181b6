"""Crashes on purpose at named points, to prove that delivery survives them.

Inert unless `BROADCASTER_FAILPOINTS` is set, e.g. `after_claim:0.1,in_call:0.2:0.3`: each
`name:probability[:seconds]` makes the process SIGKILL itself when that point is reached, with
that probability. SIGKILL, because that is the crash nothing can clean up after: no `finally`,
no atexit, no flush. The points:

  after_claim  the post is committed `sending`; the platform has not been called
  in_call      the platform call is under way: a timer kills the process within `seconds`
               (default 0.3), usually while the platform is answering
  after_call   the platform answered with the post's id; it is not yet committed `sent`
  after_sent   the post is committed `sent`

Where `BROADCASTER_FAILPOINTS_LOG` names a file, the point is appended to it before the kill, so a
crash test can count where its kills landed.
"""

from __future__ import annotations

import os
import random
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

ENV = "BROADCASTER_FAILPOINTS"
LOG_ENV = "BROADCASTER_FAILPOINTS_LOG"
POINTS = ("after_claim", "in_call", "after_call", "after_sent")


def parse(spec: str) -> dict[str, tuple[float, float]]:
    """`name:p[:seconds],...` -> {name: (p, seconds)}; unknown names and bad numbers raise."""
    out: dict[str, tuple[float, float]] = {}
    for item in filter(None, (s.strip() for s in spec.split(","))):
        name, _, rest = item.partition(":")
        if name not in POINTS:
            raise ValueError(f"{ENV}: unknown point {name!r}; known: {', '.join(POINTS)}")
        prob, _, seconds = rest.partition(":")
        try:
            p = float(prob or 1.0)
            window = float(seconds or 0.3)
        except ValueError:
            raise ValueError(f"{ENV}: {item!r}: expected name:probability[:seconds]") from None
        if not 0.0 <= p <= 1.0 or window <= 0:
            raise ValueError(f"{ENV}: {item!r}: probability 0..1, seconds above 0")
        out[name] = (p, window)
    return out


_POINTS = parse(os.environ.get(ENV, ""))


def active() -> bool:
    return bool(_POINTS)


def _die(name: str) -> None:
    log_path = os.environ.get(LOG_ENV)
    if log_path:
        fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{name}\n".encode())
            os.fsync(fd)
        finally:
            os.close(fd)
    os.kill(os.getpid(), signal.SIGKILL)


def hit(name: str) -> None:
    """Kill the process here, with the probability configured for `name`."""
    point = _POINTS.get(name)
    if point and random.random() < point[0]:
        _die(name)


@contextmanager
def around_call() -> Iterator[None]:
    """Wraps a platform call: `in_call` arms a timer that kills the process part-way through."""
    point = _POINTS.get("in_call")
    if not point or random.random() >= point[0]:
        yield
        return
    in_flight = threading.Event()
    in_flight.set()
    timer = threading.Timer(
        random.uniform(0.0, point[1]),
        lambda: _die("in_call" if in_flight.is_set() else "in_call (just after)"),
    )
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        in_flight.clear()
