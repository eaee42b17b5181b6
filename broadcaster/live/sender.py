"""One destination's sender: its own thread, its own bounded queue, its own connection process.

The channel hands every encoded chunk to every sender with `put()`, which never blocks: when a
destination falls behind and its queue is full, its packets are dropped up to the next keyframe
(and counted), so a slow or failing destination never holds up the encoder or the others. The
thread feeds a child process (`sender_child`) that holds the actual connection; when it fails,
the sender names the reason, waits (exponential backoff with jitter) and connects again, always
starting on a keyframe with its timestamps from zero.
"""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import av

from broadcaster.core.logs import redact
from broadcaster.live.encoder import Chunk

log = logging.getLogger(__name__)

CONNECTING, LIVE, RECONNECTING, FAILED, STOPPED = (
    "connecting",
    "live",
    "reconnecting",
    "failed",
    "stopped",
)
STALL_SECONDS = 10.0  # a connection that accepts nothing this long is given up and remade


class TargetError(Exception):
    """The destination's ingest address could not be obtained. `permanent`: retrying soon will
    not help (a refused key, live streaming not enabled on the channel...)."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


@dataclass
class SenderStats:
    state: str = CONNECTING
    reason: str = ""
    since: float = field(default_factory=time.time)
    connects: int = 0
    frames_sent: int = 0
    dropped_frames: int = 0
    bytes_sent: int = 0
    bitrate: float = 0.0  # bits per second over the last few seconds
    platform_health: str | None = None  # the platform's own view, where it has one
    last_error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "reason": self.reason,
            "since": self.since,
            "connects": self.connects,
            "frames_sent": self.frames_sent,
            "dropped_frames": self.dropped_frames,
            "bytes_sent": self.bytes_sent,
            "bitrate": round(self.bitrate),
            "platform_health": self.platform_health,
            "last_error": self.last_error,
        }


class Sender:
    """Sends the channel's chunks to one destination until stopped."""

    def __init__(
        self,
        name: str,
        target: Callable[[], str],
        templates: tuple[Any, Any],
        *,
        fps: int,
        queue_seconds: float = 3.0,
        backoff_max: float = 60.0,
        python: str = sys.executable,
    ) -> None:
        self.name = name
        self.target = target
        self.templates = templates
        self.limit = max(16, int(queue_seconds * (fps + 48)))  # video and AAC packets a second
        self.backoff_max = backoff_max
        self.python = python
        self.stats = SenderStats()
        self.queue: collections.deque[Chunk] = collections.deque()
        self.cond = threading.Condition()
        self.dropping = False
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"live-{name}", daemon=True)
        self.child: subprocess.Popen[bytes] | None = None
        self.last_write = time.monotonic()
        self.attempt_started = time.monotonic()
        self.stall_seconds = STALL_SECONDS
        self._rate: collections.deque[tuple[float, int]] = collections.deque()
        self._child_error: str | None = None

    # -- the channel's side --

    def start(self) -> Sender:
        self.thread.start()
        return self

    def put(self, chunks: list[Chunk]) -> None:
        """Queue chunks without ever blocking; drop to the next keyframe when full."""
        if self.stopping.is_set():
            return
        with self.cond:
            for chunk in chunks:
                if self.dropping or len(self.queue) >= self.limit:
                    if chunk.video and chunk.keyframe and len(self.queue) < self.limit // 2:
                        self.dropping = False
                    else:
                        if not self.dropping:
                            log.warning(
                                "live %s: falling behind; dropping to the next keyframe", self.name
                            )
                        self.dropping = True
                        self.stats.dropped_frames += chunk.video
                        continue
                self.queue.append(chunk)
            self.cond.notify()

    def stop(self, timeout: float = 10.0) -> None:
        """Finish cleanly: close the stream (the ingest sees its end), then the process."""
        self.stopping.set()
        with self.cond:
            self.cond.notify_all()
        self.thread.join(timeout)
        self._kill()
        self._set(STOPPED, "stopped")

    def halt(self, reason: str) -> None:
        """Stop this destination for good (the platform ended its broadcast): failed, named."""
        self.stop()
        self._set(FAILED, reason)
        self.stats.last_error = reason

    def check_stall(self) -> None:
        """Called from the channel's status loop: a connection that gets no answer for a while
        (a network gone quiet rather than refused: a handshake that never completes, data that
        is never taken) is killed, so the sender connects again."""
        child = self.child
        if child is None or child.poll() is not None:
            return
        now = time.monotonic()
        if self.stats.state == LIVE:
            stalled = bool(self.queue) and now - self.last_write > self.stall_seconds
        else:
            stalled = now - self.attempt_started > self.stall_seconds
        if stalled:
            self._child_error = (
                f"no answer from the server for {self.stall_seconds:g} s (network lost?)"
            )
            self._kill()

    def _set(self, state: str, reason: str) -> None:
        if state != self.stats.state or reason != self.stats.reason:
            self.stats.state, self.stats.reason, self.stats.since = state, reason, time.time()

    # -- the sender thread --

    def _run(self) -> None:
        failures = 0
        while not self.stopping.is_set():
            try:
                url = self.target()
            except TargetError as exc:
                failures += 1
                self._fail(FAILED if exc.permanent else RECONNECTING, str(exc), failures)
                continue
            except Exception as exc:  # a lifecycle bug must not end the others' night
                failures += 1
                log.exception("live %s: could not get the ingest address", self.name)
                self._fail(RECONNECTING, f"{type(exc).__name__}: {exc}", failures)
                continue
            if failures == 0:
                self._set(CONNECTING, "connecting")
            else:
                self._set(RECONNECTING, self.stats.reason)
            self.stats.connects += 1
            reason = self._stream(url)
            if self.stopping.is_set():
                break
            failures = 0 if self.stats.state == LIVE else failures + 1
            self._fail(RECONNECTING, reason, max(1, failures))

    def _fail(self, state: str, reason: str, failures: int) -> None:
        reason = redact(reason)
        self.stats.last_error = reason
        self._set(state, reason)
        delay = min(self.backoff_max, 2 ** min(failures, 10) * 0.5)
        delay *= random.uniform(0.8, 1.2)
        log.warning("live %s: %s; trying again in %.1f s", self.name, reason, delay)
        # Waiting is not sending: what queues up meanwhile would only be stale.
        with self.cond:
            self.queue.clear()
            self.dropping = False
        self.stopping.wait(delay)

    def _spawn(self, url: str) -> subprocess.Popen[bytes]:
        child = subprocess.Popen(
            [self.python, "-m", "broadcaster.live.sender_child"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,  # a terminal's Ctrl-C reaches the channel, which ends it
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self._child_error = None
        assert child.stdin is not None
        child.stdin.write(json.dumps({"target": url, "name": self.name}).encode() + b"\n")
        child.stdin.flush()
        threading.Thread(target=self._listen, args=(child,), daemon=True).start()
        threading.Thread(target=self._stderr, args=(child,), daemon=True).start()
        return child

    def _listen(self, child: subprocess.Popen[bytes]) -> None:
        assert child.stdout is not None
        for line in child.stdout:
            try:
                message = json.loads(line)
            except ValueError:
                continue
            event = message.get("event")
            if event == "live":
                self._set(LIVE, "streaming")
                log.info("live %s: streaming", self.name)
            elif event == "sent":
                self.stats.bytes_sent += int(message.get("bytes", 0))
            elif event == "error":
                self._child_error = redact(str(message.get("message", "")))

    def _stderr(self, child: subprocess.Popen[bytes]) -> None:
        assert child.stderr is not None
        for line in child.stderr:
            text = redact(line.decode("utf-8", "replace").rstrip())
            if text:
                log.debug("live %s: %s", self.name, text)

    def _stream(self, url: str) -> str:
        """Feed one connection until it fails or the channel stops; returns why it ended."""
        self.attempt_started = time.monotonic()
        child = self.child = self._spawn(url)
        assert child.stdin is not None
        try:
            mux = av.open(child.stdin, "w", format="nut")
            video = mux.add_stream_from_template(self.templates[0])
            audio = mux.add_stream_from_template(self.templates[1])
        except (av.FFmpegError, OSError) as exc:
            self._kill()
            return f"could not start the connection process ({type(exc).__name__})"
        offset: float | None = None
        self.last_write = time.monotonic()
        try:
            while not self.stopping.is_set():
                with self.cond:
                    while not self.queue and not self.stopping.is_set():
                        if child.poll() is not None:
                            break
                        self.cond.wait(0.5)
                    batch = list(self.queue)
                    self.queue.clear()
                if child.poll() is not None:
                    break
                for chunk in batch:
                    if offset is None:
                        if not (chunk.video and chunk.keyframe):
                            self.stats.dropped_frames += chunk.video
                            continue  # a connection starts on a keyframe
                        offset = chunk.seconds
                    if chunk.seconds < offset:
                        continue
                    mux.mux(chunk.packet(video if chunk.video else audio, offset))
                    child.stdin.flush()
                    self.last_write = time.monotonic()
                    if chunk.video:
                        self.stats.frames_sent += 1
                    self._measure(len(chunk.data))
            if self.stopping.is_set():
                mux.close()
                child.stdin.close()
                child.wait(5)
                return "stopped"
        except (OSError, ValueError, av.FFmpegError, subprocess.TimeoutExpired):
            pass  # the process went away (or would not end): its own report says why
        self._kill()
        return self._child_error or f"the connection ended (exit {child.returncode})"

    def _measure(self, size: int) -> None:
        now = time.monotonic()
        self._rate.append((now, size))
        while self._rate and self._rate[0][0] < now - 5:
            self._rate.popleft()
        span = max(1.0, now - self._rate[0][0]) if self._rate else 1.0
        self.stats.bitrate = 8 * sum(s for _, s in self._rate) / span

    def _kill(self) -> None:
        child = self.child
        if child is None:
            return
        if child.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(child.pid, signal.SIGKILL)
        try:
            child.wait(5)
        except subprocess.TimeoutExpired:
            log.error("live %s: the connection process %d did not end", self.name, child.pid)
        for stream in (child.stdin, child.stdout, child.stderr):
            try:
                if stream is not None:
                    stream.close()
            except OSError:
                pass
