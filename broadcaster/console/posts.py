"""Posts: the timeline per platform, one post in full, and what an operator does to a post.

Each post is shown as its platform would show it: the text, its length counted the platform's
way against the platform's limit, its title and card where the platform has them, and its link
once sent. The actions are `operate`'s, with the console's user as the actor: a post held by a
plausibility gate is approved only with a confirmation that names the gate's finding.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from starlette.responses import FileResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from broadcaster.console.app import Ctx, Forbidden, page
from broadcaster.console.users import Role
from broadcaster.core.config import AccountConfig
from broadcaster.delivery.cards import CardMaker
from broadcaster.domain.events import EventKind
from broadcaster.domain.limits import shorten
from broadcaster.domain.posts import ALL_STATES, HoldKind, PostState
from broadcaster.outbox.operations import (
    OperatorError,
    PostFilter,
    approve,
    cancel,
    count_by_state,
    edit_text,
    find_posts,
    hold,
    mark_sent,
    post_history,
    retry,
    show_post,
)
from broadcaster.publishers import capabilities_for, text_limits

PAGE = 50
# Held for what no approval can fix: a secret in its text (masked, so approving would post the
# mask), or test data without its [TEST] marker. The console offers only cancel.
NEVER_APPROVED = (HoldKind.SECRET, HoldKind.TEST_DATA)
_UNIT = {"chars": "characters", "utf16": "UTF-16 units", "x-weighted": "weighted characters"}


def finding_token(reason: str | None) -> str:
    """Names one gate finding in a confirmation form: approving with it confirms that very
    finding, not one that replaced it meanwhile."""
    return hashlib.sha256((reason or "").encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class PostView:
    """A post as its platform would show it, with what the console knows about it."""

    row: Any
    count: int | None
    limit: int
    unit: str
    card: bool  # the platform takes a card and one can be shown
    drawn: bool  # its card is drawn already (shown in the timeline; others on the post's page)

    @property
    def fits(self) -> bool:
        return self.count is None or self.count <= self.limit

    @property
    def gated(self) -> bool:
        return self.row.state == PostState.HELD and self.row.hold_kind == HoldKind.GATE

    @property
    def in_doubt(self) -> bool:
        return self.row.state == PostState.HELD and self.row.hold_kind == HoldKind.IN_DOUBT

    @property
    def approvable(self) -> bool:
        row = self.row
        # A burst's post an operator held before it was rendered has no text yet, and is
        # released like any other (its text is written when it is sent).
        return (
            row.state == PostState.HELD
            and (row.text is not None or row.hold_kind == HoldKind.OPERATOR)
            and row.hold_kind not in (HoldKind.TEMPLATE, *NEVER_APPROVED)
        )

    @property
    def finding(self) -> str:
        return self.row.gate_reason or self.row.hold_reason or ""

    @property
    def token(self) -> str:
        return finding_token(self.finding)


def view_of(ctx: Ctx, row: Any) -> PostView:
    limit, _ = text_limits(row.platform, ctx.config.limits)
    count = limit.count(row.text) if row.text is not None else None
    card = (
        capabilities_for(row.platform).card is not None
        and row.event_kind != EventKind.ANNOUNCEMENT
        and (bool(row.wants_card) or bool(row.media))
    )
    return PostView(row, count, limit.limit, _UNIT[limit.counter], card, card and _drawn(ctx, row))


def _drawn(ctx: Ctx, row: Any) -> bool:
    return _card_file(ctx, row) is not None


def _card_file(ctx: Ctx, row: Any) -> Path | None:
    """The post's card file, if it was drawn into the configured cards folder."""
    cards = ctx.config.path(ctx.config.cards.dir)
    if cards is None:
        return None
    root = cards.resolve()
    for media in row.media or ():
        path = Path(media).resolve()
        if root in path.parents and path.is_file():
            return path
    return None


def _filter(ctx: Ctx) -> PostFilter:
    state = ctx.field("state") or None
    if state is not None and state not in ALL_STATES:
        state = None
    kind = ctx.field("kind") or None
    if kind is not None and kind not in {k.value for k in EventKind}:
        kind = None
    return PostFilter(
        state=state,
        platform=ctx.field("platform") or None,
        account=ctx.field("account") or None,
        contest=ctx.field("contest").strip()[:200] or None,
        kind=kind,
    )


def _query(where: PostFilter, **changes: Any) -> str:
    values = {
        "state": where.state,
        "platform": where.platform,
        "account": where.account,
        "contest": where.contest,
        "kind": where.kind,
        **changes,
    }
    return urlencode({k: v for k, v in values.items() if v})


@page(Role.VIEWER)
def timeline(ctx: Ctx) -> Response:
    """Posts, newest first, filtered by state, platform, account, contest and event kind."""
    where = _filter(ctx)
    before = ctx.field("before")
    before_id = int(before) if before.isdigit() else None
    rows = find_posts(ctx.store, where, before_id=before_id, limit=PAGE + 1)
    more = len(rows) > PAGE
    rows = rows[:PAGE]
    counts = count_by_state(ctx.store, where)
    platforms = sorted({a.platform for a in ctx.config.accounts})
    return ctx.render(
        "posts.html",
        posts=[view_of(ctx, r) for r in rows],
        where=where,
        counts=counts,
        total=sum(counts.values()),
        states=ALL_STATES,
        kinds=[k.value for k in EventKind],
        platforms=platforms,
        accounts=[a.name for a in ctx.config.accounts],
        older=_query(where, before=rows[-1].id) if more and rows else None,
        paged=before_id is not None,
        query=_query,
    )


def _load(ctx: Ctx, post_id: int) -> tuple[Any, Any]:
    try:
        return show_post(ctx.store, post_id)
    except OperatorError as exc:
        raise NotFound(str(exc)) from None


class NotFound(Exception):
    pass


@page(Role.VIEWER)
def post_page(ctx: Ctx) -> Response:
    """One post in full: as its platform would show it, why it waits, its history."""
    post_id = int(ctx.request.path_params["post_id"])
    try:
        row, event = _load(ctx, post_id)
    except NotFound as exc:
        return ctx.render("refused.html", status=404, message=str(exc))
    return ctx.render(
        "post.html",
        post=view_of(ctx, row),
        event=event,
        history=post_history(ctx.store, post_id),
        configured=any(a.name == row.account for a in ctx.config.accounts),
    )


@page(Role.VIEWER)
def post_card(ctx: Ctx) -> Response:
    """The post's result card: the drawn file once sent, else drawn now as it would be."""
    post_id = int(ctx.request.path_params["post_id"])
    row = ctx.store.post_row(post_id)
    if row is None:
        return PlainTextResponse("no such post", status_code=404)
    if not view_of(ctx, row).card:
        return PlainTextResponse("this post has no card", status_code=404)
    drawn = _card_file(ctx, row)
    if drawn is not None:
        return FileResponse(drawn, media_type=_media_type(drawn))
    account = next((a for a in ctx.config.accounts if a.name == row.account), None)
    if account is None:
        account = AccountConfig(name=row.account, platform=row.platform)
    try:
        path = CardMaker(ctx.config, ctx.store, ctx.console.scratch / "cards").card_for(
            row, account
        )
    except Exception as exc:  # a card that cannot be drawn is shown as such, never a 500
        return PlainTextResponse(f"the card cannot be drawn: {exc}", status_code=404)
    return FileResponse(path, media_type=_media_type(path))


def _media_type(path: Path) -> str:
    return "image/jpeg" if path.suffix.lower() in (".jpg", ".jpeg") else "image/png"


# -- actions -----------------------------------------------------------------------------------


def _act(ctx: Ctx, post_id: int) -> str:
    """Do the posted action on one post; returns what to tell the operator."""
    action = ctx.request.path_params["action"]
    actor = ctx.user.name
    if action == "approve":
        row, _ = _load(ctx, post_id)
        if row.state == PostState.HELD and row.hold_kind in NEVER_APPROVED:
            raise OperatorError(
                f"post #{post_id} cannot be approved ({row.hold_reason}); cancel it, and fix "
                "what made it"
            )
        if row.state == PostState.HELD and row.hold_kind == HoldKind.GATE:
            finding = row.gate_reason or row.hold_reason or ""
            if ctx.field("confirm") != "yes" or ctx.field("finding") != finding_token(finding):
                raise OperatorError(
                    f"post #{post_id} is held by a plausibility gate: {finding}. Tick the box "
                    "confirming you have checked this finding, then approve"
                )
        changes = approve(ctx.store, [post_id], actor=actor)
        done = f"post #{post_id} approved: it goes out on its account's next slot"
    elif action == "hold":
        changes = hold(ctx.store, [post_id], actor=actor)
        done = f"post #{post_id} held"
    elif action == "cancel":
        changes = cancel(ctx.store, [post_id], actor=actor)
        done = f"post #{post_id} cancelled: it will never be sent"
    elif action == "retry":
        changes = retry(ctx.store, [post_id], actor=actor)
        done = f"post #{post_id} queued again"
    elif action == "mark-sent":
        url = ctx.field("url").strip() or None
        if url is not None and urlsplit(url).scheme not in ("http", "https"):
            raise OperatorError("the link must be an http(s) address, or empty")
        changes = mark_sent(ctx.store, post_id, url, actor=actor)
        done = f"post #{post_id} recorded as published; it will never be sent again"
    elif action == "edit":
        row, _ = _load(ctx, post_id)
        text = ctx.field("text").replace("\r\n", "\n").strip()
        limit, title_limit = text_limits(row.platform, ctx.config.limits)
        if limit.count(text) > limit.limit:
            raise OperatorError(
                f"the new text is {limit.count(text)} {_UNIT[limit.counter]}; "
                f"{row.platform} takes {limit.limit}"
            )
        title = shorten(text.split("\n", 1)[0], title_limit) if title_limit else None
        changes = [edit_text(ctx.store, post_id, text, title=title, actor=actor)]
        done = f"post #{post_id}: text changed; it is still held until approved"
    else:
        raise NotFound(f"no action {action!r}")
    if not changes:
        raise OperatorError(f"post #{post_id} changed meanwhile; nothing was done: look again")
    return done


@page(Role.OPERATOR)
def post_action(ctx: Ctx) -> Response:
    """approve, hold, cancel, retry, mark-sent or edit one post."""
    post_id = int(ctx.request.path_params["post_id"])
    try:
        ctx.flash("ok", _act(ctx, post_id))
    except OperatorError as exc:
        ctx.flash("error", str(exc))
    except NotFound as exc:
        raise Forbidden(str(exc)) from None
    return ctx.back(f"/posts/{post_id}")


def routes() -> list[BaseRoute]:
    return [
        Route("/posts", timeline, methods=["GET"]),
        Route("/posts/{post_id:int}", post_page, methods=["GET"]),
        Route("/posts/{post_id:int}/card", post_card, methods=["GET"]),
        Route("/posts/{post_id:int}/{action:str}", post_action, methods=["POST"]),
    ]
