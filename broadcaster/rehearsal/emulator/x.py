"""X's API v2 as the adapter uses it (tweepy, OAuth 1.0a user context): the signed-in user,
their recent posts, media upload, posting (text, replies, media) and deleting; X's problem
documents, its duplicate and weighted-length checks, the 15-minute window and the daily user
cap with their `x-rate-limit-*` and `x-user-limit-24hour-*` headers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from twitter_text import parse_tweet

from broadcaster.rehearsal.emulator.faults import COMMON_MIX, FaultStyle, retry_after
from broadcaster.rehearsal.emulator.routing import Handler, Platform, Request, Route

NAME = "x"
USER = "2244994945"  # the signed-in user, whatever the keys


def _problem(
    req: Request, status: int, title: str, detail: str, headers: dict[str, str] | None = None
) -> None:
    req.count(status)
    problem = {"title": title, "detail": detail, "type": "about:blank", "status": status}
    req.send(status, problem, headers)


def _refused(req: Request, status: int, code: str, message: str, headers: dict[str, str]) -> None:
    _problem(req, status, code, message, headers)


def _wait_headers(kind: str, wait: float, now: float, headers: Mapping[str, str]) -> dict[str, str]:
    """X says when its window resets (x-rate-limit-reset, epoch seconds), not how long to wait;
    a 429 without a wait has none of those headers."""
    if kind != "429":
        return retry_after(kind, wait, now, headers)
    if wait > 0:
        reset = str(math.ceil(now + wait))
        return {**headers, "x-rate-limit-remaining": "0", "x-rate-limit-reset": reset}
    return {k: v for k, v in headers.items() if not k.startswith("x-")}


def _signed(handler: Handler) -> Handler:
    """A call signed with OAuth 1.0a (keys containing `x-revoked` are refused)."""

    def checked(req: Request) -> None:
        auth = req.header("Authorization")
        if not auth.startswith("OAuth ") or "x-revoked" in auth:
            _problem(req, 401, "Unauthorized", "Unauthorized")
            return
        handler(req)

    return checked


def _me(req: Request) -> None:
    req.send(200, {"data": {"id": USER, "name": "Emulated Account", "username": "emulated_test"}})


def _timeline(req: Request) -> None:
    tweets = [
        {"id": p.id, "text": p.text, "edit_history_tweet_ids": [p.id]}
        for p in reversed(req.emulator.posts_of(NAME))
        if not p.deleted
    ][:20]
    req.send(200, {"data": tweets, "meta": {"result_count": len(tweets)}})


def _upload(req: Request) -> None:
    if "media" not in req.form()[1]:
        _problem(req, 400, "Invalid Request", "media is required")
        return
    mid = req.emulator.next_id()
    req.send(200, {"data": {"id": mid, "media_key": f"3_{mid}", "expires_after_secs": 86400}})


def _delete(req: Request) -> None:
    req.emulator.delete(NAME, req.params["id"])
    req.send(200, {"data": {"deleted": True}})


def _windows(req: Request) -> tuple[bool, dict[str, str]]:
    """Count the post in the 15-minute window and the daily cap: (allowed, their headers)."""
    emu, limits = req.emulator, req.emulator.limits
    now = emu.clock()
    ok15, wait15 = emu.allow(f"x15:{USER}", limits.x_per_15min, 900)
    okday, waitday = emu.allow(f"xday:{USER}", limits.x_daily, 86400)
    headers = {
        "x-rate-limit-limit": str(limits.x_per_15min),
        "x-rate-limit-remaining": str(max(0, limits.x_per_15min - emu.used(f"x15:{USER}"))),
        "x-rate-limit-reset": str(int(now + (wait15 or 900))),
        "x-user-limit-24hour-limit": str(limits.x_daily),
        "x-user-limit-24hour-remaining": str(max(0, limits.x_daily - emu.used(f"xday:{USER}"))),
        "x-user-limit-24hour-reset": str(int(now + (waitday or 86400))),
    }
    return ok15 and okday, headers


def _post(req: Request) -> None:
    """POST /2/tweets: the posting call, where faults land."""
    emu = req.emulator
    allowed, headers = _windows(req)
    if not allowed:
        emu.refuse(NAME)
        _problem(req, 429, "Too Many Requests", "Too Many Requests", headers)
        return
    fault = req.take_fault()
    if fault is not None and fault.kind == "token_expired":  # X keys need an operator
        _problem(req, 401, "Unauthorized", "Unauthorized")
        return
    if req.refuse(fault, headers):
        return
    try:
        payload = req.json()
    except ValueError:
        _problem(req, 400, "Invalid Request", "body is not JSON")
        return
    text = str(payload.get("text", ""))
    if any(p.text == text and not p.deleted for p in emu.posts_of(NAME)):
        detail = "You are not allowed to create a Tweet with duplicate content."
        _problem(req, 403, "Forbidden", detail)
        return
    if parse_tweet(text).weightedLength > 280:
        _problem(req, 400, "Invalid Request", "The text is too long")
        return
    reply = (payload.get("reply") or {}).get("in_reply_to_tweet_id")
    media = (payload.get("media") or {}).get("media_ids") or []
    tid = emu.next_id()
    req.record(USER, tid, text, media, reply_to=reply)
    req.accepted(fault)
    req.count(201)
    req.send(201, {"data": {"id": tid, "text": text, "edit_history_tweet_ids": [tid]}}, headers)


def _no_route(req: Request) -> None:
    _problem(req, 404, "Not Found", f"no route {req.method} {req.path}")


PLATFORM = Platform(
    name=NAME,
    claim=r"/2/.*",
    routes=(
        Route("GET", r"/2/users/me", _signed(_me)),
        Route("GET", rf"/2/users/{USER}/tweets", _signed(_timeline)),
        Route("POST", r"/2/media/upload", _signed(_upload)),
        Route("POST", r"/2/tweets", _signed(_post)),
        Route("DELETE", r"/2/tweets/(?P<id>[^/]+)", _signed(_delete)),
    ),
    not_found=_signed(_no_route),
    faults=FaultStyle(
        refusals={
            "429": (429, "Too Many Requests", "Too Many Requests"),
            "503": (503, "Service Unavailable", "Service Unavailable"),
            "500": (500, "Internal Server Error", "Internal Server Error"),
        },
        code_status=400,
        mix=(*COMMON_MIX, "code=Service Unavailable@503"),
        wait_headers=_wait_headers,
    ),
    refused=_refused,
)
