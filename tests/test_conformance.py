"""The publisher contract, checked for every platform in the registry (docs/platforms.md).

Each registered publisher is aimed at the local emulator by its own `emulator_account` and
driven over real HTTP: the emulator answers with the platform's real success and error bodies
and headers, and its faults (`platform:kind`) put each error in the platform's own shape. So a
new platform gets this whole suite by registering its publisher and its emulator module;
nothing here names a platform except the table of realistic refusal codes (a new platform gets
a generic one). The dry run, which has no platform, is held to the cases that apply to it.

The cases, table-driven where they are tables:
- publish a text, publish with a card (where `capabilities.card`), exactly one post each;
- find a post after a send left in doubt (a dropped connection after the platform acted), or
  say it cannot look (NotImplementedError: held for an operator); never a wrong post;
- delete and edit where the capabilities say so;
- each error class from the platform's own answer: retry later with the platform's wait,
  in doubt, re-authorise (or a refresh that posts exactly once), rejected;
- limits counted the platform's way: a text exactly at the limit (Khmer, emoji and Latin
  mixed, where the counts differ) is accepted, one unit more does not fit;
- no secret in any error message.
"""

from __future__ import annotations

import contextlib
import itertools
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from broadcaster.core.clock import WallClock
from broadcaster.core.config import AccountConfig
from broadcaster.core.secrets import Secrets, TokenStore
from broadcaster.publishers import registry
from broadcaster.publishers.base import (
    Capabilities,
    InDoubt,
    MemoryState,
    Post,
    PublishedRef,
    Publisher,
    PublisherEnv,
    Reauthorize,
    Rejected,
    RetryLater,
)
from broadcaster.publishers.dryrun import read_posts
from broadcaster.rehearsal.emulator import Emulator, EmulatorServer, Limits

PLATFORMS = registry.platforms()
WAIT = 120  # seconds a 429 asks for: whole minutes, so Graph's minutes say it exactly

# A refusal each platform documents as final, in its own words; a platform not listed gets a
# generic 400 (a number, which every emulated platform accepts as an error code).
REFUSAL = {
    "facebook": "code=368",  # blocked by policy
    "youtube": "code=forbidden@403",
    "tiktok": "code=spam_risk_user_banned_from_posting@403",
    "x": "code=Forbidden@403",
    "telegram": "code=too_long",  # 400 "Bad Request: message is too long"
}


def caps(platform: str) -> Capabilities:
    return registry.publisher_class(platform).capabilities


def has_emulator(platform: str) -> bool:
    cls = registry.publisher_class(platform)
    return cls.emulator_account("http://127.0.0.1:1", Path("/nonexistent")) is not None


EMULATED = [p for p in PLATFORMS if has_emulator(p)]


class Checkpoints:
    def __init__(self) -> None:
        self.values: dict[int, str] = {}

    def __call__(self, outbox_id: int, value: str) -> None:
        self.values[outbox_id] = value


_ids = itertools.count(1)


@dataclass
class Subject:
    """One platform's publisher, aimed at the emulator (or, for the dry run, its file)."""

    platform: str
    publisher: Publisher
    workdir: Path
    server: EmulatorServer | None = None
    secrets: list[str] = field(default_factory=list)

    @property
    def caps(self) -> Capabilities:
        return type(self.publisher).capabilities

    def post(self, text: str | None = None, *, card: bool = False, attempt: int = 1) -> Post:
        n = next(_ids)
        media = (str(self.card()),) if card else ()
        return Post(
            outbox_id=n,
            idempotency_key=f"conformance/{n}|{self.platform}|{self.platform}-conformance",
            account=f"{self.platform}-conformance",
            platform=self.platform,
            event_key=f"conformance/{n}",
            event_kind="called",
            contest_id=None,
            text=text or f"[TEST] conformance {uuid.uuid4().hex[:12]}: Ana wins Northbay",
            created_at=datetime.now(UTC),
            media=media,
            attempt=attempt,
        )

    def card(self) -> Path:
        spec = self.caps.card
        assert spec is not None
        suffix = ".jpg" if spec.format == "JPEG" else ".png"
        path = self.workdir / f"card-{next(_ids)}{suffix}"
        Image.new("RGB", (spec.width, spec.height), (31, 78, 121)).save(path, spec.format)
        return path

    def fault(self, kind: str) -> None:
        assert self.server is not None
        self.server.emulator.add_faults(f"{self.platform}:{kind}")

    def received(self) -> list[dict[str, Any]]:
        """What reached the platform: the emulator's record, or the dry run's file."""
        if self.server is None:
            return [
                {"id": r["idempotency_key"], "text": r["text"], "media": r["media"]}
                for r in read_posts(self.workdir / "posts.jsonl")
            ]
        return [
            p for p in self.server.emulator.snapshot()["posts"] if p["platform"] == self.platform
        ]

    def with_text(self, text: str) -> list[dict[str, Any]]:
        return [p for p in self.received() if p["text"] == text]

    def clean(self, error: BaseException) -> None:
        """No secret in an error's message."""
        message = str(error)
        for secret in self.secrets:
            assert secret not in message, f"a secret leaked into {type(error).__name__}"


def make_subject(platform: str, workdir: Path, server: EmulatorServer | None) -> Subject:
    cls = registry.publisher_class(platform)
    secrets: dict[str, str] = {}
    tokens = TokenStore(workdir / "tokens.json")
    settings: dict[str, Any] = {}
    if server is not None:
        emu = cls.emulator_account(server.url, workdir)
        assert emu is not None
        settings, secrets = emu.settings, emu.secrets
        if emu.tokens:
            tokens.put(f"{platform}-conformance", emu.tokens)
    account = AccountConfig.model_validate(
        {"name": f"{platform}-conformance", "platform": platform, "dry_run": False, **settings}
    )
    env = PublisherEnv(
        clock=WallClock(),
        posts_path=workdir / "posts.jsonl",
        secrets=Secrets(environ=secrets),
        tokens=tokens,
        state=MemoryState(),
        checkpoint=Checkpoints(),
    )
    values = [*secrets.values()]
    values += [v for v in tokens.get(account.name).values() if isinstance(v, str)]
    return Subject(platform, cls(account, env), workdir, server, values)


@pytest.fixture
def subject(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Subject]:
    platform = request.param
    server = None
    if has_emulator(platform):
        server = EmulatorServer(emulator=Emulator(limits=Limits(hang_seconds=2))).start()
    try:
        sub = make_subject(platform, tmp_path, server)
        try:
            yield sub
        finally:
            sub.publisher.close()
    finally:
        if server is not None:
            server.stop()


def platforms(*, where: Any = None, emulated: bool = False) -> Any:
    chosen = [p for p in (EMULATED if emulated else PLATFORMS) if where is None or where(caps(p))]
    return pytest.mark.parametrize("subject", chosen, indirect=True)


def publish_one(sub: Subject, *, text: str | None = None) -> tuple[Post, PublishedRef]:
    """A post as this platform takes one (with a card where it needs one)."""
    post = sub.post(text, card=sub.caps.requires_media)
    return post, sub.publisher.publish(post)


# -- publishing --


@platforms()
def test_publishes_a_text_once(subject: Subject):
    post = subject.post()
    if subject.caps.requires_media:
        with pytest.raises(Rejected) as refused:
            subject.publisher.publish(post)
        subject.clean(refused.value)
        assert subject.with_text(post.text) == []
        return
    ref = subject.publisher.publish(post)
    assert ref.platform_id
    (landed,) = subject.with_text(post.text)
    assert str(landed["id"]) in ref.platform_id


@platforms(where=lambda c: c.card is not None)
def test_publishes_with_its_card_once(subject: Subject):
    post = subject.post(card=True)
    ref = subject.publisher.publish(post)
    (landed,) = subject.with_text(post.text)
    assert landed["media"], "the card did not reach the platform"
    assert str(landed["id"]) in ref.platform_id


# -- a send left in doubt --


@platforms()
def test_a_post_in_doubt_is_found_or_held_never_guessed(subject: Subject):
    publish_one(subject)  # the account has a history before the post in doubt
    post = subject.post(card=subject.caps.requires_media)
    if subject.server is not None:
        subject.fault("close")  # the platform acts, then the connection drops
        with pytest.raises(InDoubt) as doubt:
            subject.publisher.publish(post)
        subject.clean(doubt.value)
    else:
        subject.publisher.publish(post)  # the dry run's answer is lost by a crash
    (landed,) = subject.with_text(post.text)
    if subject.caps.can_find:
        ref = subject.publisher.find(post)
        assert ref is not None
        assert str(landed["id"]) in ref.platform_id
    else:
        with pytest.raises(NotImplementedError):
            subject.publisher.find(post)
    # A post that never reached the platform is never reported found.
    absent = subject.post()
    with contextlib.suppress(NotImplementedError):  # cannot tell: held for an operator
        assert subject.publisher.find(absent) is None


# -- corrections --


@platforms(where=lambda c: c.can_delete, emulated=True)
def test_delete_removes_the_post(subject: Subject):
    post, ref = publish_one(subject)
    subject.publisher.delete(ref)
    (landed,) = subject.with_text(post.text)
    assert landed["deleted"] is True


@platforms(where=lambda c: c.can_edit, emulated=True)
def test_edit_changes_the_text(subject: Subject):
    _, ref = publish_one(subject)
    corrected = f"[TEST] corrected {uuid.uuid4().hex[:8]}: Ben wins <Northbay> & more"
    subject.publisher.edit(ref, corrected)
    assert len(subject.with_text(corrected)) == 1


# -- errors, from the platform's own answers --


@dataclass(frozen=True)
class ErrorCase:
    name: str
    fault: str  # the emulator fault, as `platform:<fault>`
    kind: type[Exception]
    delay: tuple[float, float] | None = None  # RetryLater's delay must fall in this range


ERRORS = [
    ErrorCase(
        "rate limited, with the platform's wait", f"429={WAIT}", RetryLater, (WAIT - 1, WAIT + 2)
    ),
    ErrorCase(
        "unavailable, with the platform's wait", f"503={WAIT}", RetryLater, (WAIT - 1, WAIT + 2)
    ),
    ErrorCase("server error after the platform acted", "500", InDoubt),
    ErrorCase("connection dropped after sending", "reset", InDoubt),
]


@pytest.mark.parametrize("case", ERRORS, ids=[c.name for c in ERRORS])
@platforms(emulated=True)
def test_each_error_maps_to_its_kind(subject: Subject, case: ErrorCase):
    subject.fault(case.fault)
    post = subject.post(card=subject.caps.requires_media)
    with pytest.raises(case.kind) as raised:
        subject.publisher.publish(post)
    subject.clean(raised.value)
    if case.delay is not None:
        delay = raised.value.delay  # type: ignore[attr-defined]
        assert delay is not None, "the platform's wait was not passed on"
        assert case.delay[0] <= delay <= case.delay[1]


@platforms(emulated=True)
def test_a_final_refusal_is_rejected(subject: Subject):
    subject.fault(REFUSAL.get(subject.platform, "code=400@400"))
    post = subject.post(card=subject.caps.requires_media)
    with pytest.raises(Rejected) as refused:
        subject.publisher.publish(post)
    subject.clean(refused.value)
    assert subject.with_text(post.text) == []


@platforms(emulated=True)
def test_a_refused_token_reauthorises_or_refreshes_and_posts_once(subject: Subject):
    subject.fault("token_expired")
    post = subject.post(card=subject.caps.requires_media)
    outcome: Exception | None = None
    try:
        subject.publisher.publish(post)
    except Reauthorize as exc:
        outcome = exc
    if outcome is None:
        assert len(subject.with_text(post.text)) == 1  # refreshed, then posted exactly once
        return
    subject.clean(outcome)
    assert "`broadcaster " in str(outcome), "a re-authorisation names the command that fixes it"
    assert subject.with_text(post.text) == []


def _refreshing(platform: str) -> bool:
    emu = registry.publisher_class(platform).emulator_account("http://127.0.0.1:1", Path("/x"))
    return emu is not None and "refresh_token" in emu.tokens


@pytest.mark.parametrize("subject", [p for p in EMULATED if _refreshing(p)], indirect=True)
def test_a_refused_refresh_reauthorises(subject: Subject):
    store = subject.publisher.env.tokens
    assert store is not None
    name = subject.publisher.account.name
    tokens = store.get(name)
    # The emulator refuses refresh tokens it has revoked (named so); the access token expires.
    store.put(name, {**tokens, "refresh_token": "revoked-by-the-user", "expires_at": 1})
    subject.fault("token_expired")
    publisher = type(subject.publisher)(subject.publisher.account, subject.publisher.env)
    try:
        with pytest.raises(Reauthorize) as refused:
            publisher.publish(subject.post(card=subject.caps.requires_media))
    finally:
        publisher.close()
    subject.clean(refused.value)


# -- limits, counted the platform's way --


def at_limit(caps: Capabilities, head: str) -> str:
    """A text the platform counts as exactly its limit: Khmer (two units on X), emoji (two
    UTF-16 units, one character) and Latin (one everywhere), so a wrong counter overshoots or
    falls short."""
    limit = caps.text
    text = head + " "
    for piece in itertools.cycle(["ក", "😀", "ា", " "]):
        if limit.count(text + piece + "a" * 8) > limit.limit:
            break
        text += piece
    while limit.count(text + "a") <= limit.limit:
        text += "a"
    assert limit.count(text) == limit.limit
    return text


@platforms(where=lambda c: c.text.limit <= 10_000)
def test_a_text_at_the_limit_counted_the_platforms_way_is_accepted(subject: Subject):
    text = at_limit(subject.caps, f"[TEST] limit {uuid.uuid4().hex[:8]}")
    assert not subject.caps.text.fits(text + "a")
    post = subject.post(text, card=subject.caps.requires_media)
    subject.publisher.publish(post)
    assert len(subject.with_text(text)) == 1


@platforms(where=lambda c: c.text.limit <= 10_000, emulated=True)
def test_one_unit_over_the_limit_is_refused_by_the_platform(subject: Subject):
    text = at_limit(subject.caps, f"[TEST] over {uuid.uuid4().hex[:8]}") + "a"
    with pytest.raises(Rejected) as refused:
        subject.publisher.publish(subject.post(text, card=subject.caps.requires_media))
    subject.clean(refused.value)
    assert subject.with_text(text) == []


def test_every_registered_platform_is_in_this_suite():
    """Registering a publisher is enough to be checked: every real platform has an emulator
    account (a publisher without one would escape the HTTP cases)."""
    assert set(EMULATED) == set(registry.real_platforms())
