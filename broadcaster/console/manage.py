"""Accounts (pause and resume), announcements, the audit trail, and the console's users."""

from __future__ import annotations

import secrets

from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from broadcaster.console.app import Ctx, Forbidden, page
from broadcaster.console.users import Role, UserError
from broadcaster.outbox.announce import AnnouncementError, announce, measure
from broadcaster.outbox.audit import entries
from broadcaster.outbox.operations import pause, resume
from broadcaster.runtime.status import collect_status

# -- accounts ----------------------------------------------------------------------------------


@page(Role.VIEWER)
def accounts_page(ctx: Ctx) -> Response:
    """Each account's state, budget, next planned send, and whether it needs re-authorising."""
    report = collect_status(ctx.config, ctx.store)
    return ctx.render(
        "accounts.html",
        accounts=report["accounts"],
        outbox=report["outbox"],
        platforms=sorted({a.platform for a in ctx.config.accounts}),
    )


def _targets(ctx: Ctx) -> list[str]:
    """The accounts a pause or resume names: one account, or every account of a platform."""
    target = ctx.field("target")
    names = [a.name for a in ctx.config.accounts if target in (a.name, a.platform)]
    if not names:
        raise Forbidden(f"no account or platform {target!r} in the configuration")
    return names


@page(Role.OPERATOR)
def accounts_pause(ctx: Ctx) -> Response:
    names = _targets(ctx)
    reason = ctx.field("reason").strip()[:300] or "paused by an operator"
    pause(ctx.store, names, reason, actor=ctx.user.name)
    ctx.flash("ok", f"paused: {', '.join(names)} ({reason})")
    return ctx.back("/accounts")


@page(Role.OPERATOR)
def accounts_resume(ctx: Ctx) -> Response:
    names = _targets(ctx)
    resume(ctx.store, names, actor=ctx.user.name)
    ctx.flash("ok", f"resumed: {', '.join(names)}")
    return ctx.back("/accounts")


# -- announcements -----------------------------------------------------------------------------


def _announce_form(ctx: Ctx, status: int = 200, **values: object) -> Response:
    chosen = ctx.fields("accounts")
    text = ctx.field("text")
    return ctx.render(
        "announce.html",
        status=status,
        accounts=ctx.config.accounts,
        chosen=set(chosen),
        text=text,
        fits=measure(ctx.config, text, chosen) if text and chosen else [],
        nonce=secrets.token_urlsafe(16),
        **values,
    )


@page(Role.VIEWER)
def announce_page(ctx: Ctx) -> Response:
    """Write a post of your own for chosen accounts."""
    return _announce_form(ctx)


@page(Role.OPERATOR, fragment=True)
def announce_check(ctx: Ctx) -> Response:
    """How the draft measures on each chosen account (for the form, as it is typed)."""
    return ctx.fragment(
        "announce_fits.html", fits=measure(ctx.config, ctx.field("text"), ctx.fields("accounts"))
    )


@page(Role.OPERATOR)
def announce_post(ctx: Ctx) -> Response:
    try:
        made = announce(
            ctx.config,
            ctx.store,
            ctx.field("text"),
            ctx.fields("accounts"),
            actor=ctx.user.name,
            nonce=ctx.field("nonce"),
        )
    except AnnouncementError as exc:
        return _announce_form(ctx, status=422, error=str(exc))
    ids = ", ".join(f"#{i}" for i in made.post_ids)
    ctx.flash("ok", f"announcement queued as posts {ids}: they go out like every other post")
    return ctx.back("/posts?kind=announcement")


# -- the audit trail ---------------------------------------------------------------------------


@page(Role.VIEWER)
def audit_page(ctx: Ctx) -> Response:
    """Every action, newest first: who, when, what (the same trail `broadcaster audit` reads)."""
    before = ctx.field("before")
    actor = ctx.field("actor").strip() or None
    action = ctx.field("action").strip() or None
    rows = entries(
        ctx.store,
        limit=101,
        before_id=int(before) if before.isdigit() else None,
        actor=actor,
        action=action,
    )
    return ctx.render(
        "audit.html",
        rows=rows[:100],
        older=rows[99].id if len(rows) > 100 else None,
        actor=actor or "",
        action=action or "",
    )


# -- users -------------------------------------------------------------------------------------


@page(Role.ADMIN)
def users_page(ctx: Ctx) -> Response:
    """Who may use the console, and with which role."""
    return ctx.render("users.html", users=ctx.console.users.all(), roles=list(Role))


def _role(ctx: Ctx) -> Role:
    try:
        return Role(ctx.field("role"))
    except ValueError:
        raise Forbidden(f"no role {ctx.field('role')!r}") from None


def _user_change(ctx: Ctx) -> Response:
    users = ctx.console.users
    action = ctx.request.path_params["action"]
    name = ctx.field("name").strip()
    try:
        if action == "add":
            if ctx.field("password") != ctx.field("again"):
                raise UserError("the two passwords differ")
            role = _role(ctx)
            users.add(name, role, ctx.field("password"))
            detail = f"added with role {role.value}"
        elif action == "role":
            role = _role(ctx)
            users.set_role(name, role)
            detail = f"role set to {role.value}"
        elif action == "password":
            if ctx.field("password") != ctx.field("again"):
                raise UserError("the two passwords differ")
            users.set_password(name, ctx.field("password"))
            ctx.console.sessions.close_user(name)
            detail = "password changed; their sessions ended"
        elif action == "delete":
            if name == ctx.user.name:
                raise UserError("you cannot remove yourself")
            users.remove(name)
            ctx.console.sessions.close_user(name)
            detail = "removed; their sessions ended"
        else:
            raise Forbidden(f"no action {action!r}")
    except UserError as exc:
        ctx.flash("error", str(exc))
        return ctx.back("/users")
    ctx.console.record(ctx.user.name, f"user-{action}", f"console user {name}", detail)
    ctx.flash("ok", f"{name}: {detail}")
    return ctx.back("/users")


@page(Role.ADMIN)
def users_change(ctx: Ctx) -> Response:
    return _user_change(ctx)


def routes() -> list[BaseRoute]:
    return [
        Route("/accounts", accounts_page, methods=["GET"]),
        Route("/accounts/pause", accounts_pause, methods=["POST"]),
        Route("/accounts/resume", accounts_resume, methods=["POST"]),
        Route("/announce", announce_page, methods=["GET"]),
        Route("/announce", announce_post, methods=["POST"]),
        Route("/announce/check", announce_check, methods=["POST"]),
        Route("/audit", audit_page, methods=["GET"]),
        Route("/users", users_page, methods=["GET"]),
        Route("/users/{action:str}", users_change, methods=["POST"]),
    ]
