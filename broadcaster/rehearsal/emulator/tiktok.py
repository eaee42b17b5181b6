"""TikTok's Content Posting API and OAuth as the adapter uses them (requests): the token
endpoint (code and refresh grants), creator_info, photo posts by URL (content/init), video posts
by FILE_UPLOAD (video/init, then the file PUT in chunks to the upload_url it gives) and their
status; TikTok's `{"data", "error"}` envelope (errors often with HTTP 200), its per-token
per-minute limits and the daily post cap, and the checks it makes of a photo post (privacy
level among the creator's options, title and description lengths, JPEG or WebP URLs) and of a
video post (the chunking rules, each chunk's Content-Range, an MP4 file). A video is published
when its last byte arrives; until then its status is PROCESSING_UPLOAD.
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


MIN_CHUNK = 5 * 1024 * 1024
MAX_CHUNK = 64 * 1024 * 1024
MAX_LAST_CHUNK = 128 * 1024 * 1024


@dataclass
class _Upload:
    """A video post whose file is arriving."""

    publish_id: str
    title: str
    size: int
    chunk: int
    count: int
    data: bytearray = field(default_factory=bytearray)


@dataclass
class _Published:
    posts: dict[str, str] = field(default_factory=dict)  # publish_id -> post id
    uploads: dict[str, _Upload] = field(default_factory=dict)  # upload_id -> its upload


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
    wanted = str(payload.get("publish_id"))
    with req.emulator.lock:
        post_id = published.posts.get(wanted)
        arriving = next((u for u in published.uploads.values() if u.publish_id == wanted), None)
    if post_id is None and arriving is not None:
        status = {"status": "PROCESSING_UPLOAD", "uploaded_bytes": len(arriving.data)}
        _answer(req, 200, status)
        return
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


def _admit(req: Request, token: str) -> tuple[bool, Any]:
    """What every posting call meets first: a fault, an expired token, the per-minute init
    limit and the daily post cap (photo and video posts share them). (False, _) once answered;
    else (True, the fault still to act on after the post is recorded, if any)."""
    emu = req.emulator
    fault = req.take_fault()
    if fault is not None and fault.kind == "token_expired":
        emu.expire_token(token)
        _answer(req, 401, None, "access_token_invalid", NOT_AUTHORIZED)
        return False, fault
    if req.refuse(fault) or _limited(req, f"tt-init:{token}", emu.limits.tiktok_init_per_min):
        return False, fault
    if not emu.allow("tt-day", emu.limits.tiktok_daily, 86400)[0]:
        emu.refuse(NAME)
        message = "The user has reached the daily post cap."
        _answer(req, 403, None, "spam_risk_too_many_posts", message)
        return False, fault
    return True, fault


def _init(req: Request, token: str, payload: Any) -> None:
    """POST content/init: the posting call, where faults land."""
    emu = req.emulator
    admitted, fault = _admit(req, token)
    if not admitted:
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


def _video_init(req: Request, token: str, payload: Any) -> None:
    """POST video/init with FILE_UPLOAD: opens an upload; the post is made by the last chunk.
    Shares the per-minute init limit and the daily cap with photo posts."""
    emu = req.emulator
    admitted, fault = _admit(req, token)
    if not admitted:
        return
    info = payload.get("post_info") or {}
    src = payload.get("source_info") or {}
    problem = _video_problem(info, src, emu.limits.privacy_options)
    if problem:
        code, message = problem
        _answer(req, 400 if code == "invalid_param" else 403, None, code, message)
        return
    upload_id = emu.next_id()
    pid = f"v_pub_file~v2.{upload_id}"
    numbers = (src["video_size"], src["chunk_size"], src["total_chunk_count"])
    upload = _Upload(pid, str(info.get("title", "")), *numbers)
    with emu.lock:
        emu.own("tiktok.published", _Published).uploads[upload_id] = upload
    url = f"http://{req.header('Host')}/video/?upload_id={upload_id}&upload_token=emu"
    # A dropping fault here loses only the upload's address: nothing can be published.
    req.accepted(fault)
    _answer(req, 200, {"publish_id": pid, "upload_url": url})


def _video_problem(
    info: dict[str, Any], src: dict[str, Any], privacy: tuple[str, ...]
) -> tuple[str, str] | None:
    """What TikTok refuses in a FILE_UPLOAD video post: (error code, message), or None."""
    if info.get("privacy_level") not in privacy:
        return "privacy_level_option_mismatch", "privacy_level is not one of the creator's options"
    if len(str(info.get("title", "")).encode("utf-16-le")) // 2 > 2200:
        return "invalid_param", "title is longer than 2200 UTF-16 units"
    if src.get("source") != "FILE_UPLOAD":
        return "invalid_param", "the emulator takes video posts by FILE_UPLOAD"
    numbers = [src.get(k) for k in ("video_size", "chunk_size", "total_chunk_count")]
    size, chunk, count = (n if isinstance(n, int) else 0 for n in numbers)
    if min(size, chunk, count) <= 0:
        return "invalid_param", "video_size, chunk_size and total_chunk_count must be positive"
    if size <= MIN_CHUNK and (chunk != size or count != 1):
        return "invalid_param", "a video under 5 MB is uploaded whole, in one chunk"
    if size > MIN_CHUNK and not MIN_CHUNK <= chunk <= min(size, MAX_CHUNK):
        return "invalid_param", "chunk_size must be 5 MB to 64 MB and at most video_size"
    if count != size // chunk or size - chunk * (count - 1) > MAX_LAST_CHUNK:
        return "invalid_param", "total_chunk_count must be floor(video_size / chunk_size)"
    return None


def _upload_chunk(req: Request) -> None:
    """PUT a chunk of a video to its upload_url: 206 until the last, then 201 and the post."""
    emu = req.emulator
    published = emu.own("tiktok.published", _Published)
    with emu.lock:
        upload = published.uploads.get(req.query.get("upload_id", ""))
    if upload is None:
        _answer(req, 404, None, "invalid_params", "no such upload")
        return
    problem = _chunk_problem(req, upload)
    if problem:
        _answer(req, 400, None, "invalid_param", problem)
        return
    with emu.lock:
        upload.data.extend(req.body)
        done = len(upload.data) == upload.size
    if not done:
        req.count(206)
        req.send(206, None)
        return
    if upload.data[4:8] != b"ftyp":
        _answer(req, 400, None, "invalid_param", "the file is not an MP4 video")
        return
    post_id = emu.next_id()
    with emu.lock:
        published.uploads = {k: u for k, u in published.uploads.items() if u is not upload}
        published.posts[upload.publish_id] = post_id
    req.record("emulated_creator", post_id, upload.title, [f"video.mp4 ({upload.size} bytes)"])
    req.count(201)
    req.send(201, None)


def _chunk_problem(req: Request, upload: _Upload) -> str | None:
    """What is wrong with this chunk's Content-Range or length, or None."""
    try:
        span, total = req.header("Content-Range").removeprefix("bytes ").split("/")
        first, last = (int(x) for x in span.split("-"))
    except ValueError:
        return "Content-Range must be 'bytes FIRST-LAST/TOTAL'"
    index = len(upload.data) // upload.chunk if upload.chunk else 0
    final = index == upload.count - 1
    expected_last = upload.size - 1 if final else first + upload.chunk - 1
    if int(total) != upload.size or first != len(upload.data) or last != expected_last:
        return f"chunk {index + 1}: expected bytes {len(upload.data)}-{expected_last}/{upload.size}"
    if len(req.body) != last - first + 1:
        return "the body's length does not match its Content-Range"
    return None


def _no_route(req: Request, token: str, payload: Any) -> None:
    _answer(req, 404, None, "invalid_params", f"no route {req.path}")


PLATFORM = Platform(
    name=NAME,
    claim=r"/v2/.*|/video/",
    routes=(
        Route("PUT", r"/video/", _upload_chunk),
        Route("POST", r"/v2/oauth/token/", _token),
        Route("POST", rf"{PUBLISH}/creator_info/query/", _api(_creator_info)),
        Route("POST", rf"{PUBLISH}/status/fetch/", _api(_status)),
        Route("POST", rf"{PUBLISH}/content/init/", _api(_init)),
        Route("POST", rf"{PUBLISH}/video/init/", _api(_video_init)),
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
