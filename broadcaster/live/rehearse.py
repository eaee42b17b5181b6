"""`broadcaster live --rehearse REPLAY`: a recorded night rendered into a video file, no account.

The picture follows the feed's own clock: second `t` of the video shows what the channel would
have shown at `first snapshot + t * speed` of feed time (the election's clock on screen runs at
that speed too), with the same layout, scenes and encoder as the night. Nothing is paced: the
file is written as fast as the machine encodes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from broadcaster.core.config import Config
from broadcaster.live.channel import picture_size
from broadcaster.live.data import replay_steps
from broadcaster.live.encoder import AudioSource, Encoder, FileOutput
from broadcaster.live.picture import Compositor, Painter

log = logging.getLogger(__name__)


@dataclass
class RehearsalVideo:
    path: Path
    snapshots: int
    seconds: float  # of video
    speed: float
    frames: int
    redraws: int


def render_replay(
    config: Config,
    files: Sequence[Path],
    out: Path,
    *,
    speed: float | None = None,
    seconds: float | None = None,
    tail: float = 5.0,
    size: tuple[int, int] | None = None,
    fps: int | None = None,
    on_frame: Callable[[int, int], None] | None = None,
) -> RehearsalVideo:
    """Render the snapshots `files` into `out` (an .mp4, or an .m3u8 playlist for HLS).

    `speed`: feed seconds per video second; or `seconds`: the whole night fitted into about
    that many seconds of video. `tail` seconds of video follow the last snapshot."""
    steps = replay_steps(config, files)
    if not steps:
        raise ValueError("no readable snapshot in the replay")
    live = config.live
    orientation = live.orientation
    size = size or picture_size(config, orientation)
    fps = fps or live.fps
    night = (steps[-1].at - steps[0].at).total_seconds()
    if speed is None:
        speed = max(1.0, night / seconds) if seconds else 60.0
    duration = night / speed + tail
    total = max(1, round(duration * fps))
    painter = Painter(config, size, orientation)
    compositor = Compositor(painter)
    scale = (size[0] * size[1]) / (live.width * live.height)
    encoder = Encoder(
        size,
        fps,
        bitrate=int(live.bitrate * scale),
        keyframe_seconds=live.keyframe_seconds,
        preset=live.preset,
        audio=AudioSource(config.path(live.audio)),
        audio_bitrate=live.audio_kbps * 1000,
    )
    output = FileOutput(out, encoder.templates)
    step = -1
    scene = None
    try:
        for index in range(total):
            elapsed = index / fps
            feed_time = steps[0].at + timedelta(seconds=elapsed * speed)
            while step + 1 < len(steps) and steps[step + 1].at <= feed_time:
                step += 1
                scene = None
            if scene is None:
                scene = painter.scene(steps[max(step, 0)].data)
            image, changed = compositor.frame(scene, feed_time, elapsed)
            output.write(encoder.encode(image if changed else None, index))
            if on_frame is not None:
                on_frame(index + 1, total)
        output.write(encoder.flush())
    finally:
        output.close()
        encoder.close()
    return RehearsalVideo(
        path=out,
        snapshots=len(steps),
        seconds=total / fps,
        speed=speed,
        frames=total,
        redraws=compositor.redraws,
    )
