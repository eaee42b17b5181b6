"""One encode for every output: H.264 (constant bitrate, a keyframe every N seconds) and AAC.

PyAV opens the encoders inside a container that is never written to (a NUT header in memory):
that gives them the global headers every muxer needs (FLV over RTMP, MP4, HLS) and gives each
output a template stream to copy. Encoded packets leave as `Chunk`s (plain bytes and times), so
any number of senders can mux the same packet in their own threads without sharing PyAV objects.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
from av.video.frame import PictureType
from PIL import Image

log = logging.getLogger(__name__)

AUDIO_RATE = 48_000
AUDIO_FRAME = 1024  # samples per AAC frame


@dataclass(frozen=True, slots=True)
class Chunk:
    """One encoded packet, independent of any container."""

    video: bool
    data: bytes
    pts: int
    dts: int
    duration: int
    time_base: Fraction
    keyframe: bool

    @property
    def seconds(self) -> float:
        return float(self.dts * self.time_base)

    def packet(self, stream: Any, offset: float = 0.0) -> av.Packet:
        """A PyAV packet for `stream`, its times moved back by `offset` seconds."""
        shift = round(offset / self.time_base)
        packet = av.Packet(self.data)
        packet.pts = self.pts - shift
        packet.dts = self.dts - shift
        packet.duration = self.duration
        packet.time_base = self.time_base
        packet.is_keyframe = self.keyframe
        packet.stream = stream
        return packet


class AudioSource:
    """Silence, or a sound file played in a loop, as 1024-sample stereo frames at 48 kHz."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._container: Any = None
        self._frames: Any = None
        self._resampler: Any = None
        self._silence = av.AudioFrame(format="fltp", layout="stereo", samples=AUDIO_FRAME)
        self._silence.sample_rate = AUDIO_RATE
        for plane in self._silence.planes:
            plane.update(bytes(plane.buffer_size))
        if path is not None:
            self._open()  # a missing or unreadable file is a start-up error, not a silent night

    def _open(self) -> None:
        assert self.path is not None
        if self._container is not None:
            self._container.close()
        try:
            self._container = av.open(str(self.path))
            stream = self._container.streams.audio[0]
        except (av.FFmpegError, OSError, IndexError) as exc:
            raise ValueError(f"[live] audio {self.path}: unreadable sound file: {exc}") from None
        self._resampler = av.AudioResampler(
            format="fltp", layout="stereo", rate=AUDIO_RATE, frame_size=AUDIO_FRAME
        )
        self._frames = self._decode(stream)

    def _decode(self, stream: Any) -> Any:
        for frame in self._container.decode(stream):
            frame.pts = None
            yield from self._resampler.resample(frame)
        yield from self._resampler.resample(None)

    def next_frame(self) -> av.AudioFrame:
        if self.path is None:
            return self._silence
        for _ in range(2):
            for frame in self._frames:
                if frame.samples == AUDIO_FRAME:
                    return frame
            self._open()  # the end of the file: start it again
        return self._silence

    def close(self) -> None:
        if self._container is not None:
            self._container.close()


def x264_options(fps: int, bitrate: int, keyframe_seconds: float, preset: str) -> dict[str, str]:
    """Constant bitrate with a filler-padded HRD, a fixed GOP, no B-frames and no look-ahead
    (what live ingests ask for, and the least delay between a snapshot and the picture)."""
    gop = max(1, round(fps * keyframe_seconds))
    kbps = bitrate // 1000
    return {
        "preset": preset,
        "tune": "zerolatency",
        "x264-params": (
            f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes=0:nal-hrd=cbr:force-cfr=1:"
            f"bitrate={kbps}:vbv-maxrate={kbps}:vbv-bufsize={kbps * 2}"
        ),
    }


class Encoder:
    """Encodes pictures and audio for every output of one picture size."""

    def __init__(
        self,
        size: tuple[int, int],
        fps: int,
        *,
        bitrate: int = 3_000_000,
        keyframe_seconds: float = 2.0,
        preset: str = "veryfast",
        audio: AudioSource | None = None,
        audio_bitrate: int = 128_000,
        threads: int = 0,
    ) -> None:
        self.size = size
        self.fps = fps
        self.audio_source = audio or AudioSource()
        self._holder = av.open(io.BytesIO(), "w", format="nut")
        video = self._holder.add_stream(
            "libx264", rate=fps, options=x264_options(fps, bitrate, keyframe_seconds, preset)
        )
        video.width, video.height = size
        video.pix_fmt = "yuv420p"
        video.bit_rate = bitrate
        video.codec_context.thread_count = threads
        audio_stream = self._holder.add_stream("aac", rate=AUDIO_RATE)
        audio_stream.layout = "stereo"
        audio_stream.bit_rate = audio_bitrate
        self._holder.start_encoding()  # opens both encoders; their headers land in codecpar
        self.video = video
        self.audio = audio_stream
        self.frame_index = -1
        # x264 counts its keyframe interval in frames encoded; when the channel skips frames
        # to catch up with the clock, that count stretches in time. A keyframe is forced once
        # `_key_every` frame indexes (the interval in time) have passed since the last one.
        self._key_every = max(1, round(fps * keyframe_seconds))
        self._last_key: int | None = None
        self._last: av.VideoFrame | None = None
        self._audio_pts = 0
        self.video_tb = Fraction(1, fps)

    @property
    def templates(self) -> tuple[Any, Any]:
        """The streams outputs copy their codec parameters from."""
        return self.video, self.audio

    def encode(self, image: Image.Image | None, index: int) -> list[Chunk]:
        """Encode frame `index` (1/fps units): `image`, or the last picture again when None,
        and the audio that goes with it. Indexes must grow; a jump leaves a gap."""
        if image is not None or self._last is None:
            if image is None:
                image = Image.new("RGB", self.size)
            self._last = av.VideoFrame.from_image(image).reformat(format="yuv420p")
        frame = self._last
        frame.pts = index
        frame.time_base = self.video_tb
        due = self._last_key is None or index - self._last_key >= self._key_every
        frame.pict_type = PictureType.I if due else PictureType.NONE
        if due:
            self._last_key = index
        self.frame_index = index
        chunks = [self._chunk(p, True) for p in self.video.encode(frame)]
        # Audio up to the end of this video frame, in whole AAC frames.
        until = round((index + 1) * AUDIO_RATE / self.fps)
        if self._audio_pts < until - AUDIO_RATE:  # video jumped ahead: so does the audio
            self._audio_pts = until - AUDIO_FRAME
        while self._audio_pts < until:
            samples = self.audio_source.next_frame()
            samples.pts = self._audio_pts
            samples.time_base = Fraction(1, AUDIO_RATE)
            self._audio_pts += AUDIO_FRAME
            chunks.extend(self._chunk(p, False) for p in self.audio.encode(samples))
        return chunks

    def flush(self) -> list[Chunk]:
        chunks = [self._chunk(p, True) for p in self.video.encode(None)]
        chunks += [self._chunk(p, False) for p in self.audio.encode(None)]
        return chunks

    @staticmethod
    def _chunk(packet: av.Packet, video: bool) -> Chunk:
        # An encoder's packet has at least one of the two stamps.
        pts = packet.pts if packet.pts is not None else packet.dts
        dts = packet.dts if packet.dts is not None else packet.pts
        assert pts is not None
        assert dts is not None
        return Chunk(
            video=video,
            data=bytes(packet),
            pts=pts,
            dts=dts,
            duration=packet.duration or 0,
            time_base=packet.time_base,
            keyframe=packet.is_keyframe,
        )

    def close(self) -> None:
        try:
            self._holder.close()
        except av.FFmpegError:
            log.debug("closing the encoder holder failed", exc_info=True)
        self.audio_source.close()


def output_format(target: str) -> tuple[str, dict[str, str]]:
    """The muxer and its options for an ingest URL or a file name."""
    lower = target.lower()
    if lower.startswith(("rtmp://", "rtmps://")):
        return "flv", {"flvflags": "no_duration_filesize"}
    if lower.endswith(".m3u8"):
        return "hls", {"hls_time": "2", "hls_list_size": "0", "hls_flags": "independent_segments"}
    if lower.endswith(".flv"):
        return "flv", {}
    if lower.endswith(".ts"):
        return "mpegts", {}
    if lower.endswith(".mkv"):
        return "matroska", {}
    # An MP4 that stays readable if the process is killed before it closes the file.
    return "mp4", {"movflags": "+frag_keyframe+empty_moov+default_base_moof"}


class FileOutput:
    """Muxes chunks into a local file (or an HLS folder's playlist) in this process."""

    def __init__(self, target: Path, templates: tuple[Any, Any]) -> None:
        fmt, options = output_format(str(target))
        if fmt == "mp4" and target.suffix.lower() == ".mp4":
            options = {"movflags": "+faststart"}  # a finished file: the index up front
        target.parent.mkdir(parents=True, exist_ok=True)
        if fmt == "hls":
            options = {**options, "hls_segment_filename": str(target.parent / "segment%05d.ts")}
        self.container = av.open(str(target), "w", format=fmt, container_options=options)
        self.video = self.container.add_stream_from_template(templates[0])
        self.audio = self.container.add_stream_from_template(templates[1])

    def write(self, chunks: list[Chunk]) -> None:
        for chunk in chunks:
            if chunk.dts is None or chunk.dts < 0:
                continue  # the audio encoder's priming packets, before time zero
            self.container.mux(chunk.packet(self.video if chunk.video else self.audio))

    def close(self) -> None:
        self.container.close()
