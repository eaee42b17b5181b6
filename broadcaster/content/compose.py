"""From an event and an account to the outbox rows that will be posted.

Renders the account's template, marks test data, checks the text against the platform's limit
counted the platform's way and applies the template's overflow policy, derives a title where the
platform has one, and asks for a result card where the platform takes images. Anything wrong
makes a *held* row carrying the reason, never a broken post and never an exception.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Template

from broadcaster.content.context import View, summary_context, template_vars
from broadcaster.content.render import Budget, Forbidden, Locale, Renderer, RenderError
from broadcaster.content.samples import lint_variables
from broadcaster.core.config import AccountConfig, Config
from broadcaster.core.logs import holds_secret, redact
from broadcaster.domain.events import Event, EventKind
from broadcaster.domain.limits import Overflow, OverLimit, TextLimit, apply_policy, shorten
from broadcaster.domain.posts import HoldKind, NewPost, PostState
from broadcaster.planning.planner import idempotency_key
from broadcaster.publishers import capabilities_for, text_limits

log = logging.getLogger(__name__)

TEST_MARKER = "[TEST]"
LEAK_REASON = (
    "its text contains a secret value (a token or key this configuration uses), masked here; "
    "it was not sent. Find the template or feed value that put it there, fix it, then cancel "
    "this post"
)
TEMPLATE_REASON = "template: "  # held posts whose reason starts so are re-rendered after a fix


@dataclass(frozen=True, slots=True)
class Composed:
    """One post (or thread part) ready for the outbox."""

    text: str
    title: str | None = None


def locale_for(config: Config, account: AccountConfig) -> Locale:
    """How numbers, dates and times are written for an account."""
    return Locale(
        language=config.language_of(account),
        khmer_digits=config.khmer_digits_of(account),
        timezone=config.election.timezone,
        time_format=config.templates.time_format,
        date_format=config.templates.date_format,
    )


class Composer:
    def __init__(self, config: Config, *, dry_run: bool) -> None:
        self.config = config
        self.dry_run = dry_run
        self._renderers: dict[tuple[Any, ...], Renderer] = {}
        self._by_account: dict[str, Renderer] = {}
        self._lint_samples: dict[str, list[dict[str, Any]]] | None = None
        self.forbidden = secret_files(config)

    # -- renderers, one per distinct (folders, locale) --

    def renderer(self, account: AccountConfig) -> Renderer:
        renderer = self._by_account.get(account.name)
        if renderer is not None:
            return renderer
        cfg = self.config
        folders = tuple(
            f for f in (cfg.path(account.templates), cfg.path(cfg.templates.dir)) if f is not None
        )
        locale = locale_for(cfg, account)
        key = (folders, locale)
        renderer = self._renderers.get(key)
        if renderer is None:
            renderer = Renderer(
                [Path(f) for f in folders],
                locale=locale,
                budget=Budget(seconds=cfg.templates.render_seconds),
                forbidden=self.forbidden,
            )
            self._renderers[key] = renderer
        self._by_account[account.name] = renderer
        return renderer

    def preload(self) -> None:
        """Load and check every template the accounts will use. Never raises: a template that
        cannot be loaded or checked, whatever the reason, is broken (its posts are held and
        `problems()` lists it), and the daemon starts anyway."""
        for account in self.config.accounts:
            kinds = [k.value for k in EventKind if account.wants(k)]
            self.renderer(account).preload(account.platform, kinds, self.lint)

    def refresh(self) -> bool:
        """Hot reload: pick up changed templates that pass lint. True when anything changed."""
        changed = False
        for renderer in self._renderers.values():
            changed = bool(renderer.refresh(self.lint)) or changed
        return changed

    def problems(self) -> list[str]:
        seen: dict[str, str] = {}
        for renderer in self._renderers.values():
            for error in renderer.problems.values():
                seen[str(error)] = str(error)
        return sorted(seen)

    # -- checking a template before it is used --

    def lint(self, renderer: Renderer, template: Template, platform: str, kind: str) -> None:
        """Render a template against sample contexts and check the platform's limit; raise
        RenderError (with file and line) on the first problem."""

        policy = self.policy(platform, kind)
        text_limit, title_limit = text_limits(platform, self.config.limits)
        for variables in lint_variables(kind, self.config):
            variables = {**variables, "account": View(name="lint", platform=platform)}
            text = renderer.render_template(template, variables)
            try:
                self._fit(platform, text, text_limit, title_limit, policy)
            except OverLimit as exc:
                raise RenderError(template.filename or template.name or kind, str(exc)) from None

    # -- composing posts --

    def policy(self, platform: str, kind: str) -> Overflow:
        return Overflow(self.config.templates.overflow.get(f"{platform}/{kind}", "fail"))

    def wants_card(self, account: AccountConfig) -> bool:
        caps = capabilities_for(account.platform)
        if caps.card is None or not self.config.cards.enabled:
            return False
        return caps.requires_media or account.cards is not False

    def compose(
        self,
        event: Event,
        account: AccountConfig,
        variables: dict[str, Any],
        key: str,
        *,
        quiet: bool = False,
        memo: dict[Any, Any] | None = None,
    ) -> list[NewPost]:
        """The outbox rows for one event on one account: one, a thread, or one held row.
        Callers that compose one event for several accounts from the same `variables` may
        pass a `memo` (see Renderer.render) so a template shared by accounts runs once."""
        variables = {**variables, "account": self.account_view(account)}
        dry = self.dry_run or account.dry_run
        card = self.wants_card(account)
        cancelled = self._test_data_refused(
            event, account, key, is_test=variables["election"]["is_test"]
        )
        if cancelled is not None:
            return [cancelled]
        try:
            parts = self.compose_text(event, account, variables, memo=memo)
        except RenderError as exc:
            if not quiet:
                log.error("post held, %s: %s", account.name, exc, extra={"account": account.name})
            return [
                self._untexted(
                    event,
                    account,
                    key,
                    PostState.HELD,
                    f"{TEMPLATE_REASON}{exc}",
                    wants_card=card,
                    hold_kind=HoldKind.TEMPLATE,
                )
            ]
        if any(holds_secret(p.text) or holds_secret(p.title) for p in parts):
            # A template or feed value wrote out a secret: never stored, never sent.
            log.error("post held, %s: its text holds a secret value", account.name)
            return [
                NewPost(
                    key,
                    event.key,
                    account.name,
                    account.platform,
                    redact("\n".join(p.text for p in parts)),
                    (),
                    dry,
                    PostState.HELD,
                    LEAK_REASON,
                    hold_kind=HoldKind.SECRET,
                )
            ]
        rows = []
        parent = None
        for i, part in enumerate(parts):
            part_key = key if i == 0 else f"{key}#{i + 1}"
            held = account.require_approval and i == 0
            rows.append(
                NewPost(
                    part_key,
                    event.key,
                    account.name,
                    account.platform,
                    part.text,
                    (),
                    dry,
                    PostState.HELD if held else PostState.PENDING,
                    "awaiting approval" if held else None,
                    title=part.title,
                    thread_parent=parent,
                    wants_card=card and i == 0,
                    hold_kind=HoldKind.APPROVAL if held else None,
                )
            )
            parent = part_key
        return rows

    def account_view(self, account: AccountConfig) -> View:
        """The `account` variable templates see."""
        return View(
            name=account.name,
            platform=account.platform,
            language=self.config.language_of(account),
        )

    def _test_data_refused(
        self, event: Event, account: AccountConfig, key: str, *, is_test: bool
    ) -> NewPost | None:
        """The cancelled row for test data bound for a real account, else None: test data
        never reaches a real account unless the account says it may."""
        if not is_test or self.dry_run or account.dry_run or account.allow_test_posts:
            return None
        return self._untexted(
            event,
            account,
            key,
            PostState.CANCELLED,
            "test data: never posted to a real account (allow_test_posts is off)",
        )

    def _untexted(
        self,
        event: Event,
        account: AccountConfig,
        key: str,
        state: str,
        reason: str | None,
        **extra: Any,
    ) -> NewPost:
        """A row without text yet: cancelled, held before it could be rendered, or pending
        and rendered when it is sent."""
        return NewPost(
            key,
            event.key,
            account.name,
            account.platform,
            None,
            (),
            self.dry_run or account.dry_run,
            state,
            reason,
            **extra,
        )

    def deferred(
        self, event: Event, account: AccountConfig, key: str, *, is_test: bool
    ) -> NewPost | None:
        """The row for a post whose text is rendered when it is about to be sent (a pending
        row without text), or None where it must be rendered now: an account whose posts wait
        for approval (an operator approves text), or a template already known broken (its
        posts are held at once, as they always were). Test data bound for a real account is
        cancelled here as in `compose`."""
        cancelled = self._test_data_refused(event, account, key, is_test=is_test)
        if cancelled is not None:
            return cancelled
        if account.require_approval:
            return None
        if (account.platform, event.kind.value) in self.renderer(account).problems:
            return None
        return self._untexted(
            event, account, key, PostState.PENDING, None, wants_card=self.wants_card(account)
        )

    def compose_text(
        self,
        event: Event,
        account: AccountConfig,
        variables: dict[str, Any],
        *,
        memo: dict[Any, Any] | None = None,
    ) -> list[Composed]:
        """Rendered, marked and fitted text; RenderError for any problem (with file:line)."""
        renderer = self.renderer(account)
        text = renderer.render(
            account.platform, event.kind.value, variables, memo=memo, memo_key=event.key
        )
        if variables["election"]["is_test"] and not text.startswith(TEST_MARKER):
            text = f"{TEST_MARKER} {text}"
        text_limit, title_limit = text_limits(account.platform, self.config.limits)
        policy = self.policy(account.platform, event.kind.value)
        try:
            return self._fit(account.platform, text, text_limit, title_limit, policy)
        except OverLimit as exc:
            source = renderer.source_of(account.platform, event.kind.value)
            raise RenderError(source[0] if source else event.kind.value, str(exc)) from None

    def _fit(
        self,
        platform: str,
        text: str,
        text_limit: TextLimit,
        title_limit: TextLimit | None,
        policy: Overflow,
    ) -> list[Composed]:

        caps = capabilities_for(platform)
        parts = apply_policy(text, text_limit, policy, threads=caps.threads)
        title = None
        if title_limit is not None:
            # The title is the post's first line (without the test marker's repetition).
            first = text.split("\n", 1)[0]
            title = shorten(first, title_limit)
        return [Composed(p, title if i == 0 else None) for i, p in enumerate(parts)]


def secret_files(config: Config) -> list[Forbidden]:
    """The files no template may read, even through a hard link."""
    out = []
    tokens = config.path(config.secrets.tokens)
    if tokens is not None:
        out.append(Forbidden(tokens, "the token store (secrets.tokens)"))
    secrets = config.path(config.secrets.file)
    if secrets is not None:
        out.append(Forbidden(secrets, "the secrets file (secrets.file)"))
    return out


@dataclass(frozen=True, slots=True)
class Summary:
    event: Event
    context: dict[str, Any]
    post: NewPost
    included: list[int]  # the merged posts it replaces


def summary_event(items: list[Event]) -> Event:
    kind = items[0].kind.value
    keys = sorted(e.key for e in items)
    digest = hashlib.sha256("\n".join(keys).encode()).hexdigest()[:12]
    return Event(
        key=f"summary/{kind}/{digest}",
        kind=EventKind.SUMMARY,
        at=max(e.at for e in items),
        data={"kind": kind, "merged": keys},
    )


def compose_summary(
    composer: Composer,
    account: AccountConfig,
    items: list[tuple[int, Event, dict[str, Any]]],
    shared: dict[str, Any],
    item_views: dict[str, Any] | None = None,
) -> Summary | None:
    """A summary post for as many of `items` (post id, event, stored context; oldest first) as
    fit the platform's limit. None when fewer than two fit or the template fails: the posts
    then go out one by one. `item_views`: the items' views made by an earlier call with the
    same `shared` (each item's view is made once for all the attempts)."""
    tz = composer.config.election.timezone
    made: dict[str, Any] = {} if item_views is None else item_views
    text_limit, _ = text_limits(account.platform, composer.config.limits)
    renderer = composer.renderer(account)
    memo: dict[Any, Any] = {}  # the measuring render serves the composing one

    def attempt(n: int) -> tuple[Summary | None, int | None]:
        """The summary of the first `n` items, or None; and its text's length where it could
        be measured (a hint for the search, never what decides)."""
        chosen = items[:n]
        event = summary_event([e for _, e, _ in chosen])
        context = summary_context([(e, ctx) for _, e, ctx in chosen])
        variables = template_vars(event, context, shared, timezone=tz, item_views=made)
        variables = {**variables, "account": composer.account_view(account)}
        try:
            text = renderer.render(
                account.platform, event.kind.value, variables, memo=memo, memo_key=event.key
            )
            length: int | None = text_limit.count(text)
        except RenderError:
            length = None
        key = idempotency_key(event.key, account.platform, account.name)
        rows = composer.compose(event, account, variables, key, quiet=True, memo=memo)
        if len(rows) != 1 or rows[0].text is None:
            return None, length  # too long (or a template problem): try fewer
        return Summary(event, context, rows[0], [i for i, _, _ in chosen]), length

    best, length = attempt(len(items))
    if best is not None:
        return best
    # The most that fit lies in [2, len - 1]: found by interpolating on the texts' lengths
    # (about proportional to the items), which needs two or three tries where halving the
    # range needed up to ten; halving takes over where lengths say nothing.
    lo, hi = 1, len(items)  # `lo` fits (1: nothing tried yet), `hi` does not
    lo_length, hi_length = 0, length
    interpolate = True
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if interpolate and hi_length is not None and hi_length > lo_length:
            guess = lo + int((text_limit.limit - lo_length) * (hi - lo) / (hi_length - lo_length))
            mid = min(max(guess, lo + 1), hi - 1)
        mid = max(mid, 2)
        width = hi - lo
        found, measured = attempt(mid)
        if found is not None:
            best, lo, lo_length = found, mid, measured if measured is not None else lo_length
        else:
            hi, hi_length = mid, measured
        # A guess that did not halve the range is followed by a halving: never slower than
        # halving alone by more than one try in two.
        interpolate = not interpolate or (hi - lo) * 2 <= width
    return best
