"""Short result videos for outbox rows: an account with `video = true` (TikTok, YouTube) posts
the events it chose (`video_events`) with a 10 to 20 s vertical video instead of its card or
chat message, where its budget allows.

The video is drawn when the post is about to go, like a card, from the latest accepted
snapshot, and only while that snapshot still shows what the post says: the event's contest as
it stood (or, for a tally, the same tally). Otherwise, and when the budget cannot carry the
video's cost or drawing fails, the post goes as the ordinary post (the card, held where the
platform needs media and the card fails too). Files are named by a hash of everything drawn, so
one file serves every account that shows the same picture and is never reused for another one;
a rehearsal's video (TEST banner) is never a real post's.

The drawing itself is the live channel's (broadcaster/live/shorts.py), which sits above this
stage: the command that starts the dispatcher hands it in as a `ShortSource`.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from broadcaster.content.context import event_context
from broadcaster.core.clock import Clock
from broadcaster.core.config import AccountConfig, Config
from broadcaster.delivery.budgets import account_budget
from broadcaster.domain.model import Snapshot
from broadcaster.domain.tally import compute_tally
from broadcaster.ingest.differ import FINAL_TALLY
from broadcaster.outbox.store import Store, StoredEvent
from broadcaster.publishers import capabilities_for, video_options
from broadcaster.publishers.base import VideoOptions

log = logging.getLogger(__name__)


class Short(Protocol):
    """One short video, ready to be drawn."""

    @property
    def fingerprint(self) -> str:
        """A hash of everything the video shows (data, layout, size, length, sound, logo)."""
        ...

    def write(self, out: Path) -> None:
        """Draw and encode the video into `out` (an MP4)."""
        ...


# (snapshot, the contest in focus or None for the national tally, seconds, language) -> short
ShortSource = Callable[[Snapshot, str | None, float, str], Short]


def wants_videos(config: Config) -> bool:
    """Whether any account posts short videos (else nothing need load the video encoder)."""
    return any(video_options(a) is not None for a in config.accounts)


def chosen(row: Any, options: VideoOptions) -> bool:
    """Whether the post's event is one the account posts as a video."""
    if row.event_kind in options.video_events:
        return True
    data = getattr(row, "event_data", None) or {}
    final = row.event_key == FINAL_TALLY or bool(data.get("final"))
    return final and "final_tally" in options.video_events


def _same(a: Any, b: Any) -> bool:
    """Equal as stored: both through JSON, as the event's context was."""
    return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)


class VideoMaker:
    def __init__(
        self, config: Config, store: Store, folder: Path, shorts: ShortSource, clock: Clock
    ) -> None:
        self.config = config
        self.store = store
        self.folder = folder
        self.shorts = shorts
        self.clock = clock

    def media_for(self, row: Any, account: AccountConfig) -> tuple[str, ...]:
        """The post's short video, drawn if needed and recorded as its media; () when the post
        goes as its ordinary post (see the module's docstring for when)."""
        options = video_options(account)
        if options is None or not chosen(row, options):
            return ()
        spec = capabilities_for(account.platform).video
        assert spec is not None  # video_options says the platform takes videos
        if not spec.text.fits(row.text or ""):
            log.info("post %d goes without a video: its text is over the video's limit", row.id)
            return ()
        if not self.affordable(row, account, spec.cost):
            log.info("post %d goes without a video: the budget cannot carry one now", row.id)
            return ()
        try:
            path = self._video(row, account, options)
        except Exception as exc:  # a video must never take the dispatcher down
            log.warning("post %d goes without its video: %s", row.id, exc)
            return ()
        if path is None:
            return ()
        self.store.set_media(row.id, [str(path)])
        return (str(path),)

    def affordable(self, row: Any, account: AccountConfig, cost: int) -> bool:
        """A video costing `cost` posts fits when, after it, every post already waiting for
        the account still has its slot in the budget's longest window."""
        if cost <= 1:
            return True
        now = self.clock.now()
        budget = account_budget(self.store, account, now)
        waiting = len(self.store.pending_for(account.name, now, dry_run=bool(row.dry_run)))
        return budget.remaining - cost >= max(0, waiting - 1)

    def _video(self, row: Any, account: AccountConfig, options: VideoOptions) -> Path | None:
        latest = self.store.last_accepted()
        if latest is None:
            return None
        snapshot = latest[0]
        stored = self.store.event_with_context(row.event_id)
        if not self.still_shows(stored, snapshot):
            log.info("post %d goes without a video: its results have changed since", row.id)
            return None
        language = self.config.language_of(account)
        short = self.shorts(snapshot, stored.event.contest_id, options.video_seconds, language)
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"short-{short.fingerprint[:40]}.mp4"
        if path.exists():
            return path
        tmp = path.with_name(f"{path.stem}.{os.getpid()}{path.suffix}")
        short.write(tmp)
        tmp.replace(path)  # never leave a half-written video where a publisher would find it
        return path

    def still_shows(self, stored: StoredEvent, snapshot: Snapshot) -> bool:
        """Whether `snapshot` shows what the event's post says: its contest as it stood, or
        for an election-wide event the same national tally."""
        if stored.event.contest_id is not None:
            return _same(event_context(stored.event, snapshot), stored.context)
        majority = self.config.events.majority_seats or None
        return _same(compute_tally(snapshot, majority).to_dict(), stored.shared.get("tally"))
