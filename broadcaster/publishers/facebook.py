"""Facebook Pages through the Graph API, with facebook-sdk.

Text posts go to `/{page-id}/feed`, posts with a card to `/{page-id}/photos`. The library only
accepts old Graph versions, so the configured version is set on the client after construction;
its requests session carries our transport (timeout, no retries, no redirects, optional emulator
base; broadcaster/publishers/http.py) and a response hook that keeps the answer's status and
rate-limit headers, which facebook-sdk does not expose.

Errors: throttling codes wait for as long as Graph says (`estimated_time_to_regain_access` in
the usage headers, or a Retry-After), else the dispatcher backs off; an error Graph marks
`is_transient`, codes 1 and 2, any 5xx and a non-Graph answer (a proxy's HTML page) are
temporary, and in doubt on a call that creates a post (it is then looked up on the Page); the
documented refusals (permission, policy, duplicate, invalid parameter...) are final.
"""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from broadcaster.core.config import AccountConfig
from broadcaster.domain.limits import TextLimit
from broadcaster.domain.quota import Window
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
from broadcaster.publishers.http import (
    LazyModule,
    may_have_acted,
    network_error,
    platform_session,
    require_https,
    retry_after,
)

if TYPE_CHECKING:
    import facebook
    import requests
else:  # loaded when the adapter first uses them (LazyModule says why)
    facebook = LazyModule("facebook")
    requests = LazyModule("requests")

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

# Application, user, Page, feed-action and custom-level limits, and the Business Use Case
# throttles (80001-80014).
THROTTLED = {4, 17, 32, 341, 613, *range(80001, 80015)}
TEMPORARY = {1, 2}  # "an unknown error occurred", "service temporarily unavailable"
TOKEN_DEAD = {102, 190}
PERMISSION = {10, *range(200, 300)}
CREATES = {"post", "photo post"}  # the actions that create a post (in doubt when unanswered)


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    page_id: str = Field(min_length=1)
    # Name of the secret holding the Page access token; `broadcaster auth facebook` stores one
    # in the token store instead.
    page_token: str | None = None
    app_id: str | None = None  # for `broadcaster auth facebook`
    app_secret: str | None = None  # name of the secret holding the app secret
    graph_version: str = Field(default="v25.0", pattern=r"^v\d+\.\d+$")
    api_base: Annotated[str, AfterValidator(require_https)] = GRAPH
    timeout: float = Field(default=20, gt=0)
    find_window: int = Field(default=3600, gt=0)  # seconds of recent posts searched after a crash


def page_token(settings: Settings, account: AccountConfig, env: PublisherEnv) -> str:
    stored = env.tokens.get(account.name).get("page_token") if env.tokens else None
    if stored:
        return str(stored)
    if settings.page_token is None:
        raise Reauthorize(
            f"{account.name}: no Page token: run `broadcaster auth facebook --account "
            f"{account.name}`, or set page_token to the name of a secret and run "
            f"`broadcaster resume {account.name}`"
        )
    return env.secrets.get(settings.page_token, what=f"{account.name} page_token")


class FacebookPublisher(Publisher):
    platform = "facebook"
    settings_model = Settings
    capabilities = CAPABILITIES

    def __init__(self, account: AccountConfig, env: PublisherEnv) -> None:
        self.account = account
        self.env = env
        self.settings = Settings.model_validate(account.settings)
        self.usage: dict[str, Any] = {}
        self.status = 0  # HTTP status of the last answer (0: none)
        self.headers: dict[str, str] = {}
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
        self.status = response.status_code
        self.headers = dict(response.headers)
        for header in ("X-Business-Use-Case-Usage", "X-App-Usage", "X-Page-Usage"):
            value = response.headers.get(header)
            if value:
                try:
                    self.usage[header] = json.loads(value)
                except ValueError:
                    continue
        if self.usage:
            self.env.state.note_rate_limits(self.account.name, self.usage)
            wait = self._regain_seconds()
            if wait:
                self.env.state.block(
                    self.account.name, self.env.clock.now() + timedelta(seconds=wait)
                )

    def _regain_seconds(self) -> float | None:
        """How long Graph says until calls are allowed again: the largest
        `estimated_time_to_regain_access` (minutes) in any usage header (X-Business-Use-Case-Usage
        nests it per business and type; X-App-Usage and X-Page-Usage carry it flat)."""
        waits = [m * 60.0 for m in _regain_minutes(self.usage) if m > 0]
        return max(waits) if waits else None

    def _wait(self) -> float | None:
        """The platform's wait, if it gave one; None leaves the back-off to the dispatcher."""
        return self._regain_seconds() or retry_after(
            self.headers, now=self.env.clock.now().timestamp()
        )

    def _call(self, action: str, fn: Any, *args: Any, attempt: int = 1, **kwargs: Any) -> Any:
        self.usage = {}
        self.status = 0
        self.headers = {}
        try:
            return fn(*args, **kwargs)
        except facebook.GraphAPIError as exc:
            raise self._map(exc, action, attempt) from None
        except (KeyError, ValueError):
            # facebook-sdk could not read the answer (no Content-Type, broken JSON).
            raise self._map(facebook.GraphAPIError("unreadable answer"), action, attempt) from None
        except requests.RequestException as exc:
            error = network_error(exc, f"facebook {action}")
            if isinstance(error, InDoubt) and action not in CREATES:
                error = RetryLater(str(error))  # nothing is created twice by repeating it
            raise error from None

    def _map(self, exc: facebook.GraphAPIError, action: str, attempt: int = 1) -> PublishError:
        result = exc.result if isinstance(exc.result, dict) else {}
        found = result.get("error")
        error: dict[str, Any] = found if isinstance(found, dict) else {}
        code = error.get("code", exc.code)
        subcode = error.get("error_subcode")
        message = str(error.get("message") or exc.message)[:200]
        status = self.status
        where = f"facebook {action}: error {code}" + (f"/{subcode}" if subcode else "")
        where += f" (HTTP {status})" if status else ""
        creates = action in CREATES
        if code is None:
            # Not a Graph error at all (an HTML page from a proxy, a cut answer).
            if creates and (not status or may_have_acted(status)):
                return InDoubt(f"facebook {action}: unexpected answer (HTTP {status or '?'})")
            return RetryLater(
                f"facebook {action}: unexpected answer (HTTP {status or '?'})", delay=self._wait()
            )
        if code in THROTTLED:
            return RetryLater(f"{where}: rate limited ({message})", delay=self._wait())
        if code in TOKEN_DEAD:
            return Reauthorize(
                f"{where}: the Page token is no longer valid ({message}); run `broadcaster auth "
                f"facebook --account {self.account.name}`"
            )
        if code == 368:
            return Rejected(f"{where}: blocked by Facebook policy ({message})")
        if code == 506:
            if attempt > 1 and creates:
                # An earlier attempt may have gone through: look before calling it a failure.
                return InDoubt(f"{where}: duplicate of an earlier attempt ({message})")
            return Rejected(f"{where}: duplicate post ({message})")
        if code in PERMISSION:
            return Rejected(f"{where}: missing permission ({message})")
        if error.get("is_transient") is True or code in TEMPORARY or status >= 500:
            if creates and may_have_acted(status or 500):
                return InDoubt(f"{where}: temporary Facebook error after sending ({message})")
            return RetryLater(f"{where}: temporary Facebook error ({message})", delay=self._wait())
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
                    attempt=post.attempt,
                )
            post_id = result.get("post_id") or result.get("id")
        else:
            result = self._call(
                "post", self.graph.put_object, page, "feed", message=post.text, attempt=post.attempt
            )
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

    @classmethod
    def emulator_account(cls, base: str, workdir: Path) -> EmulatorAccount:
        return EmulatorAccount(
            settings={
                "page_id": "100000000000001",
                "page_token": "EMU_FB_PAGE_TOKEN",
                "api_base": base,
            },
            secrets={"EMU_FB_PAGE_TOKEN": "emu-facebook-page-token"},
        )

    @classmethod
    def doctor(cls, account: AccountConfig, env: PublisherEnv) -> str:
        """One line: can we read the Page with this token, and post to it?"""
        pub = cls(account, env)
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

    @classmethod
    def authorize(cls, account: AccountConfig, env: PublisherEnv, prompt: Any) -> dict[str, Any]:
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
                    "client_secret": env.secrets.get(
                        s.app_secret, what=f"{account.name} app_secret"
                    ),
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
            raise Rejected(
                f"facebook auth: no Page token for {s.page_id}: is this user a Page admin?"
            )
        return {"page_token": page["access_token"], "page_name": page.get("name")}


def _regain_minutes(node: Any) -> list[float]:
    found: list[float] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "estimated_time_to_regain_access" and isinstance(value, int | float):
                found.append(float(value))
            else:
                found += _regain_minutes(value)
    elif isinstance(node, list):
        for item in node:
            found += _regain_minutes(item)
    return found


def _same_text(a: str | None, b: str) -> bool:
    return a is not None and " ".join(a.split()) == " ".join(b.split())
