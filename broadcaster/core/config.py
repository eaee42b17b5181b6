"""The one TOML configuration file: loading, validation, and errors that name the key.

Secrets never live here: an account names the environment variables (or secrets-file entries)
that hold its tokens. Relative paths are relative to the configuration file's folder.
"""

from __future__ import annotations

import ipaddress
import re
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from broadcaster.core.paths import (
    DEFAULT_CONFIG,
    DEFAULT_DATABASE_URL,
    DEFAULT_TEMPLATES,
    config_digest,
    resolve_database_url,
)
from broadcaster.domain.events import EventKind
from broadcaster.domain.quota import Window

PLATFORM_NAME = r"^[a-z][a-z0-9_]*$"  # which platforms exist is the registry's to say


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong: the configuration key it concerns, and what is wrong with it."""

    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.key}: {self.message}"


class ConfigError(Exception):
    """The configuration is unusable; the message names the file, the key and what was expected."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ElectionConfig(_Strict):
    timezone: str = "UTC"
    name: str | None = None  # display name overriding the feed's
    issuer: str | None = None  # who publishes, shown on posts and cards

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"expected an IANA timezone name such as 'Asia/Phnom_Penh', got {value!r}"
            ) from None
        return value

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class FeedConfig(_Strict):
    source: str = Field(min_length=1)  # https:// URL, a file, or a folder of snapshots (replay)
    format: Literal["auto", "nist", "csv", "eml", "mapped"] = "auto"
    mapping: str | None = None  # the mapping file for format "mapped" (docs/feed-format.md)
    poll_interval: float = Field(default=30, gt=0, le=3600)
    is_test: bool = False  # treat the feed as test data whatever it says
    connect_timeout: float = Field(default=5, gt=0)
    read_timeout: float = Field(default=15, gt=0)
    deadline: float = Field(default=60, gt=0)  # whole request, however slowly bytes trickle
    max_bytes: int = Field(default=50_000_000, gt=0)
    backoff_max: float = Field(default=300, gt=0)  # longest wait between tries while it is down
    max_count: int = Field(default=10**10, gt=0)  # a larger vote, seat or unit count is rejected
    # Request headers for an HTTP feed: header name -> the NAME of the environment variable (or
    # secrets-file entry) holding its value, e.g. { Authorization = "FEED_AUTHORIZATION" }.
    headers: dict[str, str] = Field(default_factory=dict)
    # Follow a redirect from a public feed to a private, loopback or link-local address.
    allow_private_redirects: bool = False

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: dict[str, str]) -> dict[str, str]:
        for header, name in value.items():
            if not re.fullmatch(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+", header):
                raise ValueError(f"{header!r} is not an HTTP header name")
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                raise ValueError(
                    f"{header}: expected the name of an environment variable or secrets-file "
                    "entry holding the value (secrets never go in this file), not the value"
                )
        return value

    @model_validator(mode="after")
    def _mapping(self) -> FeedConfig:
        if self.format == "mapped" and not self.mapping:
            raise ValueError('format "mapped" needs `mapping`, the path of a mapping file')
        if self.mapping and self.format not in ("mapped", "auto"):
            raise ValueError(f'`mapping` is only used with format "mapped", not {self.format!r}')
        return self


class EventsConfig(_Strict):
    thresholds: list[int] = Field(default_factory=lambda: [25, 50, 75, 100])
    tally_every: int = Field(default=1800, ge=0)  # seconds of feed time; 0 turns it off
    majority_seats: int = Field(default=0, ge=0)  # 0 means more than half of all seats
    # "Too close to call": a margin below this many percentage points of the votes, once
    # `close_reported` % of a contest's counting units are in (0 turns it off).
    close_margin: float = Field(default=0.5, ge=0, le=100)
    close_reported: int = Field(default=95, ge=1, le=100)
    # A contest called on provisional figures and then declared official: post it again only
    # when the official figures differ ("changed"), or always ("always").
    official: Literal["changed", "always"] = "changed"

    @field_validator("thresholds")
    @classmethod
    def _thresholds(cls, value: list[int]) -> list[int]:
        if any(t < 1 or t > 100 for t in value):
            raise ValueError(f"expected percentages between 1 and 100, got {value}")
        return sorted(set(value))

    @property
    def tally_interval(self) -> timedelta | None:
        return timedelta(seconds=self.tally_every) if self.tally_every else None


LANGUAGES = ("en", "ms", "km")


class TemplatesConfig(_Strict):
    dir: str | None = None  # the operators' own folder; files there override the defaults
    language: Literal["en", "ms", "km"] = "en"
    khmer_digits: bool = False  # write numbers with Khmer digits (០១២៣...)
    time_format: str = "HH:mm"  # a CLDR pattern, see docs/templates.md
    date_format: str = "long"
    # What to do with a post over the platform's limit, per "<platform>/<event kind>":
    # fail (never post it; the default), shorten (at a word boundary, with "…"), or thread.
    overflow: dict[str, Literal["fail", "shorten", "thread"]] = Field(default_factory=dict)
    render_seconds: float = Field(default=1.0, gt=0, le=30)  # a render taking longer is stopped
    # A snapshot with more new events than this (a burst: a national local election's count
    # coming in at once) stores its posts unrendered; each is rendered when it is about to be
    # sent, so the many that newer results replace are never rendered at all.
    render_ahead: int = Field(default=500, ge=0)

    @field_validator("overflow")
    @classmethod
    def _overflow_keys(cls, value: dict[str, str]) -> dict[str, str]:
        kinds = {k.value for k in EventKind}
        for key in value:
            platform, _, kind = key.partition("/")
            if not re.match(PLATFORM_NAME, platform) or kind not in kinds:
                raise ValueError(
                    f"keys are '<platform>/<event kind>' such as 'x/progress', got {key!r}"
                )
        return value


class PartyDisplayConfig(_Strict):
    """How to show a party or coalition, whatever the feed calls it."""

    name: str | None = None
    short: str | None = None
    color: str | None = Field(default=None, pattern=r"^#?[0-9A-Fa-f]{6}$")


class CoalitionConfig(_Strict):
    """A coalition the feed does not define, or more parties for one it does (`[coalitions]`)."""

    name: str | None = None  # default: the feed's name, else the id
    short: str | None = None
    color: str | None = Field(default=None, pattern=r"^#?[0-9A-Fa-f]{6}$")
    parties: list[str] = Field(default_factory=list)  # party ids counted for it everywhere


class CardsConfig(_Strict):
    """Result-card images for the platforms that take media."""

    enabled: bool = True
    title: str | None = None  # shown at the top of every card; default: the election's name
    logo: str | None = None  # a PNG file shown in the top corner
    background: str = Field(default="#FFFFFF", pattern=r"^#[0-9A-Fa-f]{6}$")
    foreground: str = Field(default="#1A1A1A", pattern=r"^#[0-9A-Fa-f]{6}$")
    accent: str = Field(default="#1F4E79", pattern=r"^#[0-9A-Fa-f]{6}$")
    dir: str = "cards"  # where rendered cards are written
    # Worker processes drawing cards ahead of the posts that will need them; default: two on
    # two to four cores, one per core beyond two above that (at most four), none on one core.
    # 0: cards are drawn by the dispatcher when a post is sent.
    workers: int | None = Field(default=None, ge=0, le=16)


class DatabaseConfig(_Strict):
    url: str = DEFAULT_DATABASE_URL
    # Several instances on one PostgreSQL database (docs/operations.md, "Two machines"): the
    # active one holds a lease this long and renews it every `renew_seconds`; a standby takes
    # over once it runs out. `instance` names this one (default: host and process id).
    lease_seconds: float = Field(default=20, ge=2, le=300)
    renew_seconds: float = Field(default=4, gt=0, le=60)
    instance: str | None = Field(default=None, min_length=1, max_length=100)

    @model_validator(mode="after")
    def _renewed_in_time(self) -> DatabaseConfig:
        if self.renew_seconds * 2 > self.lease_seconds:
            raise ValueError(
                f"renew_seconds ({self.renew_seconds:g}) must be at most half of lease_seconds "
                f"({self.lease_seconds:g}), so that one missed renewal never loses the lease"
            )
        return self


class OutputConfig(_Strict):
    posts: str = "posts.jsonl"  # where dry-run publishers append what they would have posted
    # Mode of the files broadcaster creates (the SQLite database, posts.jsonl, cards): owner
    # only by default; "0640" lets the service's group (monitoring, backups) read them.
    file_mode: Literal["0600", "0640"] = "0600"

    @property
    def mode(self) -> int:
        return int(self.file_mode, 8)


class SecretsConfig(_Strict):
    """Where secrets and obtained tokens live (both files must be mode 600)."""

    file: str | None = None  # a TOML table of secret names to values, besides the environment
    tokens: str = "tokens.json"  # tokens from `broadcaster auth` and refreshes


class DispatchConfig(_Strict):
    interval: float = Field(default=5, gt=0, le=600)
    batch: int = Field(default=50, gt=0)
    breaker_failures: int = Field(default=5, gt=0)  # consecutive failures that pause an account
    breaker_cooldown: float = Field(default=300, gt=0)  # seconds before it tries again by itself


class PlannerConfig(_Strict):
    # planned: budgets, pacing over the night, merging; naive: one post per event, at once.
    mode: Literal["planned", "naive"] = "planned"
    night_hours: float = Field(default=8, gt=0, le=72)  # from the first snapshot accepted


GateAction = Literal["hold", "warn", "off"]


class GatesConfig(_Strict):
    """Plausibility checks (broadcaster/ingest/gates.py): hold the affected posts for an operator,
    only warn in the log and status, or off. Every check holds by default."""

    votes_over_ballots: GateAction = "hold"
    turnout_over_100: GateAction = "hold"
    votes_decreased: GateAction = "hold"
    call_withdrawn: GateAction = "hold"
    winner_changed: GateAction = "hold"
    contest_missing: GateAction = "hold"
    selection_missing: GateAction = "hold"
    seats_over: GateAction = "hold"
    progress_backwards: GateAction = "hold"
    status_regressed: GateAction = "hold"
    feed_markup: GateAction = "hold"  # a name holds a link, mention, hashtag, markup, line break
    renamed: GateAction = "hold"  # a contest, candidate, party or coalition changes name

    def action(self, check: str) -> GateAction:
        return getattr(self, check)


class ServiceConfig(_Strict):
    # host:port for GET /healthz and GET /metrics; empty turns them off.
    listen: str = Field(default="127.0.0.1:9105", pattern=r"^$|^[^\s:]+:\d+$")
    # /healthz is "degraded" (503) after this many failed polls in a row, or this many seconds
    # without a good poll (accepted, unchanged or already seen).
    degraded_after_failures: int = Field(default=3, ge=1)
    feed_stale_after: float = Field(default=600, gt=0)


def _loopback(host: str) -> bool:
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a name other than localhost may resolve to anything


class ConsoleConfig(_Strict):
    """The operator console (docs/console.md): the night in a browser, behind a login."""

    enabled: bool = False  # `broadcaster run` serves it beside the daemon
    listen: str = Field(default="127.0.0.1:8765", pattern=r"^\S+:\d+$")  # host:port
    # Listening beyond this machine needs allow_remote, and TLS: a certificate and key here, or
    # a reverse proxy that terminates TLS, named by its address (its X-Forwarded-* are trusted).
    allow_remote: bool = False
    tls_cert: str | None = None
    tls_key: str | None = None
    reverse_proxy: str | None = None
    users: str | None = None  # the users file; default console-users.json beside the database
    session_hours: float = Field(default=12, gt=0, le=72)
    login_attempts: int = Field(default=5, ge=1, le=1000)  # failures per user name per window
    login_attempts_per_address: int = Field(default=20, ge=1, le=10000)
    login_window: float = Field(default=300, gt=0, le=86400)  # seconds

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None

    @model_validator(mode="after")
    def _safe_binding(self) -> ConsoleConfig:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key go together: give both, or neither")
        if not _loopback(self.host):
            if not self.allow_remote:
                raise ValueError(
                    f"listen = {self.listen!r} is reachable from other machines: set "
                    "allow_remote = true to mean it, with TLS (tls_cert and tls_key, or "
                    "reverse_proxy = the address of the TLS proxy in front of it)"
                )
            if not self.tls and not self.reverse_proxy:
                raise ValueError(
                    f"listen = {self.listen!r} is reachable from other machines: passwords "
                    "would cross the network in clear; give tls_cert and tls_key, or "
                    "reverse_proxy = the address of the TLS proxy in front of it"
                )
        return self


class AccountConfig(BaseModel):
    """One destination. Keys beyond the common ones are the platform's own settings."""

    model_config = ConfigDict(extra="allow", frozen=True)

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    platform: str = Field(pattern=PLATFORM_NAME)  # a registered platform (publishers/registry.py)
    dry_run: bool = True
    language: Literal["en", "ms", "km"] | None = None  # default: [templates] language
    khmer_digits: bool | None = None  # default: [templates] khmer_digits
    templates: str | None = None  # a template folder for this account only
    events: list[EventKind] | None = None  # which event kinds to post; all when absent
    cards: bool | None = None  # attach result cards where the platform takes media
    require_approval: bool = False  # every post waits, held, until an operator approves it
    allow_test_posts: bool = False  # a real account refuses test data unless this is set
    on_correction: Literal["post", "edit", "delete"] = "post"  # also edit/delete the old post
    quota: list[Window] | None = None  # replaces the platform's default rate limits

    @property
    def settings(self) -> dict[str, Any]:
        return dict(self.model_extra or {})

    def wants(self, kind: EventKind) -> bool:
        if kind is EventKind.ANNOUNCEMENT:
            return False  # never planned from the feed: an operator addresses each one
        if self.events is None:
            return True
        if kind is EventKind.SUMMARY:
            mergeable = (EventKind.CALLED, EventKind.PROGRESS, EventKind.LEADER)
            return any(k in self.events for k in mergeable)
        return kind in self.events


class LiveDestinationConfig(_Strict):
    """One live ingest of the results channel (`[[live.destinations]]`, docs/live.md).

    Secrets are named, never given: `stream_key` is the NAME of the environment variable or
    secrets-file entry that holds the key; YouTube and Facebook use their `account`'s tokens.
    """

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    kind: Literal["youtube", "facebook", "tiktok", "rtmp"]
    enabled: bool = True
    account: str | None = None  # youtube, facebook: the [[accounts]] entry with the credentials
    url: str | None = Field(default=None, pattern=r"^rtmps?://\S+$")  # tiktok, rtmp: the server
    stream_key: str | None = None  # name of the secret holding the stream key (added to url)
    orientation: Literal["landscape", "portrait"] | None = None  # default: [live] orientation
    title: str | None = None  # youtube, facebook: the broadcast's title (default: election name)
    privacy: Literal["public", "unlisted", "private"] = "public"  # youtube broadcast
    broadcast_id: str | None = None  # youtube: bind this existing broadcast instead of a new one
    allow_test_data: bool = False  # stream test data here (a rehearsal broadcast), else refuse
    queue_seconds: float = Field(default=3.0, gt=0, le=60)  # backlog before frames are dropped
    watch_interval: float = Field(default=60, ge=5)  # seconds between platform health checks

    @model_validator(mode="after")
    def _kind_settings(self) -> LiveDestinationConfig:
        if self.kind in ("youtube", "facebook"):
            if not self.account:
                raise ValueError(f"a {self.kind} destination needs `account`, an [[accounts]] name")
            if self.url or self.stream_key:
                raise ValueError(f"a {self.kind} destination gets its ingest from {self.kind}")
        else:
            if not self.url:
                raise ValueError(f"a {self.kind} destination needs `url` (rtmp:// or rtmps://)")
            if self.kind == "tiktok" and not self.stream_key:
                raise ValueError("a tiktok destination needs `stream_key`, the name of a secret")
        return self


class LiveConfig(_Strict):
    """The live results channel (broadcaster/live/, docs/live.md)."""

    enabled: bool = False  # start the channel beside the daemon (`broadcaster run`)
    width: int = Field(default=1280, ge=160, le=3840, multiple_of=2)
    height: int = Field(default=720, ge=90, le=2160, multiple_of=2)
    fps: int = Field(default=30, ge=5, le=60)
    video_kbps: int | None = Field(default=None, gt=0)  # default: 3000 at 720p, scaled by area
    keyframe_seconds: float = Field(default=2.0, gt=0, le=4)
    preset: str = "veryfast"  # x264 speed/quality trade-off
    audio: str | None = None  # a sound file looped under the picture; silence when absent
    audio_kbps: int = Field(default=128, gt=0)
    orientation: Literal["landscape", "portrait"] = "landscape"
    language: Literal["en", "ms", "km"] | None = None  # default: [templates] language
    layout: str = "live/channel.j2"  # the layout template, looked up like post templates
    dry_run_file: str = "live-dry-run.ts"  # where `--dry-run` writes the stream
    poll_interval: float = Field(default=0.5, gt=0, le=30)  # how often new data is looked for
    destinations: list[LiveDestinationConfig] = Field(default_factory=list)

    @property
    def bitrate(self) -> int:
        """Video bits per second: configured, or 3 Mbit/s at 720p scaled by the picture area."""
        if self.video_kbps:
            return self.video_kbps * 1000
        return int(3_000_000 * max(0.25, (self.width * self.height) / (1280 * 720)) ** 0.75)


# -- alerts to the operators (broadcaster/alerts, docs/operations.md) --

# What raises an alert; `[alerting]` configures each, `[[alerts]] alerts` picks them per place.
ALERT_KINDS = (
    "held",  # posts held by a plausibility gate, a template problem, a card or a secret
    "paused",  # an account paused by the system (circuit breaker, re-authorisation)
    "budget",  # an account's posting budget spent long before the night's end
    "in_doubt",  # a post that may be on the platform, held for an operator
    "feed_quiet",  # no new snapshot for longer than `minutes`
    "feed_rejected",  # the feed's snapshot rejected `times` polls in a row
    "live_down",  # a live channel destination failed or reconnecting for `seconds`
    "standby",  # a standby instance took over (raised by the failover code)
)
SECRET_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"  # noqa: S105 - the pattern of a secret's NAME


class AlertRule(_Strict):
    """One kind of alert: on or off, and the fewest seconds between two alerts about the same
    thing (an account, the feed, a destination; held posts of one kind) so a bad night does not
    spam. A new occurrence within that time waits until it has passed."""

    enabled: bool = True
    every: float = Field(default=600, ge=0)


class FeedQuietRule(AlertRule):
    minutes: float = Field(default=30, gt=0)  # no new snapshot accepted for this long


class FeedRejectedRule(AlertRule):
    times: int = Field(default=3, ge=1)  # failed polls in a row, the last one a rejection


class BudgetRule(AlertRule):
    minutes: float = Field(default=30, gt=0)  # posts wait this long or longer for the budget


class LiveDownRule(AlertRule):
    seconds: float = Field(default=60, gt=0)  # a destination failed or reconnecting this long


class AlertingConfig(_Strict):
    """What raises an alert (`[alerting]`); where alerts go is `[[alerts]]`."""

    held: AlertRule = Field(default_factory=AlertRule)
    paused: AlertRule = Field(default_factory=AlertRule)
    budget: BudgetRule = Field(default_factory=BudgetRule)
    in_doubt: AlertRule = Field(default_factory=lambda: AlertRule(every=60))
    feed_quiet: FeedQuietRule = Field(default_factory=FeedQuietRule)
    feed_rejected: FeedRejectedRule = Field(default_factory=FeedRejectedRule)
    live_down: LiveDownRule = Field(default_factory=LiveDownRule)
    standby: AlertRule = Field(default_factory=lambda: AlertRule(every=0))
    # The console's address as operators reach it (e.g. through the TLS proxy): alerts then link
    # to the page that resolves them. Without it they name the page's path.
    console_url: str | None = Field(default=None, pattern=r"^https?://\S+$")

    def rule(self, kind: str) -> AlertRule:
        return getattr(self, kind)


class AlertDestinationConfig(_Strict):
    """Where alerts go (`[[alerts]]`): an operators' Telegram chat, email over SMTP, or a JSON
    webhook. Never a public account; secrets are named, never given."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    kind: Literal["telegram", "email", "webhook"]
    enabled: bool = True
    alerts: list[Literal[ALERT_KINDS]] | None = None  # type: ignore[valid-type]  # all if absent
    timeout: float = Field(default=10, gt=0, le=120)
    # telegram: the bot (the NAME of the secret holding its token) and the chat's numeric id
    bot_token: str | None = Field(default=None, pattern=SECRET_NAME)
    chat: str | None = Field(default=None, pattern=r"^-?[1-9][0-9]{0,19}$")
    api_base: str | None = None  # default: Telegram's
    # email: an SMTP relay; STARTTLS unless `security` says otherwise (plain only on loopback)
    smtp_host: str | None = None
    smtp_port: int = Field(default=587, ge=1, le=65535)
    security: Literal["starttls", "tls", "none"] = "starttls"
    ca_file: str | None = None  # a private CA that signed the relay's certificate
    username: str | None = Field(default=None, pattern=SECRET_NAME)  # names of secrets
    password: str | None = Field(default=None, pattern=SECRET_NAME)
    sender: str | None = Field(default=None, pattern=r"^[^@\s]+@[^@\s]+$")
    to: list[str] = Field(default_factory=list)
    # webhook: the NAME of the secret holding its URL (receivers' URLs carry their keys), and
    # headers, each naming the secret that holds its value
    url: str | None = Field(default=None, pattern=SECRET_NAME)
    headers: dict[str, str] = Field(default_factory=dict)

    @field_validator("to")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        for address in value:
            if not re.fullmatch(r"[^@\s]+@[^@\s]+", address):
                raise ValueError(f"{address!r} is not an email address")
        return value

    @field_validator("headers")
    @classmethod
    def _header_secrets(cls, value: dict[str, str]) -> dict[str, str]:
        for header, name in value.items():
            if not re.fullmatch(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+", header):
                raise ValueError(f"{header!r} is not an HTTP header name")
            if not re.fullmatch(SECRET_NAME, name):
                raise ValueError(f"{header}: expected the name of the secret holding the value")
        return value

    @model_validator(mode="after")
    def _kind_settings(self) -> AlertDestinationConfig:
        needed = {
            "telegram": ("bot_token", "chat"),
            "email": ("smtp_host", "sender", "to"),
            "webhook": ("url",),
        }[self.kind]
        missing = [key for key in needed if not getattr(self, key)]
        if missing:
            raise ValueError(f"a {self.kind} destination needs {', '.join(missing)}")
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password go together: give both, or neither")
        if self.kind == "email" and self.security == "none" and not _loopback(self.smtp_host or ""):
            raise ValueError(
                f'security = "none" sends mail (and the password) in clear to {self.smtp_host}: '
                "allowed only on loopback; use starttls or tls"
            )
        return self


class Config(_Strict):
    election: ElectionConfig = Field(default_factory=ElectionConfig)
    feed: FeedConfig
    events: EventsConfig = Field(default_factory=EventsConfig)
    templates: TemplatesConfig = Field(default_factory=TemplatesConfig)
    database: DatabaseConfig = Field(default_factory=DatabaseConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)
    dispatch: DispatchConfig = Field(default_factory=DispatchConfig)
    cards: CardsConfig = Field(default_factory=CardsConfig)
    secrets: SecretsConfig = Field(default_factory=SecretsConfig)
    planner: PlannerConfig = Field(default_factory=PlannerConfig)
    service: ServiceConfig = Field(default_factory=ServiceConfig)
    gates: GatesConfig = Field(default_factory=GatesConfig)
    console: ConsoleConfig = Field(default_factory=ConsoleConfig)
    # Text limits overriding the platforms' own, e.g. x = 280, tiktok_title = 90.
    limits: dict[str, int] = Field(default_factory=dict)
    parties: dict[str, PartyDisplayConfig] = Field(default_factory=dict)
    coalitions: dict[str, CoalitionConfig] = Field(default_factory=dict)
    # Per contest, the coalition a party or a candidate stood for there, where it differs from
    # `[coalitions]` and the feed: contest id -> {party or selection id -> coalition id, or ""
    # for none}, e.g. a party under a coalition's logo in one state and its own in another.
    contest_coalitions: dict[str, dict[str, str]] = Field(default_factory=dict)
    live: LiveConfig = Field(default_factory=LiveConfig)
    alerting: AlertingConfig = Field(default_factory=AlertingConfig)
    alerts: list[AlertDestinationConfig] = Field(default_factory=list)
    accounts: list[AccountConfig] = Field(min_length=1)
    # Where the file was read from; relative paths resolve against it. Not a TOML key.
    base_dir: Path = Field(default=Path("."), exclude=True)
    # The file's bytes, digested (core/paths.py config_digest): which file, as it was then, a
    # running daemon was started with. Not a TOML key.
    source_digest: str = Field(default="", exclude=True)

    @model_validator(mode="after")
    def _unique_names(self) -> Config:
        seen: set[str] = set()
        for account in self.accounts:
            if account.name in seen:
                raise ValueError(f"accounts: two accounts are named {account.name!r}")
            seen.add(account.name)
        return self

    @model_validator(mode="after")
    def _live_destinations(self) -> Config:
        names: set[str] = set()
        accounts = {a.name: a for a in self.accounts}
        for i, dest in enumerate(self.live.destinations):
            where = f"live.destinations[{i}] ({dest.name})"
            if dest.name in names:
                raise ValueError(f"{where}: two live destinations are named {dest.name!r}")
            names.add(dest.name)
            if dest.account is not None:
                account = accounts.get(dest.account)
                if account is None or account.platform != dest.kind:
                    raise ValueError(f"{where}.account: no {dest.kind} account {dest.account!r}")
        return self

    @model_validator(mode="after")
    def _alert_names(self) -> Config:
        seen: set[str] = set()
        for i, dest in enumerate(self.alerts):
            if dest.name in seen:
                raise ValueError(f"alerts[{i}] ({dest.name}): two alert destinations are named so")
            seen.add(dest.name)
        return self

    def language_of(self, account: AccountConfig) -> str:
        return account.language or self.templates.language

    def khmer_digits_of(self, account: AccountConfig) -> bool:
        if account.khmer_digits is not None:
            return account.khmer_digits
        return self.templates.khmer_digits

    def path(self, value: str | None) -> Path | None:
        """A configured path, resolved against the configuration file's folder."""
        if value is None:
            return None
        p = Path(value).expanduser()
        return p if p.is_absolute() else (self.base_dir / p)

    @property
    def database_url(self) -> str:
        return resolve_database_url(self.database.url, self.base_dir)

    def with_overrides(self, **changes: Any) -> Config:
        """A copy with some sections replaced (used by rehearsals and tests)."""
        return self.model_copy(update=changes)


def _where(loc: tuple[int | str, ...], data: dict[str, Any]) -> str:
    parts: list[str] = []
    node: Any = data
    for item in loc:
        if isinstance(item, int):
            label = f"[{item}]"
            if isinstance(node, list) and item < len(node) and isinstance(node[item], dict):
                name = node[item].get("name")
                if isinstance(name, str):
                    label += f" ({name})"
            parts.append(label)
        else:
            parts.append(("." if parts else "") + str(item))
        try:
            node = node[item]
        except (KeyError, IndexError, TypeError):
            node = None
    return "".join(parts) or "(top level)"


def format_validation_error(exc: ValidationError, source: str, data: dict[str, Any]) -> str:
    lines = [f"{source}: invalid configuration"]
    for err in exc.errors():
        loc = tuple(x for x in err["loc"] if not (isinstance(x, str) and x.startswith("function-")))
        where = _where(loc, data)
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        elif err["type"] == "missing":
            msg = "required key is missing"
        else:
            msg = err["msg"].removeprefix("Value error, ")
            if "input" in err and err["type"] not in ("value_error",):
                msg += f" (got {err['input']!r})"
        lines.append(f"  {where}: {msg}")
    return "\n".join(lines)


def template_folder_problems(config: Config) -> list[str]:
    """A template folder must not hold the secrets file or the token store, at any depth: a
    template could include them and publish every secret."""

    secrets = [
        (config.path(config.secrets.file), "the secrets file (secrets.file)"),
        (config.path(config.secrets.tokens), "the token store (secrets.tokens)"),
    ]
    folders = [("templates.dir", config.path(config.templates.dir))]
    folders += [
        (f"accounts[{i}] ({a.name}).templates", config.path(a.templates))
        for i, a in enumerate(config.accounts)
    ]
    folders.append(("the bundled templates", DEFAULT_TEMPLATES))
    problems = []
    for key, folder in folders:
        if folder is None:
            continue
        real_folder = folder.resolve()
        for path, what in secrets:
            if path is not None and path.resolve().is_relative_to(real_folder):
                problems.append(
                    f"{key}: the template folder {folder} holds {what}, {path}; a template "
                    "could publish it. Keep secrets outside every template folder"
                )
    return problems


ConfigCheck = Callable[["Config"], list[str]]  # problems, each "key: message"


def parse_config(
    data: dict[str, Any],
    source: str,
    base_dir: Path,
    checks: Sequence[ConfigCheck] = (),
    *,
    source_digest: str = "",
) -> Config:
    """Validate a decoded TOML document; raise ConfigError naming every bad key. `checks` are
    further checks by layers above this one (the platforms' own settings)."""
    try:
        config = Config.model_validate(
            {**data, "base_dir": base_dir, "source_digest": source_digest}
        )
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source, data)) from None
    problems: list[str] = []
    for check in checks:
        problems.extend(f"  {p}" for p in check(config))
    problems.extend(f"  {p}" for p in template_folder_problems(config))
    if problems:
        raise ConfigError("\n".join([f"{source}: invalid configuration", *problems]))
    return config


def load_config(path: Path | str | None, checks: Sequence[ConfigCheck] = ()) -> Config:
    """Read and validate a configuration file; None means the bundled rehearsal configuration.
    Platform settings are checked by `broadcaster.runtime.configuration.load_config`, which
    knows the platforms."""
    file = Path(path) if path is not None else DEFAULT_CONFIG
    try:
        raw = file.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read the configuration ({exc.strerror})") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{file}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{file}: not valid TOML ({exc})") from None
    return parse_config(
        data, str(file), file.resolve().parent, checks, source_digest=config_digest(raw)
    )
