"""Facebook's Graph API as the adapter and the live channel use it (facebook-sdk over requests):
the long-lived token exchange, the page's token, feed and photo posts, the page's recent posts,
edits and deletes, and live videos; Graph's error object, its per-page hourly limit with the
`X-App-Usage` and `X-Business-Use-Case-Usage` headers, and its codes (190 expired token, 506
duplicate, 32 page limit, 4 application limit, 2 and 1 transient).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from broadcaster.rehearsal.emulator.data import LiveState
from broadcaster.rehearsal.emulator.faults import COMMON_MIX, FaultStyle, retry_after
from broadcaster.rehearsal.emulator.routing import Handler, Platform, Request, Route

NAME = "facebook"
VERSION = r"/v\d+\.\d+"  # every Graph path starts with its version, such as /v25.0
NODE = r"(?P<node>[^/]+)"
EXPIRED = "Error validating access token: Session has expired"

# A Graph call past the token check and the page's limit: (request, token, usage headers).
GraphHandler = Callable[[Request, str, dict[str, str]], None]
LiveHandler = Callable[[Request, LiveState], None]


def _error(
    req: Request,
    status: int,
    message: str,
    code: int = 1,
    subcode: int | None = None,
    headers: dict[str, str] | None = None,
    transient: bool = False,
) -> None:
    err: dict[str, Any] = {
        "message": message,
        "type": "OAuthException",
        "code": code,
        "fbtrace_id": "EmuTrace",
    }
    if subcode:
        err["error_subcode"] = subcode
    if transient:
        err["is_transient"] = True
    req.count(status)
    req.send(status, {"error": err}, headers)


def _refused(req: Request, status: int, code: str, message: str, headers: dict[str, str]) -> None:
    _error(req, status, message, int(code), headers=headers, transient=status >= 500)


def _usage(allowed: bool, wait: float) -> dict[str, str]:
    calls = 10 if allowed else 100
    regain = 0 if allowed else max(1, int(wait // 60) + 1)
    app = {"call_count": calls, "total_cputime": 5, "total_time": 5}
    page = {"type": "pages", **app, "estimated_time_to_regain_access": regain}
    return {
        "X-App-Usage": json.dumps(app),
        "X-Business-Use-Case-Usage": json.dumps({"emulated-business": [page]}),
    }


def _wait_headers(kind: str, wait: float, now: float, headers: Mapping[str, str]) -> dict[str, str]:
    """Graph says how long to wait in the business use case header, in whole minutes."""
    if kind == "429" and wait > 0:
        usage = {"type": "pages", "call_count": 100, "total_cputime": 5, "total_time": 5}
        usage["estimated_time_to_regain_access"] = math.ceil(wait / 60)
        buc = json.dumps({"emulated-business": [usage]})
        return {**headers, "X-Business-Use-Case-Usage": buc}
    return retry_after(kind, wait, now, headers)


def _graph(handler: GraphHandler) -> Handler:
    """A Graph call: the access token checked, the page's hourly limit counted, its usage
    headers handed to the handler to send."""

    def checked(req: Request) -> None:
        emu = req.emulator
        token = req.form()[0].get("access_token", "")
        if not token or emu.token_expired(token):
            _error(req, 400, EXPIRED, 190, 463)
            return
        allowed, wait = emu.allow(f"fb:{token}", emu.limits.facebook_per_hour, 3600)
        headers = _usage(allowed, wait)
        if not allowed:
            emu.refuse(NAME)
            _error(req, 400, "(#32) Page request limit reached", 32, headers=headers)
            return
        handler(req, token, headers)

    return checked


def _exchange_token(req: Request) -> None:
    fields = req.form()[0]
    if fields.get("grant_type") != "fb_exchange_token" or not fields.get("fb_exchange_token"):
        _error(req, 400, "Missing grant_type or fb_exchange_token", 100)
        return
    long_lived = f"long-lived-{req.emulator.next_id()}"
    req.send(200, {"access_token": long_lived, "token_type": "bearer", "expires_in": 5183944})


def _publish(req: Request, token: str, headers: dict[str, str]) -> None:
    """POST {page}/feed or {page}/photos: the posting call, where faults land."""
    emu = req.emulator
    fault = req.take_fault()
    if fault is not None and fault.kind == "token_expired":
        emu.expire_token(token)
        _error(req, 400, EXPIRED, 190, 463)
        return
    if req.refuse(fault, headers):
        return
    page = req.params["node"]
    fields, files = req.form()
    message = fields.get("message", "")
    recent = [p for p in emu.posts_of(NAME) if p.target == page and not p.deleted]
    if message and recent and recent[-1].text == message:
        _error(req, 400, "Duplicate status message", 506)
        return
    pid = f"{page}_{emu.next_id()}"
    req.record(page, pid, message, [files["source"][0]] if "source" in files else [])
    req.accepted(fault)
    req.count(200)
    if req.params["edge"] == "photos":
        req.send(200, {"id": emu.next_id(), "post_id": pid}, headers)
    else:
        req.send(200, {"id": pid}, headers)


def _recent(req: Request, token: str, headers: dict[str, str]) -> None:
    """GET {page}/posts: the page's posts since `since`, newest first."""
    since = float(req.form()[0].get("since", 0) or 0)
    data = [
        {"id": p.id, "message": p.text, "created_time": p.at}
        for p in reversed(req.emulator.posts_of(NAME))
        if p.target == req.params["node"]
        and not p.deleted
        and datetime.fromisoformat(p.at).timestamp() >= since
    ]
    req.send(200, {"data": data}, headers)


def _page(req: Request, token: str, headers: dict[str, str]) -> None:
    node = req.params["node"]
    page = {
        "id": node,
        "name": "Emulated Page (TEST)",
        "tasks": ["ANALYZE", "ADVERTISE", "CREATE_CONTENT", "MANAGE"],
    }
    if "access_token" in req.form()[0].get("fields", ""):
        page["access_token"] = f"page-token-for-{node}"
    req.send(200, page, headers)


def _delete(req: Request, token: str, headers: dict[str, str]) -> None:
    if req.emulator.delete(NAME, req.params["node"]):
        req.send(200, {"success": True}, headers)
    else:
        _error(req, 400, "Unsupported delete request.", 100)


def _edit(req: Request, token: str, headers: dict[str, str]) -> None:
    if req.emulator.edit(NAME, req.params["node"], req.form()[0].get("message")):
        req.send(200, {"success": True}, headers)
    else:
        _error(req, 400, "Unsupported post request.", 100)


def _unknown(req: Request, token: str, headers: dict[str, str]) -> None:
    rest = req.path.strip("/").partition("/")[2]  # without the version
    _error(req, 400, f"Unknown path components: /{rest}", 2500)


# -- live videos (the live channel) --


def _live(handler: LiveHandler) -> Handler:
    """A live video call: the token checked (no page limit), the call noted in the live state."""

    def checked(req: Request) -> None:
        token = req.form()[0].get("access_token", "")
        if not token or req.emulator.token_expired(token):
            _error(req, 400, EXPIRED, 190)
            return
        state = req.emulator.live
        with state.lock:
            state.calls.append(f"{req.method} {req.path.strip('/').partition('/')[2]}")
            handler(req, state)

    return checked


def _is_live_video(req: Request) -> bool:
    state = req.emulator.live
    with state.lock:
        return req.params["node"] in state.videos


def _create_live_video(req: Request, state: LiveState) -> None:
    """POST {page}/live_videos: a stream address; LIVE_NOW goes live at once."""
    emu, fields = req.emulator, req.form()[0]
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
    req.send(200, {"id": vid, "stream_url": url, "secure_stream_url": url})


def _live_video(req: Request, state: LiveState) -> None:
    """GET {video} (the fields asked for), POST {video} end_live_video=true."""
    video = state.videos[req.params["node"]]
    fields = req.form()[0]
    if req.method == "GET":
        wanted = [f.split("{")[0] for f in fields.get("fields", "id,status").split(",")]
        answer: dict[str, Any] = {k: video[k] for k in wanted if k in video}
        if "ingest_streams" in wanted:
            answer["ingest_streams"] = {"data": [{"stream_health": {"video_bitrate": 3_000_000}}]}
        answer["id"] = video["id"]
        req.send(200, answer)
    elif req.method == "POST" and fields.get("end_live_video") == "true":
        video["status"] = "LIVE_STOPPED"
        req.send(200, {"id": video["id"], "success": True})
    else:
        req.send(400, {"error": {"message": "Unsupported request", "code": 100}})


PLATFORM = Platform(
    name=NAME,
    claim=VERSION + r"(/.*)?",
    routes=(
        Route("POST", rf"{VERSION}/{NODE}/live_videos", _live(_create_live_video)),
        Route("*", rf"{VERSION}/{NODE}", _live(_live_video), when=_is_live_video),
        Route("GET", rf"{VERSION}/oauth/access_token", _exchange_token),
        Route("POST", rf"{VERSION}/{NODE}/(?P<edge>feed|photos)", _graph(_publish)),
        Route("GET", rf"{VERSION}/{NODE}/posts", _graph(_recent)),
        Route("GET", rf"{VERSION}/{NODE}", _graph(_page)),
        Route("DELETE", rf"{VERSION}/{NODE}", _graph(_delete)),
        Route("POST", rf"{VERSION}/{NODE}", _graph(_edit)),  # an edit of a post
    ),
    not_found=_graph(_unknown),
    faults=FaultStyle(
        refusals={
            "429": (400, "4", "(#4) Application request limit reached"),
            "503": (503, "2", "Service temporarily unavailable"),
            "500": (500, "1", "An unknown error has occurred."),
        },
        code_status=400,
        mix=(*COMMON_MIX, "code=2@500", "code=17", "code=80001"),
        wait_headers=_wait_headers,
        check_code=lambda code: None if code.isdigit() else "a Graph error code is a number",
    ),
    refused=_refused,
)
