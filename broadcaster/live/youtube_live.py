"""A YouTube Live broadcast for the channel, through google-api-python-client.

`start()` finds (or creates) a reusable `liveStream` and a `liveBroadcast` with
`enableAutoStart`/`enableAutoStop`, binds them and returns the ingest address (YouTube starts
the broadcast when the stream arrives); `watch()` reads the stream's `streamStatus` and
`healthStatus` and the broadcast's life cycle; `end()` completes the broadcast. Every call goes
through the YouTube adapter's credentials and is counted against the same daily quota as the
chat posts (`broadcaster.publishers.youtube.COST`). The ids are kept in the database, so a
restart binds the same broadcast again instead of opening a second one.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from broadcaster.core.config import AccountConfig, Config, LiveDestinationConfig
from broadcaster.core.logs import register_secret
from broadcaster.live.sender import TargetError
from broadcaster.publishers.base import (
    PublisherEnv,
    PublishError,
    Reauthorize,
    Rejected,
)
from broadcaster.publishers.youtube import YouTubePublisher

log = logging.getLogger(__name__)

FINISHED = {"complete", "revoked"}


class BroadcastEnded(Exception):
    """The platform ended the broadcast (or it was deleted): streaming to it is over."""


def target_error(exc: PublishError, action: str) -> TargetError:
    permanent = isinstance(exc, Rejected | Reauthorize)
    return TargetError(f"{action}: {exc}", permanent=permanent)


class YouTubeLive:
    def __init__(
        self,
        config: Config,
        dest: LiveDestinationConfig,
        account: AccountConfig,
        env: PublisherEnv,
    ) -> None:
        self.config = config
        self.dest = dest
        self.env = env
        self.pub = YouTubePublisher(account, env)
        self.api = self.pub.api
        self.key = f"live:youtube:{dest.name}"
        self.stream_id: str | None = None
        self.broadcast_id: str | None = None
        self.url: str | None = None
        self.title = dest.title or config.election.name or "Election results"

    def _call(self, method: str, request: Any, action: str) -> Any:
        try:
            return self.pub._execute(method, request, action)
        except PublishError as exc:
            raise target_error(exc, f"youtube {action}") from None

    # -- start --

    def start(self) -> str:
        """The ingest address (rtmps when offered), creating what is missing on YouTube."""
        if self.url is not None:
            return self.url
        stored = self.env.state.get_state(self.key) or {}
        stream = self._stream(stored.get("stream_id"))
        self.stream_id = str(stream["id"])
        broadcast_id = self.dest.broadcast_id or stored.get("broadcast_id")
        broadcast = self._broadcast(broadcast_id)
        self.broadcast_id = str(broadcast["id"])
        bound = broadcast.get("contentDetails", {}).get("boundStreamId")
        if bound != self.stream_id:
            request = self.api.liveBroadcasts().bind(
                id=self.broadcast_id, part="id,contentDetails", streamId=self.stream_id
            )
            self._call("liveBroadcasts.bind", request, "bind the broadcast to the stream")
        self.env.state.put_state(
            self.key, {"stream_id": self.stream_id, "broadcast_id": self.broadcast_id}
        )
        ingestion = stream.get("cdn", {}).get("ingestionInfo", {})
        key = ingestion.get("streamName")
        address = ingestion.get("rtmpsIngestionAddress") or ingestion.get("ingestionAddress")
        if not key or not address:
            raise TargetError("youtube: the live stream has no ingestion address", permanent=True)
        register_secret(key)  # the stream key is a secret: masked in every log line
        self.url = f"{address.rstrip('/')}/{key}"
        log.info(
            "youtube %s: broadcast %s bound to stream %s",
            self.dest.name,
            self.broadcast_id,
            self.stream_id,
        )
        return self.url

    def _stream(self, stream_id: str | None) -> dict[str, Any]:
        if stream_id:
            request = self.api.liveStreams().list(part="id,snippet,cdn,status", id=stream_id)
            found = self._call("liveStreams.list", request, "find the live stream")
            items = found.get("items") or []
            if items:
                return dict(items[0])
        body = {
            "snippet": {"title": f"broadcaster {self.dest.name}"},
            "cdn": {
                "ingestionType": "rtmp",
                "frameRate": "variable",
                "resolution": "variable",
            },
            "contentDetails": {"isReusable": True},
        }
        request = self.api.liveStreams().insert(part="snippet,cdn,contentDetails,status", body=body)
        return dict(self._call("liveStreams.insert", request, "create the live stream"))

    def _broadcast(self, broadcast_id: str | None) -> dict[str, Any]:
        if broadcast_id:
            request = self.api.liveBroadcasts().list(
                part="id,snippet,contentDetails,status", id=broadcast_id
            )
            found = self._call("liveBroadcasts.list", request, "find the broadcast")
            items = found.get("items") or []
            if items and items[0].get("status", {}).get("lifeCycleStatus") not in FINISHED:
                return dict(items[0])
            if self.dest.broadcast_id:
                raise TargetError(
                    f"youtube: broadcast {broadcast_id} is not there or already complete",
                    permanent=True,
                )
        now = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        body = {
            "snippet": {"title": self.title[:100], "scheduledStartTime": now},
            "status": {"privacyStatus": self.dest.privacy, "selfDeclaredMadeForKids": False},
            "contentDetails": {
                "enableAutoStart": True,
                "enableAutoStop": True,
                "latencyPreference": "normal",
            },
        }
        request = self.api.liveBroadcasts().insert(
            part="id,snippet,contentDetails,status", body=body
        )
        return dict(self._call("liveBroadcasts.insert", request, "create the broadcast"))

    # -- while live --

    def watch(self) -> str:
        """The platform's view of the stream ("live; stream active, health good"); raises
        BroadcastEnded when YouTube has ended the broadcast."""
        if self.stream_id is None or self.broadcast_id is None:
            return "not started"
        request = self.api.liveStreams().list(part="id,status", id=self.stream_id)
        streams = self._call("liveStreams.list", request, "read the stream's health")
        status = ((streams.get("items") or [{}])[0]).get("status", {})
        stream_status = status.get("streamStatus", "unknown")
        health = status.get("healthStatus", {}).get("status", "unknown")
        request = self.api.liveBroadcasts().list(part="id,status", id=self.broadcast_id)
        broadcasts = self._call("liveBroadcasts.list", request, "read the broadcast")
        items = broadcasts.get("items") or []
        if not items:
            raise BroadcastEnded(f"youtube: broadcast {self.broadcast_id} was deleted")
        cycle = items[0].get("status", {}).get("lifeCycleStatus", "unknown")
        if cycle in FINISHED:
            raise BroadcastEnded(f"youtube ended the broadcast ({cycle})")
        issues = status.get("healthStatus", {}).get("configurationIssues") or []
        worst = [i.get("type", "") for i in issues if i.get("severity") == "error"]
        text = f"{cycle}; stream {stream_status}, health {health}"
        return text + (f" ({', '.join(worst)})" if worst else "")

    def end(self) -> None:
        """Complete the broadcast (viewers see it end; the recording stays on the channel)."""
        if self.broadcast_id is None:
            return
        request = self.api.liveBroadcasts().transition(
            broadcastStatus="complete", id=self.broadcast_id, part="id,status"
        )
        try:
            self._call("liveBroadcasts.transition", request, "complete the broadcast")
        except Exception as exc:
            log.warning("youtube %s: could not complete the broadcast: %s", self.dest.name, exc)
            return
        self.env.state.put_state(self.key, {"stream_id": self.stream_id})
        log.info("youtube %s: broadcast %s completed", self.dest.name, self.broadcast_id)

    def close(self) -> None:
        self.pub.close()
