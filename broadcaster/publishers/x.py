"""X (Twitter) through tweepy's v2 Client, with images through the v2 media upload endpoint.

tweepy has no v2 media upload, so images go with plain requests signed by tweepy's own OAuth 1.0a
handler. tweepy's host is fixed inside the library: our transport on its session sends it to the
configured base (the emulator in tests and rehearsals) and sets a timeout, which tweepy does not.
`wait_on_rate_limit` stays off: waiting is the dispatcher's job, and tweepy can loop without
sleeping when no reset header comes.

Errors: a 429 waits until X's reset header (or a Retry-After), else the dispatcher backs off; a
503 (X over capacity: the request turned away) is tried again later; any other 5xx, and a
dropped connection, after the tweet was sent leaves it in doubt: it is then looked up among the
account's recent posts. A 403 "duplicate content" on a second attempt means the first one went
through (looked up too). Other refusals are final.
"""

from __future__ import annotations

from datetime import UTC, datetime
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
    import requests
    import tweepy
else:  # loaded when the adapter first uses them (LazyModule says why)
    requests = LazyModule("requests")
    tweepy = LazyModule("tweepy")

API = "https://api.x.com"
TWEEPY_HOST = "https://api.twitter.com"

CAPABILITIES = Capabilities(
    can_delete=True,
    can_find=True,
    threads=True,
    media=("image/png", "image/jpeg"),
    text=TextLimit(280, "x-weighted"),
    card=CardSpec("PNG", 1200, 675),
    # POST /2/tweets: 200 per 15 min and 300 per 3 h per user; 100 per 24 h on the Basic tier
    # (17 on Free: set `quota`, or let X's x-user-limit-24hour-limit header say so).
    quota=(
        Window(posts=200, seconds=900),
        Window(posts=300, seconds=10800),
        Window(posts=100, seconds=86400),
    ),
)


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Names of the secrets holding the OAuth 1.0a keys of the app and of the posting account.
    consumer_key: str
    consumer_secret: str
    access_token: str
    access_token_secret: str
    api_base: Annotated[str, AfterValidator(require_https)] = API
    timeout: float = Field(default=20, gt=0)


class XPublisher(Publisher):
    platform = "x"
    settings_model = Settings
    capabilities = CAPABILITIES

    def __init__(self, account: AccountConfig, env: PublisherEnv) -> None:
        self.account = account
        self.env = env
        self.settings = s = Settings.model_validate(account.settings)
        get = env.secrets.get
        self.keys = (
            get(s.consumer_key, what=f"{account.name} consumer_key"),
            get(s.consumer_secret, what=f"{account.name} consumer_secret"),
            get(s.access_token, what=f"{account.name} access_token"),
            get(s.access_token_secret, what=f"{account.name} access_token_secret"),
        )
        self.client = tweepy.Client(
            consumer_key=self.keys[0],
            consumer_secret=self.keys[1],
            access_token=self.keys[2],
            access_token_secret=self.keys[3],
            wait_on_rate_limit=False,
        )
        self.client.session = platform_session(
            s.timeout,
            hosts=(TWEEPY_HOST + "/", API + "/"),
            base=s.api_base,
            on_response=self._read_limits,
        )
        self.limits: dict[str, str] = {}
        self._user_id: str | None = None

    def _read_limits(self, response: requests.Response) -> None:
        found = {
            k.lower(): v
            for k, v in response.headers.items()
            if k.lower().startswith(
                ("x-rate-limit-", "x-user-limit-24hour-", "x-app-limit-24hour-")
            )
        }
        if found:
            self.limits = found
            self.env.state.note_rate_limits(self.account.name, found)
            self._learn(found)

    def _learn(self, headers: dict[str, str]) -> None:
        """What X says overrides our own counting: its real daily cap (which depends on the
        account's tier) and, when a limit is spent, the time it resets."""
        cap = headers.get("x-user-limit-24hour-limit")
        if cap and cap.isdigit():
            self.env.state.learn_quota(self.account.name, Window(posts=int(cap), seconds=86400))
        for prefix in ("x-user-limit-24hour-", "x-app-limit-24hour-", "x-rate-limit-"):
            remaining, reset = headers.get(prefix + "remaining"), headers.get(prefix + "reset")
            if remaining == "0" and reset and reset.isdigit():
                until = datetime.fromtimestamp(int(reset), UTC)
                self.env.state.block(self.account.name, until)

    def _reset_delay(self, response: Any) -> float | None:
        headers = getattr(response, "headers", {}) or {}
        for name in ("x-user-limit-24hour-reset", "x-app-limit-24hour-reset", "x-rate-limit-reset"):
            remaining = headers.get(name.replace("reset", "remaining"))
            reset = headers.get(name)
            if reset and (remaining in (None, "0") or name == "x-rate-limit-reset"):
                try:
                    return max(1.0, float(reset) - self.env.clock.now().timestamp())
                except ValueError:
                    continue
        return retry_after(headers, now=self.env.clock.now().timestamp())

    def _map(self, exc: tweepy.TweepyException, action: str, attempt: int) -> PublishError:
        response = getattr(exc, "response", None)
        status = int(getattr(response, "status_code", 0) or 0)
        detail = "; ".join(str(m) for m in getattr(exc, "api_messages", []) or [])[:200]
        where = f"x {action}: HTTP {status or '?'}"
        creates = action == "post"
        if isinstance(exc, tweepy.TooManyRequests):
            return RetryLater(f"{where}: rate limited", delay=self._reset_delay(response))
        if isinstance(exc, tweepy.Unauthorized):
            return Reauthorize(
                f"{where}: the account's keys were refused; put valid keys in the secrets that "
                f"the account's settings name, then run `broadcaster auth x --account "
                f"{self.account.name}` (it checks them and resumes the account)"
            )
        if isinstance(exc, tweepy.Forbidden):
            if "duplicate" in detail.lower():
                if attempt > 1 and creates:
                    # An earlier attempt may have gone through: look before calling it a failure.
                    return InDoubt(f"{where}: duplicate of an earlier attempt ({detail})")
                return Rejected(f"{where}: duplicate content ({detail})")
            return Rejected(f"{where}: forbidden ({detail})")
        if isinstance(exc, tweepy.BadRequest | tweepy.NotFound):
            return Rejected(f"{where}: {detail}")
        if status >= 500 or not status:
            if creates and (not status or may_have_acted(status)):
                # A 5xx after the tweet was sent: X may have created it.
                return InDoubt(f"{where}: server error after the request was sent")
            return RetryLater(
                f"{where}: server error",
                delay=retry_after(
                    getattr(response, "headers", None), now=self.env.clock.now().timestamp()
                ),
            )
        return Rejected(f"{where}: {type(exc).__name__} {detail}".rstrip())

    def _call(self, action: str, fn: Any, *args: Any, attempt: int = 1, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except tweepy.TweepyException as exc:
            if isinstance(exc, tweepy.HTTPException):
                raise self._map(exc, action, attempt) from None
            cause = exc.__context__
            if isinstance(cause, requests.RequestException):
                raise self._network(cause, action) from None
            if action == "post":
                raise InDoubt(f"x {action}: {type(exc).__name__}") from None
            raise RetryLater(f"x {action}: {type(exc).__name__}") from None
        except requests.RequestException as exc:
            raise self._network(exc, action) from None

    def _network(self, exc: requests.RequestException, action: str) -> PublishError:
        error = network_error(exc, f"x {action}")
        if isinstance(error, InDoubt) and action != "post":
            return RetryLater(str(error))  # a read or a delete: repeating it creates nothing
        return error

    def upload(self, path: str) -> str:
        """Upload one image through POST /2/media/upload; returns its media id."""
        auth = tweepy.OAuth1UserHandler(*self.keys).apply_auth()
        mime = "image/png" if path.lower().endswith(".png") else "image/jpeg"
        with open(path, "rb") as fh:
            try:
                resp = self.client.session.post(
                    f"{self.settings.api_base}/2/media/upload",
                    files={"media": (path.rsplit("/", 1)[-1], fh, mime)},
                    data={"media_category": "tweet_image"},
                    auth=auth,
                )
            except requests.RequestException as exc:
                # An orphan upload is harmless: retrying the whole post is safe.
                raise RetryLater(f"x media upload: {type(exc).__name__}") from None
        if resp.status_code == 429:
            raise RetryLater("x media upload: rate limited", delay=self._reset_delay(resp))
        if resp.status_code == 401:
            raise Reauthorize(
                "x media upload: the account's keys were refused; put valid keys in the secrets "
                f"that the account's settings name, then run `broadcaster auth x --account "
                f"{self.account.name}` (it checks them and resumes the account)"
            )
        if resp.status_code >= 500:
            # An upload is not a post: an orphan upload is harmless, so any 5xx is retried.
            raise RetryLater(
                f"x media upload: HTTP {resp.status_code}",
                delay=retry_after(resp.headers, now=self.env.clock.now().timestamp()),
            )
        if resp.status_code >= 400:
            raise Rejected(f"x media upload: HTTP {resp.status_code}")
        try:
            data = resp.json()["data"]
            return str(data.get("id") or data["media_id_string"])
        except (ValueError, KeyError, TypeError):
            raise RetryLater("x media upload: unexpected answer") from None

    def publish(self, post: Post) -> PublishedRef:
        media_ids = [self.upload(path) for path in post.media] or None
        response = self._call(
            "post",
            self.client.create_tweet,
            text=post.text,
            media_ids=media_ids,
            in_reply_to_tweet_id=post.reply_to,
            user_auth=True,
            attempt=post.attempt,
        )
        tweet_id = str(response.data["id"])
        return PublishedRef(
            platform_id=tweet_id,
            published_at=self.env.clock.now(),
            url=f"https://x.com/i/status/{tweet_id}",
        )

    def user_id(self) -> str:
        if self._user_id is None:
            me = self._call("identity", self.client.get_me, user_auth=True)
            self._user_id = str(me.data.id)
        return self._user_id

    def find(self, post: Post) -> PublishedRef | None:
        response = self._call(
            "look-up",
            self.client.get_users_tweets,
            self.user_id(),
            max_results=20,
            user_auth=True,
        )
        for tweet in response.data or []:
            if " ".join(str(tweet.text).split()) == " ".join(post.text.split()):
                return PublishedRef(
                    platform_id=str(tweet.id),
                    published_at=self.env.clock.now(),
                    url=f"https://x.com/i/status/{tweet.id}",
                )
        return None

    def delete(self, ref: PublishedRef) -> None:
        self._call("delete", self.client.delete_tweet, ref.platform_id, user_auth=True)

    def close(self) -> None:
        self.client.session.close()

    @classmethod
    def emulator_account(cls, base: str, workdir: Path) -> EmulatorAccount:
        names = ("consumer_key", "consumer_secret", "access_token", "access_token_secret")
        return EmulatorAccount(
            settings={**{n: f"EMU_X_{n.upper()}" for n in names}, "api_base": base},
            secrets={f"EMU_X_{n.upper()}": f"emu-x-{n}" for n in names},
        )

    @classmethod
    def doctor(cls, account: AccountConfig, env: PublisherEnv) -> str:
        pub = cls(account, env)
        me = pub._call("identity", pub.client.get_me, user_auth=True)
        return f"signed in as @{me.data.username} ({me.data.id})"

    @classmethod
    def authorize(cls, account: AccountConfig, env: PublisherEnv, prompt: Any) -> dict[str, Any]:
        """X uses fixed OAuth 1.0a keys: check that they work and who they post as."""
        print(cls.doctor(account, env))
        return {}
