"""Short result videos (vertical 1080 x 1920 MP4, 10 to 20 s) of a call or of the national tally,
drawn by the channel's own painter with the layout template's `focus` variable set.

They are what TikTok's video posts and YouTube Shorts take: `TikTokPublisher.publish_video` and
`YouTubePublisher.upload_short` upload them. `StoreShorts` hands them to the dispatcher's
`VideoMaker` (broadcaster/delivery/videos.py), named by a hash of what they show.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from broadcaster.core.config import Config
from broadcaster.domain.model import Snapshot
from broadcaster.domain.tally import compute_tally
from broadcaster.live.data import MAX_CALLS, Call, ChannelData, unique_calls
from broadcaster.live.encoder import AudioSource, Encoder, FileOutput
from broadcaster.live.layout import LayoutError
from broadcaster.live.picture import Compositor, Focus, Painter, layout_variables
from broadcaster.outbox.reports import recent_calls
from broadcaster.outbox.store import Store

SHORT_SIZE = (1080, 1920)
SHORT_BITRATE = 6_000_000
# Bump when the drawing or encoding code changes what a short looks like: new file names.
SHORT_DESIGN = 1


def render_short(
    config: Config,
    data: ChannelData,
    out: Path,
    *,
    contest_id: str | None = None,
    seconds: float = 12.0,
    fps: int = 30,
    size: tuple[int, int] = SHORT_SIZE,
    language: str | None = None,
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
    painter = Painter(config, size, "portrait", language=language)
    scene = painter.scene(data, Focus(contest_id=contest_id))
    compositor = Compositor(painter)
    encoder = Encoder(
        size,
        fps,
        bitrate=SHORT_BITRATE,
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


def _file_hash(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return f"unreadable:{path}"


def short_fingerprint(
    config: Config,
    data: ChannelData,
    contest_id: str | None,
    seconds: float,
    fps: int,
    language: str,
) -> str:
    """A hash of everything a short shows: the layout its template gives for this data (every
    region, word and colour; the TEST banner of test data), the clock's time, the picture's
    size, length and frame rate, the encoder's settings, the sound and the logo."""
    painter = Painter(config, SHORT_SIZE, "portrait", language=language)
    variables = layout_variables(
        config, data, orientation="portrait", language=language, focus=Focus(contest_id)
    )
    try:
        layout = painter.template.render(variables)
    except LayoutError:  # as render_short's painter does: the bundled layout
        layout = painter.fallback.render(variables)
    when = data.snapshot.generated_at.isoformat() if data.snapshot else None
    payload = {
        "design": SHORT_DESIGN,
        "layout": layout.model_dump(mode="json"),
        "clock": [when, config.election.timezone, config.templates.khmer_digits, language],
        "video": [*SHORT_SIZE, fps, seconds, SHORT_BITRATE, config.live.preset],
        "audio": _file_hash(config.path(config.live.audio)),
        "logo": _file_hash(config.path(config.cards.logo) if config.cards.logo else None),
    }
    text = json.dumps(payload, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class PreparedShort:
    """A short about to be drawn, and the hash of what it will show."""

    config: Config
    data: ChannelData
    contest_id: str | None
    seconds: float
    fps: int
    language: str
    fingerprint: str

    def write(self, out: Path) -> None:
        render_short(
            self.config,
            self.data,
            out,
            contest_id=self.contest_id,
            seconds=self.seconds,
            fps=self.fps,
            language=self.language,
        )


class StoreShorts:
    """Shorts of the results in the daemon's database: a snapshot, its tally and the latest
    calls (the ticker), at the live channel's frame rate (`[live] fps`). The dispatcher's
    `VideoMaker` calls it (a `ShortSource`, broadcaster/delivery/videos.py)."""

    def __init__(self, config: Config, store: Store) -> None:
        self.config = config
        self.store = store

    def __call__(
        self, snapshot: Snapshot, contest_id: str | None, seconds: float, language: str
    ) -> PreparedShort:
        recent = recent_calls(self.store, MAX_CALLS * 2)
        calls = unique_calls(Call(r.contest_id, r.at) for r in recent)
        data = ChannelData(
            version=1,
            snapshot=snapshot,
            tally=compute_tally(snapshot, self.config.events.majority_seats or None),
            calls=calls,
        )
        fps = self.config.live.fps
        fingerprint = short_fingerprint(self.config, data, contest_id, seconds, fps, language)
        return PreparedShort(self.config, data, contest_id, seconds, fps, language, fingerprint)
