"""The live endpoints of the platform emulator (broadcaster/rehearsal/emulator.py): YouTube's
liveStreams and liveBroadcasts, Facebook's live_videos, with their documented shapes.

The emulator hands out ingest addresses under `LiveState.ingest` (an RTMP server the caller runs,
such as the tests' listener). A broadcast goes live as soon as it is bound (YouTube, with
auto-start) or created (Facebook, LIVE_NOW); `LiveState.end_all()` plays a platform ending it.
Each handler returns False for a path that is not its own, so the emulator's other routes answer.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

YOUTUBE_COST = {
    ("GET", "liveStreams"): 1,
    ("POST", "liveStreams"): 50,
    ("GET", "liveBroadcasts"): 1,
    ("POST", "liveBroadcasts"): 50,
    ("POST", "bind"): 50,
    ("POST", "transition"): 50,
}


@dataclass
class LiveState:
    ingest: str = "rtmp://127.0.0.1:1935/live2"
    facebook_ingest: str | None = None  # default: `ingest`
    streams: dict[str, dict[str, Any]] = field(default_factory=dict)
    broadcasts: dict[str, dict[str, Any]] = field(default_factory=dict)
    videos: dict[str, dict[str, Any]] = field(default_factory=dict)  # Facebook live videos
    calls: list[str] = field(default_factory=list)  # "METHOD path" of every live call
    lock: threading.Lock = field(default_factory=threading.Lock)

    def end_all(self, platform: str) -> None:
        """The platform ends every broadcast (as when it stops a stream for a policy reason)."""
        with self.lock:
            if platform == "youtube":
                for b in self.broadcasts.values():
                    b["status"]["lifeCycleStatus"] = "complete"
            else:
                for v in self.videos.values():
                    v["status"] = "LIVE_STOPPED"


def live_state(emulator: Any) -> LiveState:
    """The emulator's live state, made on first use."""
    with emulator.lock:
        state = getattr(emulator, "live", None)
        if state is None:
            state = emulator.live = LiveState()
        return state


def youtube(handler: Any, method: str, path: str, body: bytes) -> bool:
    parts = path.split("/")  # ["", "youtube", "v3", resource, (action)]
    if len(parts) < 4 or parts[3] not in ("liveStreams", "liveBroadcasts"):
        return False
    query = {k: v[0] for k, v in parse_qs(urlsplit(handler.path).query).items()}
    if parts[3] == "liveBroadcasts" and method == "GET" and "id" not in query:
        return False  # the chat look-up (broadcastStatus=active) is the emulator's own
    emu = handler.emulator
    state = live_state(emu)
    resource, action = parts[3], (parts[4] if len(parts) > 4 else None)

    def error(status: int, reason: str, message: str) -> bool:
        emu.count("youtube", status)
        handler._send(
            status,
            {
                "error": {
                    "code": status,
                    "message": message,
                    "errors": [{"message": message, "domain": "youtube.api", "reason": reason}],
                }
            },
        )
        return True

    token = handler.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    if not token or token in emu.expired_tokens:
        return error(401, "authError", "Request had invalid authentication credentials.")
    cost = YOUTUBE_COST.get((method, action or resource), 1)
    with emu.lock:
        if emu.quota_used + cost > emu.limits.youtube_daily_units:
            emu.refuse("youtube")
            return error(403, "quotaExceeded", "The request cannot be completed: quota exceeded.")
        emu.quota_used += cost
    with state.lock:
        state.calls.append(f"{method} {resource}{'/' + action if action else ''}")
        payload = json.loads(body or b"{}") if method == "POST" and body else {}
        if resource == "liveStreams" and method == "POST":
            sid = f"stream-{emu.next_id()}"
            key = f"emu-key-{emu.next_id()}"
            stream = {
                "kind": "youtube#liveStream",
                "id": sid,
                "snippet": payload.get("snippet", {}),
                "cdn": {
                    **payload.get("cdn", {}),
                    "ingestionInfo": {
                        "streamName": key,
                        "ingestionAddress": state.ingest,
                        "rtmpsIngestionAddress": state.ingest,
                    },
                },
                "contentDetails": payload.get("contentDetails", {}),
                "status": {"streamStatus": "ready", "healthStatus": {"status": "noData"}},
            }
            state.streams[sid] = stream
            handler._send(200, stream)
            return True
        if resource == "liveStreams" and method == "GET":
            items = [s for i, s in state.streams.items() if i in query.get("id", "").split(",")]
            handler._send(200, {"kind": "youtube#liveStreamListResponse", "items": items})
            return True
        if resource == "liveBroadcasts" and method == "GET":
            wanted = query.get("id", "").split(",")
            items = [b for i, b in state.broadcasts.items() if i in wanted]
            handler._send(200, {"kind": "youtube#liveBroadcastListResponse", "items": items})
            return True
        if resource == "liveBroadcasts" and method == "POST" and action is None:
            bid = f"bc-live-{emu.next_id()}"
            broadcast = {
                "kind": "youtube#liveBroadcast",
                "id": bid,
                "snippet": {**payload.get("snippet", {}), "liveChatId": f"chat-{bid}"},
                "status": {**payload.get("status", {}), "lifeCycleStatus": "created"},
                "contentDetails": payload.get("contentDetails", {}),
            }
            state.broadcasts[bid] = broadcast
            handler._send(200, broadcast)
            return True
        broadcast = state.broadcasts.get(query.get("id", ""))
        if broadcast is None:
            return error(404, "liveBroadcastNotFound", "Broadcast not found.")
        if action == "bind":
            stream = state.streams.get(query.get("streamId", ""))
            if stream is None:
                return error(404, "liveStreamNotFound", "Stream not found.")
            broadcast["contentDetails"]["boundStreamId"] = stream["id"]
            # The emulator cannot see the RTMP server: a bound stream counts as receiving.
            stream["status"] = {"streamStatus": "active", "healthStatus": {"status": "good"}}
            auto = broadcast["contentDetails"].get("enableAutoStart")
            broadcast["status"]["lifeCycleStatus"] = "live" if auto else "ready"
            handler._send(200, broadcast)
            return True
        if action == "transition":
            wanted = query.get("broadcastStatus", "")
            current = broadcast["status"]["lifeCycleStatus"]
            allowed = {"testing": {"ready"}, "live": {"ready", "testing"}, "complete": {"live"}}
            if current not in allowed.get(wanted, set()):
                return error(403, "invalidTransition", f"Cannot go from {current} to {wanted}.")
            broadcast["status"]["lifeCycleStatus"] = wanted
            handler._send(200, broadcast)
            return True
    return error(404, "notFound", f"no route {method} {path}")


def facebook(handler: Any, method: str, path: str, body: bytes) -> bool:
    parts = path.strip("/").split("/")[1:]  # drop the version
    emu = handler.emulator
    state = live_state(emu)
    creating = method == "POST" and len(parts) == 2 and parts[1] == "live_videos"
    with state.lock:
        known = len(parts) == 1 and parts[0] in state.videos
    if not creating and not known:
        return False
    fields, _ = handler._form(body)
    token = fields.get("access_token", "")
    if not token or token in emu.expired_tokens:
        emu.count("facebook", 400)
        handler._send(
            400,
            {
                "error": {
                    "message": "Error validating access token: Session has expired",
                    "type": "OAuthException",
                    "code": 190,
                    "fbtrace_id": "EmuTrace",
                }
            },
        )
        return True
    with state.lock:
        state.calls.append(f"{method} {'/'.join(parts)}")
        if creating:
            vid = emu.next_id()
            key = f"FB-{emu.next_id()}-emu"
            url = f"{(state.facebook_ingest or state.ingest).rstrip('/')}/{key}"
            state.videos[vid] = {
                "id": vid,
                "status": "LIVE" if fields.get("status") == "LIVE_NOW" else "UNPUBLISHED",
                "title": fields.get("title", ""),
                "stream_url": url,
                "secure_stream_url": url,
            }
            handler._send(200, {"id": vid, "stream_url": url, "secure_stream_url": url})
            return True
        video = state.videos[parts[0]]
        if method == "GET":
            wanted = [f.split("{")[0] for f in fields.get("fields", "id,status").split(",")]
            answer: dict[str, Any] = {k: video[k] for k in wanted if k in video}
            if "ingest_streams" in wanted:
                answer["ingest_streams"] = {
                    "data": [{"stream_health": {"video_bitrate": 3_000_000}}]
                }
            answer["id"] = video["id"]
            handler._send(200, answer)
            return True
        if method == "POST" and fields.get("end_live_video") == "true":
            video["status"] = "LIVE_STOPPED"
            handler._send(200, {"id": video["id"], "success": True})
            return True
    handler._send(400, {"error": {"message": "Unsupported request", "code": 100}})
    return True
