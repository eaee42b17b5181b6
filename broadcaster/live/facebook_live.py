"""A Facebook Page live video for the channel, through the Graph API (facebook-sdk).

`start()` creates the live video (`POST /{page-id}/live_videos`, status LIVE_NOW) and returns
its `secure_stream_url` (RTMPS); `watch()` reads its status and the ingest's health; `end()`
ends it (`POST /{live-video-id}` with `end_live_video=true`). The Page token is the one the
Facebook account already uses for posts. The live video's id is kept in the database, so a
restart streams to the same live video while Facebook still has it live.
"""

from __future__ import annotations

import logging
from typing import Any

from broadcaster.core.config import AccountConfig, Config, LiveDestinationConfig
from broadcaster.core.logs import register_secret
from broadcaster.live.sender import TargetError
from broadcaster.live.youtube_live import BroadcastEnded, target_error
from broadcaster.publishers.base import PublisherEnv, PublishError
from broadcaster.publishers.facebook import FacebookPublisher

log = logging.getLogger(__name__)

ENDED = {"LIVE_STOPPED", "VOD", "PROCESSING", "UNPUBLISHED_ENDED"}
REUSABLE = {"LIVE", "UNPUBLISHED", "SCHEDULED_LIVE", "SCHEDULED_UNPUBLISHED", "PREVIEW"}


class FacebookLive:
    def __init__(
        self,
        config: Config,
        dest: LiveDestinationConfig,
        account: AccountConfig,
        env: PublisherEnv,
    ) -> None:
        self.dest = dest
        self.env = env
        self.pub = FacebookPublisher(account, env)
        self.graph = self.pub.graph
        self.page = self.pub.settings.page_id
        self.key = f"live:facebook:{dest.name}"
        self.live_id: str | None = None
        self.url: str | None = None
        self.title = dest.title or config.election.name or "Election results"

    def _request(self, action: str, path: str, **kwargs: Any) -> dict[str, Any]:
        try:
            result = self.pub._call(
                action, self.graph.request, f"{self.graph.version}/{path}", **kwargs
            )
        except PublishError as exc:
            raise target_error(exc, f"facebook {action}") from None
        return result if isinstance(result, dict) else {}

    def start(self) -> str:
        if self.url is not None:
            return self.url
        stored = (self.env.state.get_state(self.key) or {}).get("live_video_id")
        video: dict[str, Any] = {}
        if stored:
            video = self._request(
                "find the live video", str(stored), args={"fields": "id,status,secure_stream_url"}
            )
            if video.get("status") not in REUSABLE:
                video = {}
        if not video:
            video = self._request(
                "create the live video",
                f"{self.page}/live_videos",
                post_args={
                    "status": "LIVE_NOW",
                    "title": self.title[:255],
                    "description": self.title,
                },
            )
        self.live_id = str(video.get("id") or "")
        url = video.get("secure_stream_url") or video.get("stream_url")
        if not self.live_id or not url:
            raise TargetError("facebook: the live video came without a stream address")
        self.env.state.put_state(self.key, {"live_video_id": self.live_id})
        register_secret(url.rsplit("/", 1)[-1])  # the stream key at the end of the address
        self.url = str(url)
        log.info("facebook %s: live video %s", self.dest.name, self.live_id)
        return self.url

    def watch(self) -> str:
        if self.live_id is None:
            return "not started"
        video = self._request(
            "read the live video", self.live_id, args={"fields": "id,status,ingest_streams"}
        )
        status = str(video.get("status", "unknown"))
        if status in ENDED:
            raise BroadcastEnded(f"facebook ended the live video ({status})")
        health = ""
        for ingest in (video.get("ingest_streams") or {}).get("data", []) or []:
            stream_health = ingest.get("stream_health") or {}
            if stream_health:
                rate = stream_health.get("video_bitrate")
                health = f", ingest {rate} bit/s" if rate is not None else ""
                break
        return f"{status}{health}"

    def end(self) -> None:
        if self.live_id is None:
            return
        try:
            self._request("end the live video", self.live_id, post_args={"end_live_video": "true"})
        except Exception as exc:
            log.warning("facebook %s: could not end the live video: %s", self.dest.name, exc)
            return
        self.env.state.put_state(self.key, {})
        log.info("facebook %s: live video %s ended", self.dest.name, self.live_id)

    def close(self) -> None:
        self.pub.close()
