"""TikTok's Content Posting API and OAuth as the adapter uses them (requests): the token
endpoint (code and refresh grants), creator_info, photo posts by URL (content/init) and their
status; TikTok's `{"data", "error"}` envelope (errors often with HTTP 200), its per-token
per-minute limits and the daily post cap, and the checks it makes of a photo post (privacy
level among the creator's options, title and description lengths, JPEG or WebP URLs).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from broadcaster.rehearsal.emulator.faults import COMMON_MIX, FaultStyle
from broadcaster.rehearsal.emulator.routing import Handler, Platform, Request, Route

NAME = "tiktok"
PUBLISH = "/v2/post/publish"
NOT_AUTHORIZED = "The access token is invalid or not found in the request."

# A call past the token and JSON checks: (request, access token, the JSON body).
ApiHandler = Callable[[Request, str, Any], None]


@dataclass
class _Published:
    posts: dict[str, str] = field(default_factory=dict)  # publish_id -> post id


def _answer(
    req: Request,
    status: int,
    data: dict[str, Any] | None,
    code: str = "ok",
    message: str = "",
    headers: dict[str, str] | None = None,
) -> None:
    # Errors are counted apart from successes of the same HTTP status (TikTok answers many
    # errors with 200): "tiktok 200001" is an error sent with HTTP 200.
    req.count(status if code == "ok" else status * 1000 + 1)
    error = {"code": code, "message": message, "log_id": f"EMU{req.emulator.next_id()}"}
    req.send(status, {"data": data or {}, "error": error}, headers)


def _refused(req: Request, status: int, code: str, message: str, headers: dict[str, str]) -> None:
    req.count(status)
    error = {"code": code, "message": message, "log_id": f"EMU{req.emulator.next_id()}"}
    req.send(status, {"data": {}, "error": error}, headers)


def _api(handler: ApiHandler) -> Handler:
    """An API call: the bearer token checked and the body read as JSON."""

    def checked(req: Request) -> None:
        token = req.bearer()
        if not token or req.emulator.token_expired(token):
            _answer(req, 401, None, "access_token_invalid", NOT_AUTHORIZED)
            return
        try:
            payload = req.json()
        except ValueError:
            _answer(req, 400, None, "invalid_param", "body is not JSON")
            return
        handler(req, token, payload)

    return checked


def _limited(req: Request, key: str, limit: int) -> bool:
    """Count the call in its per-minute window; True after answering 429 when it is full."""
    ok, _ = req.emulator.allow(key, limit, 60)
    if not ok:
        req.emulator.refuse(NAME)
        _answer(req, 429, None, "rate_limit_exceeded", "Too many requests.")
    return not ok


def _token(req: Request) -> None:
    form = req.form()[0]
    grant = form.get("grant_type")
    valid = (grant == "authorization_code" and form.get("code")) or (
        grant == "refresh_token"
        and form.get("refresh_token")
        and not form.get("refresh_token", "").startswith("revoked")
    )
    if not valid:
        error = {
            "error": "invalid_grant",
            "error_description": "Refresh token is invalid or expired.",
            "log_id": "EMU",
        }
        req.send(400, error)
        return
    n = req.emulator.next_id()
    tokens = {
        "access_token": f"act.emu{n}",
        "expires_in": 86400,
        "open_id": "emu-open-id",
        "refresh_expires_in": 31536000,
        "refresh_token": f"rft.emu{n}",
        "scope": "video.publish",
        "token_type": "Bearer",
    }
    req.send(200, tokens)


def _creator_info(req: Request, token: str, payload: Any) -> None:
    if _limited(req, f"tt-info:{token}", req.emulator.limits.tiktok_creator_per_min):
        return
    info = {
        "creator_avatar_url": "https://example.invalid/a.jpg",
        "creator_username": "emulated_creator",
        "creator_nickname": "Emulated (TEST)",
        "privacy_level_options": list(req.emulator.limits.privacy_options),
        "comment_disabled": False,
        "duet_disabled": False,
        "stitch_disabled": True,
        "max_video_post_duration_sec": 300,
    }
    _answer(req, 200, info)


def _status(req: Request, token: str, payload: Any) -> None:
    if _limited(req, f"tt-status:{token}", req.emulator.limits.tiktok_status_per_min):
        return
    published = req.emulator.own("tiktok.published", _Published)
    with req.emulator.lock:
        post_id = published.posts.get(str(payload.get("publish_id")))
    if post_id is None:
        _answer(req, 400, None, "invalid_publish_id", "publish_id not found")
        return
    status = {
        "status": "PUBLISH_COMPLETE",
        "publicaly_available_post_id": [int(post_id)],  # sic: TikTok's spelling
        "uploaded_bytes": 0,
        "fail_reason": "",
    }
    _answer(req, 200, status)


def _init(req: Request, token: str, payload: Any) -> None:
    """POST content/init: the posting call, where faults land."""
    emu = req.emulator
    fault = req.take_fault()
    if fault is not None and fault.kind == "token_expired":
        emu.expire_token(token)
        _answer(req, 401, None, "access_token_invalid", NOT_AUTHORIZED)
        return
    if req.refuse(fault) or _limited(req, f"tt-init:{token}", emu.limits.tiktok_init_per_min):
        return
    if not emu.allow("tt-day", emu.limits.tiktok_daily, 86400)[0]:
        emu.refuse(NAME)
        message = "The user has reached the daily post cap."
        _answer(req, 403, None, "spam_risk_too_many_posts", message)
        return
    info = payload.get("post_info") or {}
    src = payload.get("source_info") or {}
    problem = _problem(payload, info, src, emu.limits.privacy_options)
    if problem:
        code, message = problem
        _answer(req, 400 if code == "invalid_param" else 403, None, code, message)
        return
    pid = f"p_pub_url~v2.{emu.next_id()}"
    post_id = emu.next_id()
    published = emu.own("tiktok.published", _Published)
    with emu.lock:
        published.posts[pid] = post_id
    description = str(info.get("description", ""))
    images = list(src.get("photo_images", []))
    req.record("emulated_creator", post_id, description, images, title=info.get("title"))
    req.accepted(fault)
    _answer(req, 200, {"publish_id": pid})


def _problem(
    payload: dict[str, Any], info: dict[str, Any], src: dict[str, Any], privacy: tuple[str, ...]
) -> tuple[str, str] | None:
    """What TikTok refuses in a photo post: (error code, message), or None."""
    if payload.get("media_type") != "PHOTO" or payload.get("post_mode") not in (
        "DIRECT_POST",
        "MEDIA_UPLOAD",
    ):
        return "invalid_param", "media_type must be PHOTO and post_mode DIRECT_POST or MEDIA_UPLOAD"
    if info.get("privacy_level") not in privacy:
        return "privacy_level_option_mismatch", "privacy_level is not one of the creator's options"
    if len(str(info.get("title", "")).encode("utf-16-le")) // 2 > 90:
        return "invalid_param", "title is longer than 90 UTF-16 units"
    if len(str(info.get("description", "")).encode("utf-16-le")) // 2 > 4000:
        return "invalid_param", "description is longer than 4000 UTF-16 units"
    images = src.get("photo_images") or []
    if src.get("source") != "PULL_FROM_URL" or not images or len(images) > 35:
        return "invalid_param", "photo posts need source PULL_FROM_URL and 1 to 35 photo_images"
    for url in images:
        if not str(url).lower().split("?")[0].endswith((".jpg", ".jpeg", ".webp")):
            return "invalid_param", "photos must be JPEG or WebP"
    return None


def _no_route(req: Request, token: str, payload: Any) -> None:
    _answer(req, 404, None, "invalid_params", f"no route {req.path}")


PLATFORM = Platform(
    name=NAME,
    claim=r"/v2/.*",
    routes=(
        Route("POST", r"/v2/oauth/token/", _token),
        Route("POST", rf"{PUBLISH}/creator_info/query/", _api(_creator_info)),
        Route("POST", rf"{PUBLISH}/status/fetch/", _api(_status)),
        Route("POST", rf"{PUBLISH}/content/init/", _api(_init)),
    ),
    not_found=_api(_no_route),
    faults=FaultStyle(
        refusals={
            "429": (429, "rate_limit_exceeded", "Too many requests."),
            "503": (503, "internal_error", "Service unavailable."),
            "500": (500, "internal_error", "Something went wrong."),
        },
        code_status=200,  # as TikTok does: the error is in the body
        mix=(*COMMON_MIX, "code=internal_error", "code=new_unlisted_error@502", "token_expired"),
    ),
    refused=_refused,
)
