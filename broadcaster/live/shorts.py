"""Short result videos (vertical 1080 x 1920 MP4, 10 to 20 s) of a call or of the national tally,
drawn by the channel's own painter with the layout template's `focus` variable set.

They are what TikTok's video posts and YouTube Shorts take: `TikTokPublisher.publish_video` and
`YouTubePublisher.upload_short` upload them.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from broadcaster.core.config import Config
from broadcaster.live.data import ChannelData
from broadcaster.live.encoder import AudioSource, Encoder, FileOutput
from broadcaster.live.picture import Compositor, Focus, Painter

SHORT_SIZE = (1080, 1920)


def render_short(
    config: Config,
    data: ChannelData,
    out: Path,
    *,
    contest_id: str | None = None,
    seconds: float = 12.0,
    fps: int = 30,
    size: tuple[int, int] = SHORT_SIZE,
) -> Path:
    """Write a vertical video of one contest (`contest_id`) or of the tally into `out` (MP4).
    The picture holds still (the clock shows the data's own time), so it encodes quickly."""
    if not 10 <= seconds <= 20 and size == SHORT_SIZE:
        raise ValueError(f"a short is 10 to 20 seconds long, not {seconds:g}")
    if data.snapshot is None:
        raise ValueError("no results to make a short of")
    if contest_id is not None:
        contest = data.snapshot.contest(contest_id)
        if contest is None:
            raise ValueError(f"no contest {contest_id!r} in this snapshot")
    painter = Painter(config, size, "portrait")
    scene = painter.scene(data, Focus(contest_id=contest_id))
    compositor = Compositor(painter)
    encoder = Encoder(
        size,
        fps,
        bitrate=6_000_000,
        keyframe_seconds=2.0,
        preset=config.live.preset,
        audio=AudioSource(config.path(config.live.audio)),
    )
    when: datetime = data.snapshot.generated_at
    tmp = out.with_name(out.stem + ".part" + out.suffix)
    output = FileOutput(tmp, encoder.templates)
    try:
        for index in range(round(seconds * fps)):
            image, changed = compositor.frame(scene, when, index / fps)
            output.write(encoder.encode(image if changed else None, index))
        output.write(encoder.flush())
    finally:
        output.close()
        encoder.close()
    tmp.replace(out)  # never leave a half-written video where a publisher would find it
    return out
