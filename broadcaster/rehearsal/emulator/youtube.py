"""YouTube Data API v3 as the adapter and the live channel use it (google-api-python-client),
and Google's OAuth token endpoint: the active broadcast's live chat (post, list, delete
messages; the chat can end and a new one start), Shorts (videos.insert as a resumable upload:
the metadata POSTed for an upload address, then the file PUT to it; found again through the
channel's uploads playlist), liveStreams and liveBroadcasts (create, list, bind, transition);
Google's error list, the daily quota in units (reset at midnight Pacific),
and the reasons the adapter meets (authError, quotaExceeded, liveChatEnded, rateLimitExceeded,
backendError...).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from broadcaster.rehearsal.emulator.data import LiveState
from broadcaster.rehearsal.emulator.faults import COMMON_MIX, FaultStyle
from broadcaster.rehearsal.emulator.routing import Handler, Platform, Request, Route

NAME = "youtube"
API = "/youtube/v3"
PACIFIC = ZoneInfo("America/Los_Angeles")  # where YouTube's quota day starts
SCOPE = "https://www.googleapis.com/auth/youtube.force-ssl"
NOT_AUTHORIZED = "Request had invalid authentication credentials."
CHAT_ENDED = "The specified live chat is no longer live."

LiveHandler = Callable[[Request, LiveState], None]


@dataclass(frozen=True)
class _Api:
    """How one part of the API words the refusals every call can meet."""

    domain: str  # of its errors
    auth_domain: str
    quota_message: str
    quota_domain: str


CHAT = _Api(
    "youtube.liveChat",
    "global",
    "The request cannot be completed because you have exceeded your quota.",
    "youtube.quota",
)
LIVE = _Api(
    "youtube.api", "youtube.api", "The request cannot be completed: quota exceeded.", "youtube.api"
)


UPLOADS = "UU-emulated"  # the channel's uploads playlist
VIDEO = _Api(
    "youtube.video",
    "global",
    "The request cannot be completed because you have exceeded your quota.",
    "youtube.quota",
)


@dataclass
class _Uploads:
    """Resumable uploads under way: upload id -> the video's metadata."""

    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class _Chat:
    """The active broadcast's chat; `chat_ended` ends it and the next one starts."""

    seq: int = 1

    @property
    def id(self) -> str:
        return f"chat-{self.seq}"


def _chat(req: Request) -> _Chat:
    return req.emulator.own("youtube.chat", _Chat)


def _error(
    req: Request,
    status: int,
    reason: str,
    message: str,
    domain: str = CHAT.domain,
    headers: dict[str, str] | None = None,
) -> None:
    req.count(status)
    errors = [{"message": message, "domain": domain, "reason": reason}]
    req.send(status, {"error": {"code": status, "message": message, "errors": errors}}, headers)


def _refused(req: Request, status: int, code: str, message: str, headers: dict[str, str]) -> None:
    domain = "usageLimits" if "RateLimit" in code or "rateLimit" in code else "global"
    _error(req, status, code, message, domain, headers)


def _admit(req: Request, units: int, api: _Api) -> bool:
    """The bearer token checked and the call's quota units spent; False once refused."""
    emu = req.emulator
    token = req.bearer()
    if not token or emu.token_expired(token):
        _error(req, 401, "authError", NOT_AUTHORIZED, api.auth_domain)
        return False
    day = datetime.fromtimestamp(emu.clock(), UTC).astimezone(PACIFIC).date().isoformat()
    if not emu.spend_quota(units, day):
        emu.refuse(NAME)
        _error(req, 403, "quotaExceeded", api.quota_message, api.quota_domain)
        return False
    return True


def _chat_call(units: int, handler: Handler) -> Handler:
    def admitted(req: Request) -> None:
        if _admit(req, units, CHAT):
            handler(req)

    return admitted


def _live_call(units: int, handler: LiveHandler) -> Handler:
    def admitted(req: Request) -> None:
        if not _admit(req, units, LIVE):
            return
        state = req.emulator.live
        with state.lock:
            state.calls.append(f"{req.method} {req.path.removeprefix(API + '/')}")
            handler(req, state)

    return admitted


# -- OAuth --


def _token(req: Request) -> None:
    emu, form = req.emulator, req.form()[0]
    grant, refresh = form.get("grant_type"), form.get("refresh_token", "")
    if grant == "authorization_code" and form.get("code"):
        access, refresh_token = f"ya29.emu{emu.next_id()}", f"1//emu{emu.next_id()}"
        answer = {"access_token": access, "expires_in": 3599, "refresh_token": refresh_token}
        req.send(200, {**answer, "scope": SCOPE, "token_type": "Bearer"})
    elif grant != "refresh_token" or not refresh or refresh.startswith("revoked"):
        error = {
            "error": "invalid_grant",
            "error_description": "Token has been expired or revoked.",
        }
        req.send(400, error)
    else:
        access = f"ya29.emu{emu.next_id()}"
        req.send(
            200,
            {"access_token": access, "expires_in": 3599, "scope": SCOPE, "token_type": "Bearer"},
        )


# -- the live chat --


def _active_broadcast(req: Request) -> None:
    """GET liveBroadcasts without an id: the active broadcast and its chat."""
    chat = _chat(req)
    snippet = {"title": "Results night (TEST)", "channelId": "UC-emulated", "liveChatId": chat.id}
    item = {"kind": "youtube#liveBroadcast", "id": f"bc-{chat.seq}", "snippet": snippet}
    req.send(200, {"kind": "youtube#liveBroadcastListResponse", "items": [item]})


def _post_message(req: Request) -> None:
    """POST liveChat/messages: the posting call, where faults land."""
    emu = req.emulator
    fault = req.take_fault()
    if fault is not None and fault.kind == "token_expired":
        emu.expire_token(req.bearer())
        _error(req, 401, "authError", NOT_AUTHORIZED, "global")
        return
    if req.refuse(fault):
        return
    try:
        snippet = req.json()["snippet"]
        text = snippet["textMessageDetails"]["messageText"]
        chat = snippet["liveChatId"]
    except (ValueError, KeyError, TypeError):
        _error(req, 400, "invalidValue", "The request body is malformed.")
        return
    current = _chat(req)
    if fault is not None and fault.kind == "chat_ended":
        with emu.lock:
            current.seq += 1
        _error(req, 403, "liveChatEnded", CHAT_ENDED)
        return
    if chat != current.id:
        _error(req, 403, "liveChatEnded", CHAT_ENDED)
        return
    if not text or len(text) > 200:
        _error(req, 400, "messageTextInvalid", "The message text is invalid or too long.")
        return
    mid = f"msg-{emu.next_id()}"
    req.record(chat, mid, text)
    req.accepted(fault)
    req.count(200)
    message = {
        "kind": "youtube#liveChatMessage",
        "id": mid,
        "snippet": {**snippet, "displayMessage": text},
        "authorDetails": {"channelId": "UC-emulated", "isChatOwner": True},
    }
    req.send(200, message)


def _list_messages(req: Request) -> None:
    items = [
        {
            "id": p.id,
            "snippet": {"displayMessage": p.text, "textMessageDetails": {"messageText": p.text}},
            "authorDetails": {"channelId": "UC-emulated", "isChatOwner": True},
        }
        for p in req.emulator.posts_of(NAME)
        if p.target == req.query.get("liveChatId") and not p.deleted
    ]
    req.send(200, {"items": items})


def _delete_message(req: Request) -> None:
    req.emulator.delete(NAME, req.query.get("id", ""))
    req.send(204, None)


# -- Shorts: videos.insert, resumable --


def _start_upload(req: Request) -> None:
    """POST upload/.../videos?uploadType=resumable: the metadata checked, an upload address
    given (1,600 quota units, charged here)."""
    if req.query.get("uploadType") != "resumable":
        _error(req, 400, "badRequest", "The emulator takes resumable uploads only.", "global")
        return
    if not _admit(req, 1600, VIDEO):
        return
    try:
        body = req.json()
        title = str(body["snippet"]["title"])
        description = str(body["snippet"].get("description", ""))
        privacy = body.get("status", {}).get("privacyStatus", "public")
    except (ValueError, KeyError, TypeError, AttributeError):
        _error(req, 400, "invalidVideoMetadata", "The request metadata is invalid.", VIDEO.domain)
        return
    problem = _metadata_problem(req, title, description, privacy)
    if problem:
        _error(req, 400, problem[0], problem[1], VIDEO.domain)
        return
    upload_id = f"up-{req.emulator.next_id()}"
    uploads = req.emulator.own("youtube.uploads", _Uploads)
    with req.emulator.lock:
        uploads.sessions[upload_id] = {"title": title, "description": description}
    here = f"http://{req.header('Host')}{req.path}"
    req.count(200)
    req.send(200, None, {"Location": f"{here}?uploadType=resumable&upload_id={upload_id}"})


def _metadata_problem(
    req: Request, title: str, description: str, privacy: str
) -> tuple[str, str] | None:
    if not title.strip() or len(title) > 100 or "<" in title or ">" in title:
        return "invalidTitle", "The video's title is empty, too long or has < or >."
    if len(description.encode()) > 5000 or "<" in description or ">" in description:
        return "invalidDescription", "The video's description is too long or has < or >."
    if privacy not in ("public", "private", "unlisted"):
        return "invalidVideoMetadata", "privacyStatus must be public, private or unlisted."
    if not req.header("X-Upload-Content-Type").startswith("video/"):
        return "badRequest", "X-Upload-Content-Type must be a video type."
    return None


def _finish_upload(req: Request) -> None:
    """PUT the file to its upload address: the posting call, where faults land. The whole
    file in one request (the adapter's chunk is larger than any short)."""
    emu = req.emulator
    uploads = emu.own("youtube.uploads", _Uploads)
    with emu.lock:
        meta = uploads.sessions.get(req.query.get("upload_id", ""))
    if meta is None:
        _error(req, 404, "notFound", "No such upload.", VIDEO.domain)
        return
    fault = req.take_fault()
    if req.refuse(fault):
        return
    size = len(req.body)
    if req.header("Content-Range") not in ("", f"bytes 0-{size - 1}/{size}"):
        _error(req, 400, "badRequest", "The emulator takes the whole file in one request.")
        return
    if req.body[4:8] != b"ftyp":
        _error(req, 400, "invalidVideoFile", "The file is not an MP4 video.", VIDEO.domain)
        return
    vid = f"vid{emu.next_id()}"
    with emu.lock:
        uploads.sessions.pop(req.query.get("upload_id", ""), None)
    media = [f"short.mp4 ({size} bytes)"]
    req.record(UPLOADS, vid, meta["description"], media, title=meta["title"])
    req.accepted(fault)
    req.count(200)
    snippet = {**meta, "channelId": "UC-emulated"}
    req.send(
        200,
        {
            "kind": "youtube#video",
            "id": vid,
            "snippet": snippet,
            "status": {"uploadStatus": "uploaded", "privacyStatus": "public"},
        },
    )


def _my_channel(req: Request) -> None:
    """GET channels?mine=true: the channel and its uploads playlist."""
    details = {"relatedPlaylists": {"uploads": UPLOADS}}
    item = {"kind": "youtube#channel", "id": "UC-emulated", "contentDetails": details}
    req.send(200, {"kind": "youtube#channelListResponse", "items": [item]})


def _uploads(req: Request) -> None:
    """GET playlistItems of the uploads playlist: the channel's videos, newest first."""
    if req.query.get("playlistId") != UPLOADS:
        _error(req, 404, "playlistNotFound", "Playlist not found.", VIDEO.domain)
        return
    videos = [p for p in req.emulator.posts_of(NAME) if p.target == UPLOADS and not p.deleted]
    items = [
        {
            "kind": "youtube#playlistItem",
            "id": f"pi-{p.id}",
            "snippet": {
                "title": p.title,
                "description": p.text,
                "playlistId": UPLOADS,
                "resourceId": {"kind": "youtube#video", "videoId": p.id},
            },
        }
        for p in reversed(videos)
    ]
    limit = int(req.query.get("maxResults", "5") or 5)
    req.send(200, {"kind": "youtube#playlistItemListResponse", "items": items[:limit]})


def _no_route(req: Request) -> None:
    _error(req, 404, "notFound", f"no route {req.method} {req.path}", "global")


# -- live streams and broadcasts (the live channel) --


def _create_stream(req: Request, state: LiveState) -> None:
    emu, payload = req.emulator, req.json()
    sid, key = f"stream-{emu.next_id()}", f"emu-key-{emu.next_id()}"
    ingestion = {"streamName": key, "ingestionAddress": state.ingest}
    stream = {
        "kind": "youtube#liveStream",
        "id": sid,
        "snippet": payload.get("snippet", {}),
        "cdn": {
            **payload.get("cdn", {}),
            "ingestionInfo": {**ingestion, "rtmpsIngestionAddress": state.ingest},
        },
        "contentDetails": payload.get("contentDetails", {}),
        "status": {"streamStatus": "ready", "healthStatus": {"status": "noData"}},
    }
    state.streams[sid] = stream
    req.send(200, stream)


def _list_streams(req: Request, state: LiveState) -> None:
    wanted = req.query.get("id", "").split(",")
    items = [s for i, s in state.streams.items() if i in wanted]
    req.send(200, {"kind": "youtube#liveStreamListResponse", "items": items})


def _list_broadcasts(req: Request, state: LiveState) -> None:
    wanted = req.query.get("id", "").split(",")
    items = [b for i, b in state.broadcasts.items() if i in wanted]
    req.send(200, {"kind": "youtube#liveBroadcastListResponse", "items": items})


def _create_broadcast(req: Request, state: LiveState) -> None:
    emu, payload = req.emulator, req.json()
    bid = f"bc-live-{emu.next_id()}"
    broadcast = {
        "kind": "youtube#liveBroadcast",
        "id": bid,
        "snippet": {**payload.get("snippet", {}), "liveChatId": f"chat-{bid}"},
        "status": {**payload.get("status", {}), "lifeCycleStatus": "created"},
        "contentDetails": payload.get("contentDetails", {}),
    }
    state.broadcasts[bid] = broadcast
    req.send(200, broadcast)


def _broadcast(req: Request, state: LiveState) -> dict[str, Any] | None:
    """The broadcast named by `id`, or None after answering that there is none."""
    broadcast = state.broadcasts.get(req.query.get("id", ""))
    if broadcast is None:
        _error(req, 404, "liveBroadcastNotFound", "Broadcast not found.", LIVE.domain)
    return broadcast


def _bind(req: Request, state: LiveState) -> None:
    broadcast = _broadcast(req, state)
    if broadcast is None:
        return
    stream = state.streams.get(req.query.get("streamId", ""))
    if stream is None:
        _error(req, 404, "liveStreamNotFound", "Stream not found.", LIVE.domain)
        return
    broadcast["contentDetails"]["boundStreamId"] = stream["id"]
    # The emulator cannot see the RTMP server: a bound stream counts as receiving.
    stream["status"] = {"streamStatus": "active", "healthStatus": {"status": "good"}}
    auto = broadcast["contentDetails"].get("enableAutoStart")
    broadcast["status"]["lifeCycleStatus"] = "live" if auto else "ready"
    req.send(200, broadcast)


def _transition(req: Request, state: LiveState) -> None:
    broadcast = _broadcast(req, state)
    if broadcast is None:
        return
    wanted = req.query.get("broadcastStatus", "")
    current = broadcast["status"]["lifeCycleStatus"]
    allowed = {"testing": {"ready"}, "live": {"ready", "testing"}, "complete": {"live"}}
    if current not in allowed.get(wanted, set()):
        message = f"Cannot go from {current} to {wanted}."
        _error(req, 403, "invalidTransition", message, LIVE.domain)
        return
    broadcast["status"]["lifeCycleStatus"] = wanted
    req.send(200, broadcast)


def _no_live_route(req: Request, state: LiveState) -> None:
    _error(req, 404, "notFound", f"no route {req.method} {req.path}", LIVE.domain)


PLATFORM = Platform(
    name=NAME,
    claim=rf"{API}/.*|/token|/upload{API}/videos",
    routes=(
        Route("POST", r"/token", _token),
        Route("POST", rf"/upload{API}/videos", _start_upload),
        Route("PUT", rf"/upload{API}/videos", _chat_call(0, _finish_upload)),
        Route("GET", rf"{API}/channels", _chat_call(1, _my_channel)),
        Route("GET", rf"{API}/playlistItems", _chat_call(1, _uploads)),
        Route("GET", rf"{API}/liveStreams", _live_call(1, _list_streams)),
        Route("POST", rf"{API}/liveStreams", _live_call(50, _create_stream)),
        Route(
            "GET",
            rf"{API}/liveBroadcasts",
            _live_call(1, _list_broadcasts),
            lambda r: "id" in r.query,
        ),
        Route("GET", rf"{API}/liveBroadcasts", _chat_call(1, _active_broadcast)),
        Route("POST", rf"{API}/liveBroadcasts", _live_call(50, _create_broadcast)),
        Route("POST", rf"{API}/liveBroadcasts/bind", _live_call(50, _bind)),
        Route("POST", rf"{API}/liveBroadcasts/transition", _live_call(50, _transition)),
        Route("*", rf"{API}/(liveStreams|liveBroadcasts)(/.*)?", _live_call(1, _no_live_route)),
        Route("POST", rf"{API}/liveChat/messages", _chat_call(20, _post_message)),
        Route("GET", rf"{API}/liveChat/messages", _chat_call(5, _list_messages)),
        Route("DELETE", rf"{API}/liveChat/messages", _chat_call(50, _delete_message)),
    ),
    not_found=_chat_call(1, _no_route),
    faults=FaultStyle(
        refusals={
            "429": (429, "rateLimitExceeded", "The request was sent too quickly."),
            "503": (503, "backendError", "Backend Error"),
            "500": (500, "backendError", "Backend Error"),
        },
        code_status=403,
        mix=(
            *COMMON_MIX,
            "code=userRateLimitExceeded",
            "code=backendError@503",
            "token_expired",
            "chat_ended",
        ),
    ),
    refused=_refused,
)
