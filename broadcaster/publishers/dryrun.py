"""The dry-run publisher: appends what would have been posted to posts.jsonl, and nothing else.

Everything upstream of it is identical on the night and in a rehearsal. Each post is one JSON
line written with a single append, so a crash leaves at most one torn line, which is cut off the
next time the file is opened. `find` reads the file back, so a post left in doubt by a crash is
recognised as sent instead of being written twice.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import datetime
from pathlib import Path
from typing import Any

from broadcaster.core.config import AccountConfig
from broadcaster.publishers.base import (
    Capabilities,
    Post,
    PublishedRef,
    Publisher,
    PublisherEnv,
)

log = logging.getLogger(__name__)


class DryRunPublisher(Publisher):
    platform = "dryrun"
    capabilities = Capabilities(can_find=True, media=("image/png", "image/jpeg", "video/mp4"))
    # A dry run writes what the real platform would get, so limits and cards are the platform's
    # (see capabilities_for); this publisher itself accepts anything.

    def __init__(self, account: AccountConfig, env: PublisherEnv) -> None:
        self.account = account
        self.env = env
        self.path = env.posts_path
        self.path.parent.mkdir(parents=True, exist_ok=True)
        repair_torn_tail(self.path)

    def publish(self, post: Post) -> PublishedRef:
        published_at = self.env.clock.now()
        record: dict[str, Any] = {
            "platform": post.platform,
            "account": post.account,
            "event_kind": post.event_kind,
            "event_key": post.event_key,
            "contest_id": post.contest_id,
            "text": post.text,
            "media": list(post.media),
            "title": post.title,
            "reply_to": post.reply_to,
            "idempotency_key": post.idempotency_key,
            "created_at": post.created_at.isoformat(),
            "published_at": published_at.isoformat(),
            "dry_run": True,
        }
        line = (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, self.env.file_mode)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)
        return PublishedRef(platform_id=f"dryrun:{post.idempotency_key}", published_at=published_at)

    def find(self, post: Post) -> PublishedRef | None:
        for record in read_posts(self.path):
            if record.get("idempotency_key") == post.idempotency_key:
                return PublishedRef(
                    platform_id=f"dryrun:{post.idempotency_key}",
                    published_at=datetime.fromisoformat(record["published_at"]),
                )
        return None


def repair_torn_tail(path: Path) -> None:
    """Cut a last line that a crash left without its newline (that post was never published)."""
    try:
        with path.open("rb+") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            if size == 0:
                return
            fh.seek(size - 1)
            if fh.read(1) == b"\n":
                return
            step = min(size, 1 << 20)
            fh.seek(size - step)
            tail = fh.read(step)
            cut = tail.rfind(b"\n")
            new_size = 0 if cut < 0 and step == size else size - step + cut + 1
            fh.truncate(new_size)
            log.warning("cut a torn last line from %s (%d bytes)", path, size - new_size)
    except FileNotFoundError:
        return


def read_posts(path: Path) -> list[dict[str, Any]]:
    """All complete records of a posts.jsonl file (a torn last line is skipped)."""
    out: list[dict[str, Any]] = []
    try:
        with path.open("r", encoding="utf-8") as fh:
            for line in fh:
                if not line.endswith("\n"):
                    break
                out.append(json.loads(line))
    except FileNotFoundError:
        pass
    return out
