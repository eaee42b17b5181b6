"""The channel runner: a constant frame rate, one encode per picture, a sender per destination.

Three kinds of threads, so that nothing slow sits on the frame clock:
- the frame loop (the caller's thread) paces frames by the monotonic clock, composes the frame
  due (reusing the last one when nothing changed), encodes it once and hands the packets to
  every sender of that picture;
- the data thread polls the feed for new data and the layout file for edits, draws new scenes,
  checks stalled connections and writes the channel's health to the database (for `status`,
  /healthz and /metrics);
- one thread per destination sends, and one per platform broadcast watches its health.
Destinations that want another orientation (a 9:16 picture for TikTok) get a second encode.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from broadcaster.core.clock import Clock, WallClock
from broadcaster.core.config import Config
from broadcaster.live.data import EMPTY, ChannelData
from broadcaster.live.destinations import Destination
from broadcaster.live.encoder import AudioSource, Encoder
from broadcaster.live.picture import Compositor, Painter, Scene
from broadcaster.live.sender import Sender
from broadcaster.live.youtube_live import BroadcastEnded
from broadcaster.outbox.state import State
from broadcaster.outbox.store import Store

log = logging.getLogger(__name__)

STATUS_EVERY = 2.0  # seconds between health records in the database
RESYNC_AFTER = 1.0  # seconds behind the frame clock before frames are skipped to catch up


class Feed(Protocol):
    def poll(self) -> ChannelData: ...


def picture_size(config: Config, orientation: str) -> tuple[int, int]:
    w, h = config.live.width, config.live.height
    long, short = max(w, h), min(w, h)
    return (long, short) if orientation == "landscape" else (short, long)


@dataclass
class Rendition:
    """One picture (size and orientation), encoded once for all its destinations."""

    orientation: str
    painter: Painter
    compositor: Compositor
    encoder: Encoder
    senders: list[Sender] = field(default_factory=list)
    scene: Scene | None = None


class Channel:
    def __init__(
        self,
        config: Config,
        *,
        feed: Feed,
        destinations: list[Destination],
        store: Store | None = None,
        clock: Clock | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        self.config = config
        self.feed = feed
        self.destinations = destinations
        self.store = store
        self.clock = clock or WallClock()
        self.stop = stop or threading.Event()
        live = config.live
        self.fps = live.fps
        audio_path = config.path(live.audio)
        self.renditions: dict[str, Rendition] = {}
        for dest in destinations:
            rendition = self.renditions.get(dest.orientation)
            if rendition is None:
                size = picture_size(config, dest.orientation)
                painter = Painter(config, size, dest.orientation)
                scale = (size[0] * size[1]) / (live.width * live.height)
                rendition = Rendition(
                    orientation=dest.orientation,
                    painter=painter,
                    compositor=Compositor(painter),
                    encoder=Encoder(
                        size,
                        live.fps,
                        bitrate=int(live.bitrate * scale),
                        keyframe_seconds=live.keyframe_seconds,
                        preset=live.preset,
                        audio=AudioSource(audio_path),
                        audio_bitrate=live.audio_kbps * 1000,
                    ),
                )
                self.renditions[dest.orientation] = rendition
            rendition.senders.append(
                Sender(
                    dest.name,
                    dest.target.start,
                    rendition.encoder.templates,
                    fps=live.fps,
                    queue_seconds=dest.queue_seconds,
                )
            )
        self.by_name = {s.name: s for r in self.renditions.values() for s in r.senders}
        self.data: ChannelData = EMPTY
        self.frames = 0
        self.late_frames = 0
        self.started_at = time.time()
        self.latency: float | None = None  # accepted snapshot -> first frame showing it
        self.feed_problem: str | None = None
        self.layout_problem: str | None = None
        self._shown_version = 0
        self._threads: list[threading.Thread] = []
        self.first_frame_at: dict[int, float] = {}  # data version -> monotonic time (bench)

    # -- life cycle --

    def run(self) -> None:
        """Stream until `stop` is set, then end every broadcast cleanly."""
        names = ", ".join(f"{d.name} ({d.kind}, {d.orientation})" for d in self.destinations)
        log.info(
            "live channel: %dx%d at %d fps to %s",
            self.config.live.width,
            self.config.live.height,
            self.fps,
            names or "no destination",
        )
        for rendition in self.renditions.values():
            rendition.scene = rendition.painter.scene(EMPTY)
        for rendition in self.renditions.values():
            for sender in rendition.senders:
                sender.start()
        self._spawn(self._data_loop, "live-data")
        for dest in self.destinations:
            self._spawn(lambda d=dest: self._watch(d), f"live-watch-{dest.name}")
        try:
            self._frame_loop()
        finally:
            self.stop.set()
            self._shutdown()

    def _spawn(self, target: Any, name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _shutdown(self) -> None:
        for rendition in self.renditions.values():
            try:
                tail = rendition.encoder.flush()
            except Exception:
                tail = []
            for sender in rendition.senders:
                sender.put(tail)
        for rendition in self.renditions.values():
            for sender in rendition.senders:
                sender.stop()
        for thread in self._threads:  # the watchers too: a platform client is not shared
            thread.join(5)
        for dest in self.destinations:
            try:
                dest.target.end()
                dest.target.close()
            except Exception:
                log.exception("live %s: ending the broadcast failed", dest.name)
        for rendition in self.renditions.values():
            rendition.encoder.close()
        self._write_status(running=False)
        log.info("live channel stopped after %d frames", self.frames)

    # -- frames --

    def _frame_loop(self) -> None:
        period = 1.0 / self.fps
        t0 = time.monotonic()
        index = 0
        while not self.stop.is_set():
            delay = t0 + index * period - time.monotonic()
            if delay > 0:
                if self.stop.wait(delay):
                    break
            elif -delay > RESYNC_AFTER:
                # Something starved the loop (the machine, not the data): skip ahead rather
                # than send a burst of stale frames; the stream's clock stays true.
                behind = int(-delay / period)
                self.late_frames += behind
                index += behind
                log.warning("live: %d frames behind the clock; skipped to catch up", behind)
            self.tick(index)
            index += 1

    def tick(self, index: int, now: datetime | None = None) -> None:
        """Compose, encode and hand out frame `index`."""
        now = now or self.clock.now()
        elapsed = index / self.fps
        for rendition in self.renditions.values():
            scene = rendition.scene
            assert scene is not None
            image, changed = rendition.compositor.frame(scene, now, elapsed)
            chunks = rendition.encoder.encode(image if changed else None, index)
            for sender in rendition.senders:
                sender.put(chunks)
            data = scene.data
            if data is not None and data.version > self._shown_version:
                self._shown_version = data.version
                self.first_frame_at[data.version] = time.monotonic()
                if data.accepted_at is not None:
                    self.latency = max(0.0, time.time() - data.accepted_at.timestamp())
        self.frames += 1

    # -- data, scenes and health --

    def _data_loop(self) -> None:
        last_status = 0.0
        while not self.stop.is_set():
            self.refresh()
            if time.monotonic() - last_status >= STATUS_EVERY:
                last_status = time.monotonic()
                for sender in self.by_name.values():
                    sender.check_stall()
                self._write_status(running=True)
            self.stop.wait(self.config.live.poll_interval)

    def refresh(self) -> None:
        """Look for new data or an edited layout, and draw new scenes when there is."""
        try:
            data = self.feed.poll()
        except Exception as exc:  # the database busy or gone: keep showing what we have
            log.warning("live: could not read the results (%s); showing the last ones", exc)
            return
        if data.snapshot is None and self.feed_problem is None:
            self.feed_problem = "no snapshot accepted yet (empty feed): the screen says waiting"
            log.warning("live: %s", self.feed_problem)
        elif data.snapshot is not None:
            self.feed_problem = None
        for rendition in self.renditions.values():
            painter = rendition.painter
            if data is self.data and not painter.template_changed():
                continue
            try:
                rendition.scene = painter.scene(data)
            except Exception as exc:  # LayoutError with no good layout yet, a font problem...
                log.error("live: could not draw the %s picture: %s", rendition.orientation, exc)
            problem = painter.template.problem
            self.layout_problem = str(problem) if problem else None
        self.data = data

    def _watch(self, dest: Destination) -> None:
        """Ask the platform how the broadcast is doing, every `watch_interval` seconds."""
        sender = self.by_name[dest.name]
        while sender.stats.connects == 0:  # the broadcast exists once the sender asked for it
            if self.stop.wait(1.0):
                return
        while not self.stop.is_set():
            try:
                health = dest.target.watch()
            except BroadcastEnded as exc:
                log.error("live %s: %s; the other destinations go on", dest.name, exc)
                sender.halt(str(exc))
                return
            except Exception as exc:
                log.warning("live %s: health check failed: %s", dest.name, exc)
                health = f"unknown ({exc})"
            if health is None:
                return  # this kind of destination has no health of its own to report
            sender.stats.platform_health = health
            self.stop.wait(dest.watch_interval)

    def status(self) -> dict[str, Any]:
        """The channel's health as plain data (what `status`, /healthz and /metrics show)."""
        snapshot = self.data.snapshot
        return {
            "updated_at": time.time(),
            "running": not self.stop.is_set(),
            "pid": os.getpid(),
            "size": f"{self.config.live.width}x{self.config.live.height}",
            "fps": self.fps,
            "frames": self.frames,
            "late_frames": self.late_frames,
            "as_of": snapshot.generated_at.astimezone(UTC).isoformat() if snapshot else None,
            "feed_problem": self.feed_problem,
            "layout_problem": self.layout_problem,
            "data_latency": self.latency,
            "destinations": {
                name: {
                    "kind": next(d.kind for d in self.destinations if d.name == name),
                    **sender.stats.as_dict(),
                }
                for name, sender in self.by_name.items()
            },
        }

    def _write_status(self, *, running: bool) -> None:
        if self.store is None:
            return
        report = self.status()
        report["running"] = running
        try:
            State(self.store).set_live_status(report)
        except Exception as exc:
            log.warning("live: could not record the channel's health: %s", exc)
