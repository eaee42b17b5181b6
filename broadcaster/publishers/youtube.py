"""YouTube live chat through google-api-python-client (and Shorts uploads when a video exists).

Posts are chat messages in the channel's active live broadcast. Every call is counted against
the daily quota (10,000 units by default, reset at midnight Pacific time) in the database, so a
restart does not forget what was spent; a call that the remaining budget cannot pay for waits
for the reset instead of being refused by YouTube.

The transport is requests, not httplib2. google-api-python-client sends through httplib2 by
default, and httplib2 re-sends a request by itself when the connection closes before the answer:
in `Http._conn_request`, a `BadStatusLine` (which `RemoteDisconnected`, the server hanging up
after reading the request, is) on the first try resets the try counter and sends the request
again, whatever `httplib2.RETRIES` says, and `execute(num_retries=0)` cannot reach that loop. A
chat message accepted just before the connection dropped was posted twice. Instead,
`SessionHttp` gives the client library httplib2's `request()` over google-auth's
`AuthorizedSession` (a requests session that adds the OAuth token, refreshes it before it
expires and once on a 401, which YouTube answers without acting), mounted with the same
transport as the other adapters (broadcaster/publishers/http.py: no retries, a timeout, no
redirects). A dropped connection after sending is then one failed request: the post is in doubt
and is looked up in the chat (`find`) before anything is sent again. This was preferred to an
httplib2.Http subclass because that would mean overriding httplib2's private `_conn_request`
(and its connection, proxy, TLS and decompression handling) and keeping it in step with every
httplib2 release; google-auth's requests transport is public and maintained, and all four
adapters now share one audited transport (and `responses` sees YouTube's calls in tests).
`execute(num_retries=0)` stays: googleapiclient's own retry loop would resend POSTs too.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo

from pydantic import AfterValidator, ConfigDict, Field

from broadcaster.core.config import AccountConfig
from broadcaster.domain.limits import TextLimit
from broadcaster.domain.quota import Window
from broadcaster.publishers.base import (
    Capabilities,
    EmulatorAccount,
    InDoubt,
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
    is_loopback,
    may_have_acted,
    network_error,
    platform_session,
    require_https,
    retry_after,
)

if TYPE_CHECKING:
    import google.auth.exceptions as auth_errors
    import google.auth.transport.requests as google_requests
    import google.oauth2.credentials as google_credentials
    import googleapiclient.discovery as discovery
    import googleapiclient.errors as api_errors
    import googleapiclient.http as api_http
    import httplib2
    import requests
else:  # loaded when an adapter first uses them (LazyModule says why)
    auth_errors = LazyModule("google.auth.exceptions")
    google_requests = LazyModule("google.auth.transport.requests")
    google_credentials = LazyModule("google.oauth2.credentials")
    discovery = LazyModule("googleapiclient.discovery")
    api_errors = LazyModule("googleapiclient.errors")
    api_http = LazyModule("googleapiclient.http")
    httplib2 = LazyModule("httplib2")
    requests = LazyModule("requests")

API = "https://www.googleapis.com"
TOKEN_URI = "https://oauth2.googleapis.com/token"  # noqa: S105 - a URL, not a secret
SCOPE = "https://www.googleapis.com/auth/youtube.force-ssl"
PACIFIC = ZoneInfo("America/Los_Angeles")

# Quota units per call (YouTube Data API v3).
COST = {
    "liveBroadcasts.list": 1,
    "liveChatMessages.insert": 20,
    "liveChatMessages.list": 5,
    "liveChatMessages.delete": 50,
    "videos.insert": 1600,
    "channels.list": 1,
    "playlistItems.list": 1,
    # The live results channel's broadcast lifecycle (broadcaster/live/youtube_live.py).
    "liveStreams.list": 1,
    "liveStreams.insert": 50,
    "liveBroadcasts.insert": 50,
    "liveBroadcasts.bind": 50,
    "liveBroadcasts.transition": 50,
}
CAPABILITIES = Capabilities(
    can_delete=True,
    can_find=True,
    media=("video/mp4",),
    text=TextLimit(200, "chars"),
    # 10,000 quota units a day at 20 units a chat message, less a margin for look-ups.
    quota=(Window(posts=480, seconds=86400),),
    # A Short: videos.insert costs 1,600 units, as much as 80 chat messages.
    video=VideoSpec(
        cost=COST["videos.insert"] // COST["liveChatMessages.insert"],
        text=TextLimit(5000, "chars"),  # the video's description
    ),
)

CHAT_GONE = {"liveChatEnded", "liveChatNotFound", "liveChatDisabled"}
QUOTA = {"quotaExceeded", "dailyLimitExceeded"}
RATE = {"rateLimitExceeded", "userRateLimitExceeded"}


class Settings(VideoOptions):
    model_config = ConfigDict(extra="forbid")

    client_id: str  # names of the secrets holding the OAuth client's id and secret
    client_secret: str
    # Name of the secret holding a refresh token; `broadcaster auth youtube` stores one instead.
    refresh_token: str | None = None
    live_chat_id: str | None = None  # default: the chat of the channel's active broadcast
    api_base: Annotated[str, AfterValidator(require_https)] = API
    # default: Google's, or <api_base>/token for another base
    token_uri: Annotated[str, AfterValidator(require_https)] | None = None
    timeout: float = Field(default=20, gt=0)
    daily_quota: int = Field(default=10_000, gt=0)

    @property
    def token_endpoint(self) -> str:
        if self.token_uri:
            return self.token_uri
        return TOKEN_URI if self.api_base == API else f"{self.api_base.rstrip('/')}/token"


def next_reset(now: datetime) -> datetime:
    """Midnight Pacific time after `now`, when the daily quota resets."""
    local = now.astimezone(PACIFIC)
    return (local + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)


class SessionHttp:
    """What google-api-python-client calls on its `http` object (httplib2.Http's `request`),
    over a requests session: one request per call, never re-sent, redirects not followed.
    Network failures surface as requests' exceptions."""

    def __init__(self, session: requests.Session, timeout: float) -> None:
        self.session = session
        self.timeout = timeout

    def request(
        self,
        uri: str,
        method: str = "GET",
        body: bytes | str | None = None,
        headers: dict[str, str] | None = None,
        redirections: int = 0,
        connection_type: Any = None,
    ) -> tuple[httplib2.Response, bytes]:
        response = self.session.request(
            method,
            uri,
            data=body,
            headers=headers,
            timeout=self.timeout,
            allow_redirects=False,
        )
        try:
            content = response.content
        finally:
            response.close()
        # requests has already decoded the body, as httplib2 would have.
        info: dict[str, str] = {
            k.lower(): v for k, v in response.headers.items() if k.lower() != "content-encoding"
        }
        info["status"] = str(response.status_code)
        resp = httplib2.Response(info)
        resp.reason = response.reason or ""
        return resp, content

    def close(self) -> None:
        self.session.close()


class YouTubePublisher(Publisher):
    platform = "youtube"
    settings_model = Settings
    capabilities = CAPABILITIES

    def __init__(self, account: AccountConfig, env: PublisherEnv) -> None:
        self.account = account
        self.env = env
        self.settings = s = Settings.model_validate(account.settings)
        stored = env.tokens.get(account.name).get("refresh_token") if env.tokens else None
        refresh = stored or (
            env.secrets.get(s.refresh_token, what=f"{account.name} refresh_token")
            if s.refresh_token
            else None
        )
        if not refresh:
            raise Reauthorize(
                f"{account.name}: no YouTube refresh token: run `broadcaster auth youtube "
                f"--account {account.name}`"
            )
        self.credentials = google_credentials.Credentials(
            token=None,
            refresh_token=refresh,
            token_uri=s.token_endpoint,
            client_id=env.secrets.get(s.client_id, what=f"{account.name} client_id"),
            client_secret=env.secrets.get(s.client_secret, what=f"{account.name} client_secret"),
            scopes=[SCOPE],
        )
        # The token refresh goes through the same kind of session (a timeout, no retries).
        authed = google_requests.AuthorizedSession(
            self.credentials, auth_request=google_requests.Request(platform_session(s.timeout))
        )
        self.http = SessionHttp(platform_session(s.timeout, session=authed), s.timeout)
        self.api = discovery.build(
            "youtube",
            "v3",
            http=self.http,
            static_discovery=True,
            cache_discovery=False,
            client_options={"api_endpoint": s.api_base},
        )
        self._chat_id = s.live_chat_id
        self._channel_id: str | None = None

    # -- quota --

    def _quota_key(self) -> str:
        return f"quota:{self.account.name}"

    def _now(self) -> datetime:
        return self.env.clock.now().astimezone(PACIFIC)

    def quota_used(self) -> tuple[str, int]:
        day = self._now().date().isoformat()
        stored = self.env.state.get_state(self._quota_key()) or {}
        return day, int(stored.get("used", 0)) if stored.get("day") == day else 0

    def _spend(self, method: str) -> None:
        day, used = self.quota_used()
        cost = COST[method]
        if used + cost > self.settings.daily_quota:
            wait = (next_reset(self._now()) - self._now()).total_seconds()
            raise RetryLater(
                f"youtube: daily quota spent ({used} of {self.settings.daily_quota} units)",
                delay=max(60.0, wait),
            )
        self.env.state.put_state(self._quota_key(), {"day": day, "used": used + cost})

    def _exhaust(self) -> None:
        day, _ = self.quota_used()
        self.env.state.put_state(self._quota_key(), {"day": day, "used": self.settings.daily_quota})

    # -- calls --

    def _execute(self, method: str, request: Any, action: str) -> Any:
        self._spend(method)
        try:
            return request.execute(num_retries=0)
        except api_errors.HttpError as exc:
            raise self._map(exc, action) from None
        except auth_errors.RefreshError as exc:
            raise Reauthorize(
                f"youtube {action}: token refresh failed ({_first_line(exc)}); run "
                f"`broadcaster auth youtube --account {self.account.name}`"
            ) from None
        except auth_errors.TransportError as exc:
            # The token refresh did not get through: nothing was posted.
            raise RetryLater(f"youtube {action}: token refresh: {type(exc).__name__}") from None
        except requests.RequestException as exc:
            raise self._network(exc, action) from None

    def _network(self, exc: requests.RequestException, action: str) -> PublishError:
        error = network_error(exc, f"youtube {action}")
        if isinstance(error, InDoubt) and action != "post":
            return RetryLater(str(error))  # a read or a look-up created nothing
        return error

    def _map(self, exc: api_errors.HttpError, action: str) -> PublishError:
        status = int(exc.resp.status) if exc.resp is not None else 0
        reason = _reason(exc)
        where = f"youtube {action}: HTTP {status} {reason}".rstrip()
        # Google says how long to wait in Retry-After on 429 and 503, when it says it at all.
        wait = retry_after(exc.resp, now=self.env.clock.now().timestamp())
        if reason in QUOTA:
            self._exhaust()
            wait = (next_reset(self._now()) - self._now()).total_seconds()
            return RetryLater(f"{where}: daily quota exceeded", delay=wait)
        if reason in RATE or status == 429:
            return RetryLater(f"{where}: rate limited", delay=wait)
        if reason in CHAT_GONE:
            return RetryLater(f"{where}: the live chat is gone", delay=wait)
        if status == 401:
            return Reauthorize(
                f"{where}: credentials refused; run `broadcaster auth youtube --account "
                f"{self.account.name}`"
            )
        if status >= 500 or status == 408:
            if action == "post" and may_have_acted(status):
                return InDoubt(f"{where}: server error after the message was sent")
            return RetryLater(f"{where}: server error", delay=wait)
        if 300 <= status < 400:
            return RetryLater(f"{where}: redirect not followed (check the account's api_base)")
        return Rejected(where)

    def live_chat_id(self, *, fresh: bool = False) -> str:
        """The chat of the channel's active live broadcast (looked up once, and again when the
        chat it had is gone)."""
        if self._chat_id and not fresh:
            return self._chat_id
        request = self.api.liveBroadcasts().list(
            part="snippet", broadcastStatus="active", broadcastType="all"
        )
        result = self._execute("liveBroadcasts.list", request, "find broadcast")
        for item in result.get("items", []):
            chat = item.get("snippet", {}).get("liveChatId")
            if chat:
                self._chat_id = chat
                self._channel_id = item.get("snippet", {}).get("channelId")
                return chat
        raise RetryLater("youtube: the channel has no active live broadcast with a chat")

    def publish(self, post: Post) -> PublishedRef:
        videos = [m for m in post.media if m.lower().endswith(".mp4")]
        if videos:
            return self.upload_short(videos[0], post)
        for attempt in (1, 2):
            body = {
                "snippet": {
                    "liveChatId": self.live_chat_id(fresh=attempt == 2),
                    "type": "textMessageEvent",
                    "textMessageDetails": {"messageText": post.text},
                }
            }
            request = self.api.liveChatMessages().insert(part="snippet", body=body)
            try:
                result = self._execute("liveChatMessages.insert", request, "post")
            except RetryLater as exc:
                if "live chat is gone" in str(exc) and attempt == 1:
                    continue  # the broadcast may have restarted with a new chat
                raise
            return PublishedRef(platform_id=str(result["id"]), published_at=self.env.clock.now())
        raise AssertionError("unreachable")

    def upload_short(self, path: str, post: Post) -> PublishedRef:
        body = {
            "snippet": {"title": (post.title or post.text)[:100], "description": post.text},
            "status": {"privacyStatus": "public", "selfDeclaredMadeForKids": False},
        }
        media = api_http.MediaFileUpload(path, mimetype="video/mp4", resumable=True)
        request = self.api.videos().insert(part="snippet,status", body=body, media_body=media)
        request.uri = _upload_scheme(request.uri, self.settings.api_base)
        self._spend("videos.insert")
        response = None
        try:
            while response is None:
                _, response = request.next_chunk(num_retries=0)
        except api_errors.HttpError as exc:
            raise self._map(exc, "post") from None
        except auth_errors.RefreshError as exc:
            raise Reauthorize(
                f"youtube upload: token refresh failed ({_first_line(exc)}); run "
                f"`broadcaster auth youtube --account {self.account.name}`"
            ) from None
        except auth_errors.TransportError as exc:
            raise RetryLater(f"youtube upload: token refresh: {type(exc).__name__}") from None
        except requests.RequestException as exc:
            raise self._network(exc, "post") from None
        video_id = str(response["id"])
        return PublishedRef(
            platform_id=f"video:{video_id}",
            published_at=self.env.clock.now(),
            url=f"https://www.youtube.com/shorts/{video_id}",
        )

    def find(self, post: Post) -> PublishedRef | None:
        if any(m.lower().endswith(".mp4") for m in post.media):
            return self._find_short(post)
        request = self.api.liveChatMessages().list(
            liveChatId=self.live_chat_id(), part="snippet,authorDetails", maxResults=2000
        )
        result = self._execute("liveChatMessages.list", request, "look-up")
        for item in result.get("items", []):
            snippet = item.get("snippet", {})
            author = item.get("authorDetails", {})
            own = author.get("isChatOwner") or (
                self._channel_id and author.get("channelId") == self._channel_id
            )
            text = snippet.get("textMessageDetails", {}).get("messageText") or snippet.get(
                "displayMessage"
            )
            if own and text is not None and " ".join(text.split()) == " ".join(post.text.split()):
                return PublishedRef(platform_id=str(item["id"]), published_at=self.env.clock.now())
        return None

    def _find_short(self, post: Post) -> PublishedRef | None:
        """An upload in doubt: looked for among the channel's latest uploads by its
        description (the post's text), 2 quota units."""
        request = self.api.channels().list(part="contentDetails", mine=True)
        result = self._execute("channels.list", request, "look-up")
        items = result.get("items") or []
        playlists = (items[0].get("contentDetails") or {}).get("relatedPlaylists") if items else {}
        uploads = (playlists or {}).get("uploads")
        if not uploads:
            raise RetryLater("youtube look-up: the channel named no uploads playlist")
        request = self.api.playlistItems().list(part="snippet", playlistId=uploads, maxResults=50)
        result = self._execute("playlistItems.list", request, "look-up")
        wanted = " ".join(post.text.split())
        for item in result.get("items", []):
            snippet = item.get("snippet") or {}
            video_id = (snippet.get("resourceId") or {}).get("videoId")
            if video_id and " ".join(str(snippet.get("description", "")).split()) == wanted:
                return PublishedRef(
                    platform_id=f"video:{video_id}",
                    published_at=self.env.clock.now(),
                    url=f"https://www.youtube.com/shorts/{video_id}",
                )
        return None

    def delete(self, ref: PublishedRef) -> None:
        if ref.platform_id.startswith("video:"):
            raise NotImplementedError("deleting an uploaded Short is left to the operator")
        request = self.api.liveChatMessages().delete(id=ref.platform_id)
        self._execute("liveChatMessages.delete", request, "delete")

    def close(self) -> None:
        self.http.close()

    @classmethod
    def emulator_account(cls, base: str, workdir: Path) -> EmulatorAccount:
        """Settings, secrets and tokens that point an account at the local emulator."""
        return EmulatorAccount(
            settings={
                "client_id": "EMU_YT_CLIENT_ID",
                "client_secret": "EMU_YT_CLIENT_SECRET",
                "api_base": base,
            },
            secrets={
                "EMU_YT_CLIENT_ID": "emu-client-id",
                "EMU_YT_CLIENT_SECRET": "emu-client-secret",
            },
            tokens={"refresh_token": "emu-youtube-refresh-token"},
        )

    @classmethod
    def doctor(cls, account: AccountConfig, env: PublisherEnv) -> str:
        pub = cls(account, env)
        chat = pub.live_chat_id(fresh=True)
        _day, used = pub.quota_used()
        return f"live chat {chat} active; quota used today {used}/{pub.settings.daily_quota} units"

    @classmethod
    def authorize(cls, account: AccountConfig, env: PublisherEnv, prompt: Any) -> dict[str, Any]:
        """Google's installed-app flow: a browser approves access once, a refresh token is kept."""
        # Only `broadcaster auth` needs the OAuth flow (and its web server): not the daemon.
        from google_auth_oauthlib.flow import InstalledAppFlow

        s = Settings.model_validate(account.settings)
        client = {
            "installed": {
                "client_id": env.secrets.get(s.client_id, what=f"{account.name} client_id"),
                "client_secret": env.secrets.get(
                    s.client_secret, what=f"{account.name} client_secret"
                ),
                "auth_uri": "https://accounts.google.com/o/oauth2/auth",
                "token_uri": s.token_endpoint,
                "redirect_uris": ["http://localhost"],
            }
        }
        if is_loopback(urlsplit(s.token_endpoint).hostname):
            # The local emulator speaks plain HTTP; oauthlib rightly refuses that anywhere else.
            os.environ["OAUTHLIB_INSECURE_TRANSPORT"] = "1"
        flow = InstalledAppFlow.from_client_config(client, scopes=[SCOPE])
        try:
            credentials = flow.run_local_server(
                port=0,
                open_browser=False,
                prompt="consent",
                access_type="offline",
                authorization_prompt_message=(
                    "Open this address in a browser and approve access:\n{url}"
                ),
            )
        except Exception as exc:  # oauthlib and the local server raise many kinds
            raise Rejected(f"youtube auth: {type(exc).__name__}: {_first_line(exc)}") from None
        if not credentials.refresh_token:
            raise Rejected(
                "youtube auth: Google returned no refresh token; revoke the app's access "
                "in the Google account and run this again"
            )
        return {"refresh_token": credentials.refresh_token}


def _upload_scheme(uri: str, api_base: str) -> str:
    """The upload address with the API base's scheme: google-api-python-client keeps the
    discovery document's https for uploads, which the local emulator (plain http, allowed on
    loopback only) does not speak."""
    base = urlsplit(api_base)
    parts = urlsplit(uri)
    if base.scheme == "http" and parts.netloc == base.netloc:
        return urlunsplit(parts._replace(scheme="http"))
    return uri


def _reason(exc: api_errors.HttpError) -> str:
    try:
        body = json.loads(exc.content)
        errors = body.get("error", {}).get("errors") or []
        if errors:
            return str(errors[0].get("reason", ""))
        return str(body.get("error", {}).get("status", ""))
    except (ValueError, AttributeError, TypeError):
        return ""


def _first_line(exc: BaseException) -> str:
    text = str(exc.args[0]) if exc.args else type(exc).__name__
    return text.splitlines()[0][:120]
