"""TikTok photo posts through the Content Posting API, with requests (no SDK covers it).

Every post first asks for the creator's info and checks that the configured `privacy_level` is
allowed (unaudited apps may only post privately). The card is published from a public HTTPS
folder that the election body controls (`media_base_url`; the adapter copies the card into
`media_dir`, which that URL serves). TikTok answers `error.code` "ok" or a failure even with
HTTP 200, so every answer's code is checked. The `publish_id` is recorded at once, before the
status polling, so that a post left in doubt can still be looked up after a crash.

Errors: only TikTok's documented refusals are final (invalid_param, privacy_level_option_mismatch,
url_ownership_unverified, spam_risk_user_banned_from_posting, reached_active_user_cap, the
unaudited-app refusal...). Rate limits wait for Retry-After when TikTok sends one, else the
dispatcher backs off. Any 5xx is temporary whatever its `error.code`, even one we have never
seen. On `content/init`, the call that creates the post, a 5xx other than 503 (and a dropped
connection) leaves the post in doubt: TikTok may have created it before failing. With no
`publish_id` in hand TikTok cannot be asked (private posts do not list, and there is no
idempotency key), and sending again could post twice, so the dispatcher holds such a post for an
operator, who looks at the account and marks it sent or approves it. A 503 (TikTok unavailable,
the request turned away) and every failure of the read-only calls (creator info, status) are
simply tried again later. A 200 carrying an error code is TikTok's own complete answer that
nothing was created: `internal_error` there is retried.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal
from urllib.parse import quote

from pydantic import AfterValidator, ConfigDict, Field

from broadcaster.core.config import AccountConfig
from broadcaster.domain.limits import TextLimit
from broadcaster.domain.quota import Window
from broadcaster.publishers.base import (
    Capabilities,
    CardSpec,
    EmulatorAccount,
    InDoubt,
    NotFoundYet,
    Post,
    PublishedRef,
    Publisher,
    PublisherEnv,
    PublishError,
    Reauthorize,
    Rejected,
    RetryLater,
    VideoOptions,
    VideoSpec,
)
from broadcaster.publishers.http import (
    LazyModule,
    may_have_acted,
    network_error,
    platform_session,
    require_https,
    retry_after,
)

if TYPE_CHECKING:
    import requests
else:  # loaded when the adapter first uses them (LazyModule says why)
    requests = LazyModule("requests")

API = "https://open.tiktokapis.com"

CAPABILITIES = Capabilities(
    media=("image/jpeg", "image/webp"),
    requires_media=True,
    text=TextLimit(4000, "utf16"),  # the photo post's description
    title=TextLimit(90, "utf16"),
    card=CardSpec("JPEG", 1080, 1080),  # TikTok refuses PNG and anything over 1080 px
    # content/init: 6 per minute per token; about 15 posts per creator per day.
    quota=(Window(posts=6, seconds=60), Window(posts=15, seconds=86400)),
    # video/init: a post like any other against the daily cap; its caption is the title.
    video=VideoSpec(cost=1, text=TextLimit(2200, "utf16")),
)

PRIVACY = Literal["PUBLIC_TO_EVERYONE", "MUTUAL_FOLLOW_FRIENDS", "FOLLOWER_OF_CREATOR", "SELF_ONLY"]
RETRY_CODES = {"rate_limit_exceeded", "internal_error", "spam_risk_too_many_pending_share"}
AUTH_CODES = {"access_token_invalid", "scope_not_authorized", "token_expired"}
CREATES = {"post"}  # content/init: the call that creates a post
REFRESH_MARGIN = 300.0  # refresh an access token this many seconds before it expires
CREATOR_INFO_TTL = 300.0


class Settings(VideoOptions):
    model_config = ConfigDict(extra="forbid")

    client_key: str  # names of the secrets holding the app's client key and secret
    client_secret: str
    privacy_level: PRIVACY  # no default on purpose: it must be one the creator allows
    # The public folder the cards are served from: TikTok pulls only from verified https
    # addresses (plain http is accepted on loopback, for the emulator).
    media_base_url: Annotated[str, AfterValidator(require_https)]
    media_dir: str  # local folder published at media_base_url
    disable_comment: bool = False
    api_base: Annotated[str, AfterValidator(require_https)] = API
    timeout: float = Field(default=20, gt=0)
    status_wait: float = Field(default=60, gt=0)  # seconds to poll for PUBLISH_COMPLETE
    status_interval: float = Field(default=3, gt=0)


class TikTokPublisher(Publisher):
    platform = "tiktok"
    settings_model = Settings
    capabilities = CAPABILITIES

    def __init__(self, account: AccountConfig, env: PublisherEnv) -> None:
        self.account = account
        self.env = env
        self.settings = Settings.model_validate(account.settings)
        if env.tokens is None:
            raise Reauthorize(f"{account.name}: no token store configured")
        self.session = platform_session(self.settings.timeout)
        self.base = self.settings.api_base.rstrip("/")
        self._info: tuple[float, dict[str, Any]] | None = None
        # publish_ids recorded by this process: a post left in doubt right after one was
        # recorded is looked up by it, though the caller's Post predates the checkpoint.
        self._recorded: dict[int, str] = {}

    # -- tokens: refreshed before they expire and once on an auth error --

    def _tokens(self) -> dict[str, Any]:
        assert self.env.tokens is not None
        tokens = self.env.tokens.get(self.account.name)
        if not tokens.get("access_token"):
            raise Reauthorize(
                f"{self.account.name}: no TikTok token: run `broadcaster auth tiktok --account "
                f"{self.account.name}`"
            )
        return tokens

    def access_token(self) -> str:
        tokens = self._tokens()
        expires_at = float(tokens.get("expires_at", 0) or 0)
        if expires_at and expires_at - time.time() < REFRESH_MARGIN:
            tokens = self.refresh()
        return str(tokens["access_token"])

    def refresh(self) -> dict[str, Any]:
        """Exchange the refresh token; the new access and refresh tokens are stored together."""
        tokens = self._tokens()
        secrets = self.env.secrets
        form = {
            "client_key": secrets.get(
                self.settings.client_key, what=f"{self.account.name} client_key"
            ),
            "client_secret": secrets.get(
                self.settings.client_secret, what=f"{self.account.name} client_secret"
            ),
            "grant_type": "refresh_token",
            "refresh_token": tokens.get("refresh_token", ""),
        }
        try:
            resp = self.session.post(f"{self.base}/v2/oauth/token/", data=form)
        except requests.RequestException as exc:
            raise RetryLater(f"tiktok token refresh: {type(exc).__name__}") from None
        try:
            body = resp.json()
        except ValueError:
            body = {}
        if resp.status_code >= 500 or resp.status_code == 429:
            # TikTok's trouble, not the refresh token's: the old tokens stay valid meanwhile.
            raise RetryLater(
                f"tiktok token refresh: HTTP {resp.status_code}",
                delay=retry_after(resp.headers, now=self.env.clock.now().timestamp()),
            )
        if resp.status_code != 200 or "access_token" not in body:
            error = body.get("error") or f"HTTP {resp.status_code}"
            raise Reauthorize(
                f"tiktok token refresh failed ({error}): run `broadcaster auth tiktok --account "
                f"{self.account.name}`"
            )
        new = {
            "access_token": body["access_token"],
            "refresh_token": body.get("refresh_token", tokens.get("refresh_token")),
            "expires_at": time.time() + float(body.get("expires_in", 86400)),
            "refresh_expires_at": time.time() + float(body.get("refresh_expires_in", 0) or 0),
            "open_id": body.get("open_id", tokens.get("open_id")),
        }
        assert self.env.tokens is not None
        self.env.tokens.put(self.account.name, new)
        return new

    # -- calls --

    def _post(self, path: str, payload: dict[str, Any], action: str) -> dict[str, Any]:
        """POST a JSON call, refreshing the token once on an auth error; returns `data`."""
        for attempt in (1, 2):
            headers = {
                "Authorization": f"Bearer {self.access_token()}",
                "Content-Type": "application/json; charset=UTF-8",
            }
            try:
                resp = self.session.post(f"{self.base}{path}", json=payload, headers=headers)
            except requests.RequestException as exc:
                error = network_error(exc, f"tiktok {action}")
                if isinstance(error, InDoubt) and action not in CREATES:
                    error = RetryLater(str(error))  # a read: nothing was created
                raise error from None
            try:
                body = resp.json()
                detail = body.get("error") or {}
                code = str(detail.get("code", ""))
            except (ValueError, AttributeError):
                body, detail, code = {}, {}, ""
            if code == "ok" and resp.status_code == 200:
                return body.get("data") or {}
            if code in AUTH_CODES and attempt == 1:
                self.refresh()
                continue
            raise self._map(code, str(detail.get("message", "")), resp, action)
        raise AssertionError("unreachable")

    def _map(self, code: str, message: str, resp: requests.Response, action: str) -> PublishError:
        status = resp.status_code
        where = f"tiktok {action}: {code or 'unreadable answer'} (HTTP {status})"
        detail = f"{where}: {message[:200]}" if message else where
        wait = retry_after(resp.headers, now=self.env.clock.now().timestamp())
        if code in AUTH_CODES or status == 401:
            return Reauthorize(
                f"{detail}; run `broadcaster auth tiktok --account {self.account.name}`"
            )
        if status >= 500:
            # Whatever the code says, even one never seen: TikTok failed, the post did not.
            if action in CREATES and may_have_acted(status):
                return InDoubt(
                    f"{detail}: TikTok failed after receiving the post and gave no publish_id"
                )
            return RetryLater(detail, delay=wait)
        if code in RETRY_CODES or status == 429:
            return RetryLater(detail, delay=wait)
        if code == "spam_risk_too_many_posts":
            # The creator's daily cap (about 15 posts a day): no use asking again soon.
            return RetryLater(f"{detail} (daily post cap reached)", delay=wait or 3600)
        if code == "unaudited_client_can_only_post_to_private_accounts":
            return Rejected(
                f"{detail}: this TikTok app has not passed TikTok's audit, so it can only post "
                'privately; set privacy_level = "SELF_ONLY" or complete the audit'
            )
        if not code:
            # Not TikTok's answer (a cut body, a proxy's page): no verdict on the post. A 200
            # may still have come after TikTok acted.
            if action in CREATES and status == 200:
                return InDoubt(f"{where}: the answer could not be read")
            return RetryLater(f"{where}: not an answer from TikTok", delay=wait)
        # TikTok's own refusal of this request (invalid_param, privacy_level_option_mismatch,
        # url_ownership_unverified, spam_risk_user_banned_from_posting, ...): final.
        return Rejected(detail)

    def creator_info(self) -> dict[str, Any]:
        """The creator's posting options; asked before posting, and kept a few minutes so a
        burst of posts does not spend the endpoint's 20 calls a minute."""
        now = self.env.clock.now().timestamp()
        if self._info is not None and now - self._info[0] < CREATOR_INFO_TTL:
            return self._info[1]
        info = self._post("/v2/post/publish/creator_info/query/", {}, "creator info")
        self._info = (now, info)
        return info

    def _media_url(self, path: str) -> str:
        """Copy the card into the public folder and return its public URL."""
        src = Path(path)
        target = Path(self.settings.media_dir) / src.name
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            tmp = target.with_name(target.name + ".part")
            shutil.copyfile(src, tmp)
            tmp.replace(target)
        return f"{self.settings.media_base_url.rstrip('/')}/{quote(src.name)}"

    def publish(self, post: Post) -> PublishedRef:
        if post.checkpoint:
            # An earlier attempt was accepted and is still processing: follow it, never
            # start a second post.
            return self._wait(post.checkpoint)
        videos = [m for m in post.media if m.lower().endswith(".mp4")]
        if videos:
            return self.publish_video(post, videos[0])
        if not post.media:
            raise Rejected("tiktok: a photo post needs an image (the result card failed?)")
        info = self.creator_info()
        allowed = info.get("privacy_level_options") or []
        if self.settings.privacy_level not in allowed:
            raise Rejected(
                f"tiktok: privacy_level {self.settings.privacy_level} is not allowed for this "
                f"creator (allowed: {', '.join(allowed) or 'none'})"
            )
        payload = {
            "media_type": "PHOTO",
            "post_mode": "DIRECT_POST",
            "post_info": {
                "title": post.title or "",
                "description": post.text,
                "privacy_level": self.settings.privacy_level,
                "disable_comment": self.settings.disable_comment,
                "auto_add_music": False,
            },
            "source_info": {
                "source": "PULL_FROM_URL",
                "photo_images": [self._media_url(p) for p in post.media],
                "photo_cover_index": 0,
            },
        }
        data = self._post("/v2/post/publish/content/init/", payload, "post")
        publish_id = data.get("publish_id")
        if not publish_id:
            raise InDoubt("tiktok post: the answer carried no publish_id")
        self._checkpoint(post, str(publish_id))
        return self._wait(str(publish_id))

    def _checkpoint(self, post: Post, publish_id: str) -> None:
        self.env.checkpoint(post.outbox_id, publish_id)
        self._recorded[post.outbox_id] = publish_id

    # -- video posts (the live channel's short result videos, broadcaster/live/shorts.py) --

    def publish_video(self, post: Post, video: str) -> PublishedRef:
        """Post the MP4 `video` with `post.text` as its caption: video/init with FILE_UPLOAD,
        then the file in chunks (PUT with Content-Range) to the upload_url TikTok gives.

        The publish_id is recorded once the upload is complete: before that TikTok cannot
        publish anything, so a retry safely starts a new upload."""
        if post.checkpoint:
            return self._wait(post.checkpoint)
        size = Path(video).stat().st_size
        info = self.creator_info()
        allowed = info.get("privacy_level_options") or []
        if self.settings.privacy_level not in allowed:
            raise Rejected(
                f"tiktok: privacy_level {self.settings.privacy_level} is not allowed for this "
                f"creator (allowed: {', '.join(allowed) or 'none'})"
            )
        chunk, count = video_chunks(size)
        payload = {
            "post_info": {
                "title": post.text,
                "privacy_level": self.settings.privacy_level,
                "disable_comment": self.settings.disable_comment,
                "disable_duet": False,
                "disable_stitch": False,
                "video_cover_timestamp_ms": 1000,
            },
            "source_info": {
                "source": "FILE_UPLOAD",
                "video_size": size,
                "chunk_size": chunk,
                "total_chunk_count": count,
            },
        }
        data = self._post("/v2/post/publish/video/init/", payload, "video post")
        publish_id, upload_url = data.get("publish_id"), data.get("upload_url")
        if not publish_id or not upload_url:
            raise RetryLater("tiktok video post: the answer carried no publish_id or upload_url")
        self._upload(post, video, str(upload_url), str(publish_id), size, (chunk, count))
        self._checkpoint(post, str(publish_id))
        return self._wait(str(publish_id))

    def _upload(
        self,
        post: Post,
        video: str,
        url: str,
        publish_id: str,
        size: int,
        chunking: tuple[int, int],
    ) -> None:
        """PUT the file in chunks. A failure before the last chunk leaves nothing TikTok can
        publish (RetryLater starts a new upload); once the last chunk may have arrived, the
        post is in doubt and its publish_id is recorded so that it can be looked up."""
        chunk, count = chunking
        with open(video, "rb") as fh:
            for index in range(count):
                first = index * chunk
                last = size - 1 if index == count - 1 else first + chunk - 1
                fh.seek(first)
                body = fh.read(last - first + 1)
                headers = {
                    "Content-Type": "video/mp4",
                    "Content-Length": str(len(body)),
                    "Content-Range": f"bytes {first}-{last}/{size}",
                }
                final = index == count - 1
                where = f"tiktok video upload: chunk {index + 1} of {count}"
                try:
                    resp = self.session.put(url, data=body, headers=headers)
                except requests.RequestException as exc:
                    error = network_error(exc, where)
                    if final and isinstance(error, InDoubt):
                        self._checkpoint(post, publish_id)
                        raise error from None
                    raise RetryLater(f"{where}: {type(exc).__name__}") from None
                expected = 201 if final else 206
                if resp.status_code in (expected, 200, 201):
                    continue
                if final and may_have_acted(resp.status_code):
                    self._checkpoint(post, publish_id)
                    raise InDoubt(f"{where}: HTTP {resp.status_code} after the whole file")
                raise RetryLater(f"{where}: HTTP {resp.status_code}")

    def _status(self, publish_id: str) -> dict[str, Any]:
        return self._post("/v2/post/publish/status/fetch/", {"publish_id": publish_id}, "status")

    def _wait(self, publish_id: str) -> PublishedRef:
        deadline = time.monotonic() + self.settings.status_wait
        while True:
            data = self._status(publish_id)
            status = data.get("status")
            if status == "PUBLISH_COMPLETE":
                ids = data.get("publicaly_available_post_id") or []
                post_id = str(ids[0]) if ids else publish_id
                return PublishedRef(platform_id=post_id, published_at=self.env.clock.now())
            if status == "FAILED":
                raise Rejected(f"tiktok post failed: {data.get('fail_reason', 'no reason given')}")
            if time.monotonic() > deadline:
                raise InDoubt(f"tiktok post still {status} after {self.settings.status_wait:g} s")
            time.sleep(self.settings.status_interval)

    def find(self, post: Post) -> PublishedRef | None:
        """Only a post whose publish_id was recorded can be looked up (private posts do not
        list); without one, TikTok cannot tell, so the caller holds the post for an operator."""
        checkpoint = post.checkpoint or self._recorded.get(post.outbox_id)
        if checkpoint is None:
            raise NotImplementedError(
                "tiktok cannot look up a post without its publish_id (TikTok gave none); look at "
                f"the account: `broadcaster outbox mark-sent {post.outbox_id}` if the post is "
                f"there, `broadcaster outbox approve {post.outbox_id}` to send it again"
            )
        data = self._status(checkpoint)
        status = data.get("status")
        if status == "PUBLISH_COMPLETE":
            ids = data.get("publicaly_available_post_id") or []
            return PublishedRef(
                platform_id=str(ids[0]) if ids else checkpoint,
                published_at=self.env.clock.now(),
            )
        if status == "FAILED":
            return None
        raise NotFoundYet(f"tiktok post {checkpoint} is still {status}")

    def close(self) -> None:
        self.session.close()

    @classmethod
    def emulator_account(cls, base: str, workdir: Path) -> EmulatorAccount:
        media = workdir / "tiktok-media"
        return EmulatorAccount(
            settings={
                "client_key": "EMU_TT_CLIENT_KEY",
                "client_secret": "EMU_TT_CLIENT_SECRET",
                "privacy_level": "SELF_ONLY",
                "media_base_url": f"{base}/_emulator/media",
                "media_dir": str(media),
                "api_base": base,
                "status_interval": 0.05,
            },
            secrets={
                "EMU_TT_CLIENT_KEY": "emu-client-key",
                "EMU_TT_CLIENT_SECRET": "emu-client-secret",
            },
            tokens={
                "access_token": "act.emu-initial",
                "refresh_token": "rft.emu-initial",
                "expires_at": time.time() + 86400,
                "open_id": "emu-open-id",
            },
        )

    @classmethod
    def doctor(cls, account: AccountConfig, env: PublisherEnv) -> str:
        pub = cls(account, env)
        info = pub.creator_info()
        allowed = info.get("privacy_level_options") or []
        if pub.settings.privacy_level not in allowed:
            raise Rejected(
                f"creator @{info.get('creator_username')}: privacy_level "
                f"{pub.settings.privacy_level} not allowed "
                f"(allowed: {', '.join(allowed) or 'none'})"
            )
        return (
            f"creator @{info.get('creator_username')} ready; privacy {pub.settings.privacy_level} "
            f"allowed"
        )

    @classmethod
    def authorize(cls, account: AccountConfig, env: PublisherEnv, prompt: Any) -> dict[str, Any]:
        """TikTok's OAuth code flow: open the printed address, approve, paste the `code` from the
        address TikTok sends you back to. The tokens are stored, and refreshed from then on."""
        s = Settings.model_validate(account.settings)
        key = env.secrets.get(s.client_key, what=f"{account.name} client_key")
        redirect = prompt("Redirect URI registered for the app")
        print(
            f"Open: {AUTHORIZE_URL}?client_key={quote(key)}&scope=user.info.basic,video.publish"
            f"&response_type=code&redirect_uri={quote(redirect, safe='')}&state=broadcaster"
        )
        code = prompt("The code parameter from the address you were sent back to", hide=True)
        session = platform_session(s.timeout)
        form = {
            "client_key": key,
            "client_secret": env.secrets.get(s.client_secret, what=f"{account.name} client_secret"),
            "code": code,
            "grant_type": "authorization_code",
            "redirect_uri": redirect,
        }
        try:
            resp = session.post(f"{s.api_base.rstrip('/')}/v2/oauth/token/", data=form)
            body = resp.json()
        except (requests.RequestException, ValueError) as exc:
            raise RetryLater(f"tiktok auth: {type(exc).__name__}") from None
        if "access_token" not in body:
            raise Rejected(
                f"tiktok auth: {body.get('error', 'refused')}: {body.get('error_description', '')}"
            )
        return {
            "access_token": body["access_token"],
            "refresh_token": body.get("refresh_token"),
            "expires_at": time.time() + float(body.get("expires_in", 86400)),
            "open_id": body.get("open_id"),
        }


AUTHORIZE_URL = "https://www.tiktok.com/v2/auth/authorize/"


MIN_CHUNK = 5 * 1024 * 1024  # TikTok: chunks of 5 MB to 64 MB; a smaller file goes whole
MAX_CHUNK = 64 * 1024 * 1024


def video_chunks(size: int, preferred: int = 10 * 1024 * 1024) -> tuple[int, int]:
    """(chunk_size, total_chunk_count) for a file of `size` bytes, as video/init wants them:
    whole below 5 MB or below one chunk, else chunks of `preferred` bytes with the remainder in
    the last one (TikTok wants total_chunk_count = floor(video_size / chunk_size))."""
    chunk = max(MIN_CHUNK, min(MAX_CHUNK, preferred))
    if size <= MIN_CHUNK or size < chunk:
        return size, 1
    return chunk, size // chunk
