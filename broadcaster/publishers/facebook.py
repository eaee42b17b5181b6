"""Facebook Pages through the Graph API, with facebook-sdk.

Text posts go to `/{page-id}/feed`, posts with a card to `/{page-id}/photos`. The library only
accepts old Graph versions, so the configured version is set on the client after construction;
its requests session carries our transport (timeout, no retries, optional emulator base) and a
response hook that keeps the Business Use Case rate-limit headers.
"""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from pathlib import Path
from typing import Any

import facebook
import requests
from pydantic import BaseModel, ConfigDict, Field

from broadcaster.budget import Window, blocked_key
from broadcaster.config import AccountConfig
from broadcaster.limits import TextLimit
from broadcaster.publishers.base import (
    Capabilities,
    CardSpec,
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
)
from broadcaster.publishers.http import network_error, platform_session

log = logging.getLogger(__name__)

GRAPH = "https://graph.facebook.com"

CAPABILITIES = Capabilities(
    can_delete=True,
    can_edit=True,
    can_find=True,
    media=("image/png", "image/jpeg"),
    text=TextLimit(63206, "chars"),
    card=CardSpec("PNG", 1080, 1080),
    # Business Use Case limits are dynamic; stay well inside them. The platform's
    # estimated_time_to_regain_access pauses the account when it speaks.
    quota=(Window(posts=200, seconds=3600),),
)

THROTTLED = {4, 17, 32, 613, 80001, 80004}
PERMISSION = {10, *range(200, 300)}


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    page_id: str = Field(min_length=1)
    # Name of the secret holding the Page access token; `broadcaster auth facebook` stores one
    # in the token store instead.
    page_token: str | None = None
    app_id: str | None = None  # for `broadcaster auth facebook`
    app_secret: str | None = None  # name of the secret holding the app secret
    graph_version: str = Field(default="v25.0", pattern=r"^v\d+\.\d+$")
    api_base: str = GRAPH
    timeout: float = Field(default=20, gt=0)
    find_window: int = Field(default=3600, gt=0)  # seconds of recent posts searched after a crash


def page_token(settings: Settings, account: AccountConfig, env: PublisherEnv) -> str:
    stored = env.tokens.get(account.name).get("page_token") if env.tokens else None
    if stored:
        return str(stored)
    if settings.page_token is None:
        raise Reauthorize(
            f"{account.name}: no Page token: run `broadcaster auth facebook --account "
            f"{account.name}` or set page_token to the name of a secret"
        )
    return env.secrets.get(settings.page_token, what=f"{account.name} page_token")


class FacebookPublisher(Publisher):
    capabilities = CAPABILITIES

    def __init__(self, account: AccountConfig, env: PublisherEnv) -> None:
        self.account = account
        self.env = env
        self.settings = Settings.model_validate(account.settings)
        self.usage: dict[str, Any] = {}
        session = platform_session(
            self.settings.timeout,
            hosts=(GRAPH + "/",),
            base=self.settings.api_base,
            on_response=self._read_usage,
        )
        self.graph = facebook.GraphAPI(
            access_token=page_token(self.settings, account, env),
            timeout=self.settings.timeout,
            session=session,
        )
        # facebook-sdk only accepts versions up to 3.1 in its constructor.
        self.graph.version = self.settings.graph_version

    def _read_usage(self, response: requests.Response) -> None:
        for header in ("X-Business-Use-Case-Usage", "X-App-Usage", "X-Page-Usage"):
            value = response.headers.get(header)
            if value:
                try:
                    self.usage[header] = json.loads(value)
                except ValueError:
                    continue
        if self.usage:
            self.env.state.put_state(f"ratelimit:{self.account.name}", self.usage)
            wait = self._regain_seconds()
            if wait:
                until = self.env.clock.now() + timedelta(seconds=wait)
                self.env.state.put_state(blocked_key(self.account.name), until.isoformat())

    def _regain_seconds(self) -> float | None:
        """Facebook says how long until calls are allowed again, in minutes."""
        waits = []
        for entries in (self.usage.get("X-Business-Use-Case-Usage") or {}).values():
            for entry in entries if isinstance(entries, list) else []:
                minutes = entry.get("estimated_time_to_regain_access")
                if isinstance(minutes, int | float) and minutes > 0:
                    waits.append(minutes * 60.0)
        return max(waits) if waits else None

    def _call(self, action: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        self.usage = {}
        try:
            return fn(*args, **kwargs)
        except facebook.GraphAPIError as exc:
            raise self._map(exc, action) from None
        except requests.RequestException as exc:
            raise network_error(exc, f"facebook {action}") from None

    def _map(self, exc: facebook.GraphAPIError, action: str) -> PublishError:
        result = exc.result if isinstance(exc.result, dict) else {}
        error = result.get("error") if isinstance(result.get("error"), dict) else {}
        code = error.get("code", exc.code)
        subcode = error.get("error_subcode")
        message = str(error.get("message") or exc.message)[:200]
        where = f"facebook {action}: error {code}" + (f"/{subcode}" if subcode else "")
        if code is None:
            # Not a Graph error at all (an HTML page from a proxy): it may or may not have acted.
            return InDoubt(f"facebook {action}: unexpected response from the platform")
        if code in THROTTLED:
            return RetryLater(
                f"{where}: rate limited ({message})", delay=self._regain_seconds() or 60
            )
        if code == 190 or code == 102:
            return Reauthorize(f"{where}: the Page token is no longer valid ({message})")
        if code == 368:
            return Rejected(f"{where}: blocked by Facebook policy ({message})")
        if code == 506:
            return Rejected(f"{where}: duplicate post ({message})")
        if code in PERMISSION:
            return Rejected(f"{where}: missing permission ({message})")
        if code in (1, 2):
            return RetryLater(f"{where}: temporary Facebook error ({message})")
        return Rejected(f"{where}: {message}")

    def publish(self, post: Post) -> PublishedRef:
        page = self.settings.page_id
        if post.media:
            with open(post.media[0], "rb") as image:
                result = self._call(
                    "photo post",
                    self.graph.put_photo,
                    image=image,
                    album_path=f"{page}/photos",
                    message=post.text,
                )
            post_id = result.get("post_id") or result.get("id")
        else:
            result = self._call("post", self.graph.put_object, page, "feed", message=post.text)
            post_id = result.get("id")
        if not post_id:
            raise InDoubt("facebook post: the answer carried no post id")
        return PublishedRef(
            platform_id=str(post_id),
            published_at=self.env.clock.now(),
            url=f"https://www.facebook.com/{post_id}",
        )

    def find(self, post: Post) -> PublishedRef | None:
        since = post.created_at - timedelta(seconds=60)
        path = f"{self.graph.version}/{self.settings.page_id}/posts"
        result = self._call(
            "look-up",
            self.graph.request,
            path,
            args={
                "fields": "id,message,created_time",
                "since": int(since.timestamp()),
                "limit": 100,
            },
        )
        for item in result.get("data", []):
            if _same_text(item.get("message"), post.text):
                return PublishedRef(
                    platform_id=str(item["id"]),
                    published_at=self.env.clock.now(),
                    url=f"https://www.facebook.com/{item['id']}",
                )
        return None

    def delete(self, ref: PublishedRef) -> None:
        self._call("delete", self.graph.delete_object, ref.platform_id)

    def edit(self, ref: PublishedRef, text: str) -> None:
        path = f"{self.graph.version}/{ref.platform_id}"
        self._call("edit", self.graph.request, path, post_args={"message": text})

    def close(self) -> None:
        self.graph.session.close()


def _same_text(a: str | None, b: str) -> bool:
    return a is not None and " ".join(a.split()) == " ".join(b.split())


def create(account: AccountConfig, env: PublisherEnv) -> Publisher:
    return FacebookPublisher(account, env)


def emulator_account(base: str, workdir: Path) -> EmulatorAccount:
    return EmulatorAccount(
        settings={
            "page_id": "100000000000001",
            "page_token": "EMU_FB_PAGE_TOKEN",
            "api_base": base,
        },
        secrets={"EMU_FB_PAGE_TOKEN": "emu-facebook-page-token"},
    )


def doctor(account: AccountConfig, env: PublisherEnv) -> str:
    """One line: can we read the Page with this token, and post to it?"""
    pub = FacebookPublisher(account, env)
    page = pub._call(
        "check",
        pub.graph.request,
        f"{pub.graph.version}/{pub.settings.page_id}",
        args={"fields": "id,name,tasks"},
    )
    tasks = page.get("tasks")
    can_post = tasks is None or "CREATE_CONTENT" in tasks or "MANAGE" in tasks
    if not can_post:
        raise Rejected(f"page {page.get('name')!r} found, but this token cannot create posts")
    return f"page {page.get('name')!r} ({page.get('id')}) reachable; posting allowed"


def authorize(account: AccountConfig, env: PublisherEnv, prompt: Any) -> dict[str, Any]:
    """Exchange a short-lived user token (Graph API Explorer or Facebook Login) for a long-lived
    one, then for the Page token, which does not expire by date."""
    s = Settings.model_validate(account.settings)
    if not s.app_id or not s.app_secret:
        raise Rejected("facebook auth needs app_id and app_secret in the account's settings")
    user_token = prompt("Short-lived user access token (with pages_manage_posts)", hide=True)
    session = platform_session(s.timeout, hosts=(GRAPH + "/",), base=s.api_base)
    graph = facebook.GraphAPI(access_token=None, timeout=s.timeout, session=session)
    graph.version = s.graph_version
    try:
        exchanged = graph.request(
            f"{s.graph_version}/oauth/access_token",
            args={
                "grant_type": "fb_exchange_token",
                "client_id": s.app_id,
                "client_secret": env.secrets.get(s.app_secret, what=f"{account.name} app_secret"),
                "fb_exchange_token": user_token,
            },
        )
        long_lived = exchanged["access_token"]
        page = graph.request(
            f"{s.graph_version}/{s.page_id}",
            args={"fields": "id,name,access_token", "access_token": long_lived},
        )
    except facebook.GraphAPIError as exc:
        raise Rejected(f"facebook auth: {str(exc.message)[:200]}") from None
    except requests.RequestException as exc:
        raise RetryLater(f"facebook auth: {type(exc).__name__}") from None
    if "access_token" not in page:
        raise Rejected(f"facebook auth: no Page token for {s.page_id}: is this user a Page admin?")
    return {"page_token": page["access_token"], "page_name": page.get("name")}
