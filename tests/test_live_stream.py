"""The live channel end to end: real encodes sent over RTMP to local listeners (FFmpeg's own RTMP
server mode, in processes of their own), decoded and checked; a destination killed mid-stream;
the `broadcaster live` command, its dry run and rehearsal; the channel beside the daemon."""

from __future__ import annotations

import itertools
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import pytest
from PIL import Image, ImageChops

from broadcaster.core.paths import DEMO_SNAPSHOTS
from broadcaster.live.channel import Channel
from broadcaster.live.data import ChannelData, replay_steps
from broadcaster.live.destinations import Destination, StaticTarget
from broadcaster.live.encoder import Encoder
from broadcaster.runtime.configuration import load_config
from tests.conftest import ROOT, broadcaster_cmd, wait_for, write_config
from tests.local_servers import free_port

LISTENER = ROOT / "tests" / "live_listener.py"


@dataclass
class Listener:
    url: str
    out: Path
    log: Path
    process: subprocess.Popen[bytes]

    def lines(self, kind: str) -> list[tuple[float, float]]:
        if not self.log.exists():
            return []
        rows = [line.split() for line in self.log.read_text().splitlines()]
        return [(float(r[1]), float(r[2])) for r in rows if r[0] == kind]

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)


@pytest.fixture
def listeners(tmp_path: Path) -> Iterator[object]:
    started: list[Listener] = []

    def start(name: str) -> Listener:
        url = f"rtmp://127.0.0.1:{free_port()}/live/key-{name}"
        out, log = tmp_path / f"{name}.flv", tmp_path / f"{name}.log"
        process = subprocess.Popen(
            [sys.executable, str(LISTENER), url, str(out), str(log)],
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        listener = Listener(url, out, log, process)
        started.append(listener)
        return listener

    try:
        yield start
    finally:
        for listener in started:
            listener.kill()


class SwitchFeed:
    def __init__(self, data: ChannelData) -> None:
        self.data = data

    def poll(self) -> ChannelData:
        return self.data


@pytest.fixture(scope="module")
def steps():
    return replay_steps(load_config(None), sorted(DEMO_SNAPSHOTS.glob("*.json")))


def changed_pixels(a, b, box) -> int:
    """Pixels that differ clearly (more than compression noise) between two decoded frames."""
    diff = ImageChops.difference(a.crop(box), b.crop(box)).convert("L")
    return sum(diff.point(lambda v: 255 if v > 48 else 0).histogram()[255:])


def channel_for(destinations: list[Destination], feed: SwitchFeed, **live) -> Channel:
    config = load_config(None)
    config = config.with_overrides(live=config.live.model_copy(update=live))
    return Channel(config, feed=feed, destinations=destinations)


def run(channel: Channel) -> threading.Thread:
    thread = threading.Thread(target=channel.run, daemon=True)
    thread.start()
    return thread


def rtmp(name: str, url: str, queue_seconds: float = 3.0) -> Destination:
    return Destination(name, "rtmp", "landscape", StaticTarget(lambda: url), queue_seconds)


@pytest.mark.alone  # real time: frames and keyframes on the clock
def test_stream_at_720p_reaches_the_ingest_with_picture_sound_and_keyframes(listeners, steps):
    ingest = listeners("main")
    feed = SwitchFeed(steps[8].data)
    channel = channel_for([rtmp("main", ingest.url)], feed)
    thread = run(channel)
    try:
        wait_for(lambda: len(ingest.lines("video")) > 30, timeout=60)
        time.sleep(1.5)
        feed.data = steps[12].data  # new seats declared: the tally must change on screen
        wait_for(lambda: channel._shown_version == steps[12].data.version, timeout=10)
        time.sleep(1.5)
    finally:
        channel.stop.set()
        thread.join(30)
    wait_for(lambda: "end" in ingest.log.read_text(), timeout=20)
    assert channel.status()["destinations"]["main"]["dropped_frames"] == 0

    with av.open(str(ingest.out)) as received:
        video = received.streams.video[0]
        assert (video.codec_context.width, video.codec_context.height) == (1280, 720)
        assert video.average_rate == 30
        assert [s.codec_context.name for s in received.streams.audio] == ["aac"]
        keyframes = [
            float(p.pts * p.time_base) for p in received.demux(video) if p.is_keyframe and p.pts
        ]
    with av.open(str(ingest.out)) as received:
        frames = [f for f in received.decode(video=0)]
    times = [0.0, *keyframes, frames[-1].time]
    assert max(b - a for a, b in itertools.pairwise(times)) <= 2.05
    assert len(frames) >= 90
    first, steady, last = (frames[i].to_image() for i in (15, 16, -1))
    tally = (40, 260, 760, 540)  # the seat tally's bars, below its heading
    assert changed_pixels(first, last, tally) > 500  # new seats: bars moved
    assert changed_pixels(first, steady, tally) < 20  # next frame: only coding noise


class TcpServer:
    """A server that accepts connections and then either hangs up at once (an ingest refusing
    the stream key) or never answers (a network gone quiet)."""

    def __init__(self, *, answer: bool) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.answer = answer
        self.held: list[socket.socket] = []
        self.url = f"rtmp://127.0.0.1:{self.sock.getsockname()[1]}/live/key"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            if self.answer:
                conn.recv(2000)
                conn.close()
            else:
                self.held.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.held:
            conn.close()


def test_a_destination_killed_mid_stream_leaves_the_others_streaming(listeners, steps):
    doomed, survivor = listeners("doomed"), listeners("survivor")
    closed = f"rtmp://127.0.0.1:{free_port()}/live/nobody-listens"
    refusing, silent = TcpServer(answer=True), TcpServer(answer=False)
    channel = channel_for(
        [
            rtmp("doomed", doomed.url),
            rtmp("survivor", survivor.url),
            rtmp("nowhere", closed),
            rtmp("refusing", refusing.url),
            rtmp("silent", silent.url),
        ],
        SwitchFeed(steps[10].data),
        width=320,
        height=180,
        fps=15,
    )
    channel.by_name["silent"].stall_seconds = 3.0
    thread = run(channel)
    try:
        wait_for(lambda: len(survivor.lines("video")) > 15 and len(doomed.lines("video")) > 15)
        time.sleep(1.0)
        killed_at = time.time()
        doomed.kill()
        wait_for(lambda: channel.status()["destinations"]["doomed"]["state"] != "live", 15)
        time.sleep(2.5)
        wait_for(lambda: "no answer" in channel.status()["destinations"]["silent"]["reason"], 15)
        status = channel.status()["destinations"]
    finally:
        channel.stop.set()
        thread.join(30)
        refusing.close()
        silent.close()
    assert status["survivor"]["state"] == "live"
    assert status["doomed"]["state"] in ("reconnecting", "connecting")
    assert "connection" in status["doomed"]["reason"]
    assert status["nowhere"]["state"] == "reconnecting"
    assert "connection refused" in status["nowhere"]["reason"]
    assert "closed the connection while publishing" in status["refusing"]["reason"]
    assert "stream key refused" in status["refusing"]["reason"]
    assert status["silent"]["state"] in ("reconnecting", "connecting")
    arrivals = survivor.lines("video")
    after = [t for t, _ in arrivals if t > killed_at - 1]
    assert after, "the survivor kept receiving after the kill"
    assert after[-1] > killed_at + 2
    wall = [t for t, _ in arrivals]
    stream = [s for _, s in arrivals]
    assert max(b - a for a, b in itertools.pairwise(wall)) <= 1.0
    assert max(b - a for a, b in itertools.pairwise(stream)) <= 1.0


def live_config(tmp_path: Path, source: str, extra: str = "") -> Path:
    return write_config(
        tmp_path / "night.toml",
        source=source,
        extra=f"""
[live]
width = 320
height = 180
fps = 10
dry_run_file = "live.ts"
{extra}
""",
    )


def live_state(db: Path) -> dict | None:
    import json

    if not db.exists():
        return None
    try:
        with sqlite3.connect(db) as conn:
            row = conn.execute("select value from kv where key = 'live:status'").fetchone()
    except sqlite3.OperationalError:
        return None  # the process is still creating its tables
    return json.loads(row[0]) if row else None


def test_live_dry_run_names_the_empty_feed_in_status_and_stops_on_sigterm(tmp_path, cli):
    config = live_config(tmp_path, str(tmp_path / "no-snapshots-yet"))
    process = subprocess.Popen(
        [*broadcaster_cmd(), "--log-format", "json", "live", "--config", str(config), "--dry-run"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        wait_for(lambda: (live_state(tmp_path / "state.db") or {}).get("frames", 0) > 10, 60)
        status = cli("status", "--config", str(config), cwd=tmp_path)
        assert "live channel: running" in status.stdout
        assert "no snapshot accepted yet (empty feed)" in status.stdout
        assert "dry-run (file): live" in status.stdout
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 0, stderr.decode()
    assert b"empty feed" in stderr
    assert live_state(tmp_path / "state.db")["running"] is False
    with av.open(str(tmp_path / "live.ts")) as written:
        assert {s.type for s in written.streams} == {"video", "audio"}
        assert written.streams.video[0].codec_context.width == 320


def test_rehearse_renders_a_recorded_night_to_mp4_and_hls(tmp_path, cli):
    result = cli(
        "live", "--rehearse", str(DEMO_SNAPSHOTS), "--out", str(tmp_path / "night.mp4"),
        "--speed", "9000", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "15 snapshots" in result.stdout
    with av.open(str(tmp_path / "night.mp4")) as night:
        video = night.streams.video[0]
        assert (video.codec_context.width, video.codec_context.height) == (1280, 720)
        assert night.streams.audio
        assert 7 <= night.duration / 1e6 <= 9  # 7.5 h of feed at 9000x, and 5 s after
    small = live_config(tmp_path, str(DEMO_SNAPSHOTS))  # 320 x 180 at 10 fps: quicker
    hls = cli(
        "live", "--rehearse", str(DEMO_SNAPSHOTS), "--hls", str(tmp_path / "hls"),
        "--speed", "9000", "--config", str(small), cwd=tmp_path,
    )  # fmt: skip
    assert hls.returncode == 0, hls.stderr
    assert (tmp_path / "hls" / "index.m3u8").read_text().count("#EXTINF") >= 2
    assert list((tmp_path / "hls").glob("segment*.ts"))


def test_live_enabled_starts_the_channel_beside_the_daemon(tmp_path):
    config = live_config(tmp_path, str(DEMO_SNAPSHOTS), "enabled = true")
    process = subprocess.Popen(
        [*broadcaster_cmd(), "run", "--config", str(config), "--dry-run"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        # The daemon accepts the demo night's snapshots; the channel shows them.
        wait_for(lambda: (live_state(tmp_path / "state.db") or {}).get("as_of"), timeout=90)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 0, stderr.decode()
    report = live_state(tmp_path / "state.db")
    assert report["running"] is False
    assert report["destinations"]["dry-run"]["frames_sent"] > 0
    assert (tmp_path / "live.ts").stat().st_size > 0


def test_a_full_queue_drops_to_the_next_keyframe_and_counts_frames():
    from broadcaster.live.encoder import Chunk
    from broadcaster.live.sender import Sender

    def chunk(keyframe: bool) -> Chunk:
        return Chunk(True, b"x", 0, 0, 1, Fraction(1, 10), keyframe)

    sender = Sender("slow", lambda: "unused", (None, None), fps=10, queue_seconds=0.1)
    sender.put([chunk(True)] + [chunk(False)] * (sender.limit - 1))
    assert len(sender.queue) == sender.limit
    sender.put([chunk(False), chunk(True)])  # full: even a keyframe waits for room
    assert sender.stats.dropped_frames == 2
    sender.queue.clear()  # the destination caught up
    sender.put([chunk(False), chunk(False)])  # still no keyframe: a picture would break
    assert sender.stats.dropped_frames == 4
    assert len(sender.queue) == 0
    sender.put([chunk(True), chunk(False)])
    assert len(sender.queue) == 2
    assert sender.stats.dropped_frames == 4


def test_keyframes_stay_on_the_clock_when_frames_are_skipped():
    """Under load the channel skips frame indexes to catch up with the clock; x264 counts its
    keyframe interval in frames encoded, so without a forced keyframe the gap in time grows
    (3.27 s seen under load for a 2 s interval)."""
    fps = 10
    encoder = Encoder((64, 36), fps, bitrate=100_000, keyframe_seconds=2.0)
    picture = Image.new("RGB", (64, 36), (20, 40, 60))
    # Every other index skipped: 60 frames encoded over 12 s of stream.
    chunks = [c for i in range(0, 120, 2) for c in encoder.encode(picture, i)]
    chunks += encoder.flush()
    keys = sorted(c.pts / fps for c in chunks if c.video and c.keyframe)
    gaps = [b - a for a, b in itertools.pairwise([0.0, *keys])]
    assert keys, "no keyframe at all"
    assert max(gaps) <= 2.0, f"keyframes {keys} are more than 2 s apart"
