"""The console's web application: what every page shares, the login, and the routes.

Every route but the login page and the static assets needs a session (`page`); each states the
role it needs; every POST carries the session's CSRF token (a form field, or the X-CSRF-Token
header for the page's own scripts) and, when the browser sends one, an Origin of this console.
Handlers run in a worker thread: they read and act through `operate`, `announce`, `status` and
`audit`, as the command line does, and never write SQL of their own.
"""

from __future__ import annotations

import logging
import secrets
import shutil
import tempfile
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from broadcaster.console.auth import LoginLimiter, Session, Sessions, same_token
from broadcaster.console.users import Role, User, UserError, UserStore, users_path
from broadcaster.core.config import Config
from broadcaster.core.secrets import register_config_secrets
from broadcaster.core.terminal import visible
from broadcaster.outbox import audit
from broadcaster.outbox.store import Store

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
PAGES = HERE / "templates"
STATIC = HERE / "static"
LOGIN_COOKIE = "broadcaster_login"  # the login form's own CSRF token, before any session
MAX_BODY = 1_000_000
CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; "
    "object-src 'none'"
)


class Forbidden(Exception):
    """The action is refused (role, CSRF, origin); the message says why."""


def _finalize(value: Any) -> Any:
    """Every value a page shows: registered secrets masked, control and bidi-override
    characters made visible (then autoescaped, as Jinja does with every value here)."""
    if isinstance(value, Markup) or not isinstance(value, str):
        return value
    return visible(value, newlines=True)


def page_environment(config: Config) -> Environment:
    """The console's own page templates (ours, not operators'): autoescaped, strict."""
    env = Environment(
        loader=FileSystemLoader(str(PAGES)),
        autoescape=True,
        undefined=StrictUndefined,
        finalize=_finalize,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    tz = config.election.tz

    def local(moment: datetime | str | float | None, fmt: str = "%H:%M:%S") -> str:
        """A time (a datetime, ISO text or epoch seconds) in the election's timezone."""
        if moment is None or moment == "":
            return ""
        if isinstance(moment, int | float):
            moment = datetime.fromtimestamp(moment, UTC)
        elif isinstance(moment, str):
            moment = datetime.fromisoformat(moment)
        return moment.astimezone(tz).strftime(fmt)

    def safe_url(url: str | None) -> str | None:
        """A link to a post on its platform, only if it is an http(s) address."""
        if not url:
            return None
        return url if urlsplit(url).scheme in ("http", "https") else None

    env.filters["local"] = local
    env.filters["safe_url"] = safe_url
    env.globals["Role"] = Role
    return env


@dataclass
class Console:
    """What the pages share: configuration, database, users, sessions."""

    config: Config
    store: Store
    users: UserStore
    own_store: bool = False
    sessions: Sessions = field(init=False)
    limiter: LoginLimiter = field(init=False)
    pages: Environment = field(init=False)
    scratch: Path = field(init=False)  # cards drawn for pages, removed at shutdown
    watcher: Any = field(init=False)

    def __post_init__(self) -> None:
        c = self.config.console
        self.sessions = Sessions(c.session_hours * 3600)
        self.limiter = LoginLimiter(c.login_attempts, c.login_attempts_per_address, c.login_window)
        self.pages = page_environment(self.config)
        self.scratch = Path(tempfile.mkdtemp(prefix="broadcaster-console-"))
        from broadcaster.console.night import Watcher  # night.py imports this module

        self.watcher = Watcher(self)

    def close(self) -> None:
        shutil.rmtree(self.scratch, ignore_errors=True)
        if self.own_store:
            self.store.close()

    def secure(self, request: Request) -> bool:
        """Cookies are Secure when the console is reached over TLS (its own, or the proxy's)."""
        return self.config.console.tls or request.url.scheme == "https"

    def cookie_name(self, request: Request) -> str:
        # __Host- cookies are refused by browsers unless Secure, for this host only, path /.
        return "__Host-broadcaster" if self.secure(request) else "broadcaster_session"

    def record(self, actor: str, action: str, target: str, detail: str | None = None) -> None:
        """An audit entry for what the console does outside the outbox (logins, templates,
        users), in its own transaction."""
        with self.store.transaction() as conn:
            audit.record(conn, actor, action, target, detail)


@dataclass
class Ctx:
    """One request of a logged-in user."""

    console: Console
    request: Request
    user: User
    session: Session
    form: FormData | None = None

    @property
    def config(self) -> Config:
        return self.console.config

    @property
    def store(self) -> Store:
        return self.console.store

    def can(self, role: Role) -> bool:
        return self.user.role.allows(role)

    def field(self, name: str, default: str = "") -> str:
        value = self.form.get(name) if self.form is not None else None
        if value is None:
            value = self.request.query_params.get(name)
        return str(value) if value is not None else default

    def fields(self, name: str) -> list[str]:
        if self.form is None:
            return []
        return [str(v) for v in self.form.getlist(name)]

    def flash(self, kind: str, message: str) -> None:
        self.session.flashes.append((kind, message))
        del self.session.flashes[:-5]

    def render(self, template: str, status: int = 200, **values: Any) -> HTMLResponse:
        flashes = list(self.session.flashes)
        self.session.flashes.clear()
        html = self.console.pages.get_template(template).render(
            ctx=self,
            user=self.user,
            csrf=self.session.csrf,
            flashes=flashes,
            status=status,
            **values,
        )
        return HTMLResponse(html, status_code=status)

    def fragment(self, template: str, **values: Any) -> HTMLResponse:
        html = self.console.pages.get_template(template).render(
            ctx=self, user=self.user, csrf=self.session.csrf, **values
        )
        return HTMLResponse(html)

    def back(self, default: str) -> RedirectResponse:
        """303 to the form's `next` (a path on this console only), else `default`."""
        target = self.field("next") or default
        if not target.startswith("/") or target.startswith("//") or "\\" in target:
            target = default
        return RedirectResponse(target, status_code=303)


View = Callable[[Ctx], Response]


def _same_origin(request: Request) -> bool:
    """A POST's Origin (or Referer), when the browser sends one, must be this console."""
    origin = request.headers.get("origin") or request.headers.get("referer")
    if not origin or origin == "null":
        return origin != "null"
    parts = urlsplit(origin)
    return (parts.scheme, parts.netloc) == (request.url.scheme, request.url.netloc)


def _refusal(console: Console, request: Request, status: int, message: str) -> Response:
    html = console.pages.get_template("refused.html").render(message=message, status=status)
    return HTMLResponse(html, status_code=status)


def page(role: Role = Role.VIEWER, *, fragment: bool = False) -> Callable[[View], Any]:
    """A route for logged-in users of at least `role`; the view runs in a worker thread."""

    def wrap(view: View) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            console: Console = request.app.state.console
            found = await run_in_threadpool(authenticate, console, request)
            if found is None:
                if request.method == "GET" and not fragment:
                    query = request.url.query
                    target = request.url.path + (f"?{query}" if query else "")
                    return RedirectResponse(f"/login?next={quote(target)}", status_code=303)
                return PlainTextResponse("log in first", status_code=401)
            user, session = found
            form = None
            if request.method == "POST":
                if not _same_origin(request):
                    return _refusal(console, request, 403, "this request is not from the console")
                form = await request.form()
                given = form.get("csrf") or request.headers.get("x-csrf-token")
                if not same_token(str(given) if given else None, session.csrf):
                    return _refusal(
                        console,
                        request,
                        403,
                        "the form's security token is missing or stale (CSRF): reload the page "
                        "and try again",
                    )
            if not user.role.allows(role):
                return _refusal(
                    console,
                    request,
                    403,
                    f"your role ({user.role.value}) cannot do this: it needs {role.value}",
                )
            ctx = Ctx(console, request, user, session, form)
            try:
                return await run_in_threadpool(view, ctx)
            except Forbidden as exc:
                return _refusal(console, request, 403, str(exc))

        endpoint.role = role  # type: ignore[attr-defined]
        endpoint.__name__ = view.__name__
        endpoint.__doc__ = view.__doc__
        return endpoint

    return wrap


def authenticate(console: Console, request: Request) -> tuple[User, Session] | None:
    """The user and session of this request's cookie, if it is valid now."""
    token = request.cookies.get(console.cookie_name(request))
    session = console.sessions.get(token)
    if session is None:
        return None
    try:
        user = console.users.get(session.user)
    except UserError:
        log.exception("console users file unreadable")
        return None
    if user is None or user.stamp != session.stamp:
        console.sessions.close(token)  # removed, or the password changed
        return None
    return user, session


# -- logging in and out ----------------------------------------------------------------------


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _safe_next(target: str | None) -> str:
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def _login_page(
    console: Console, request: Request, status: int = 200, error: str | None = None
) -> Response:
    token = secrets.token_urlsafe(24)
    try:
        no_users = not console.users.all()
    except UserError as exc:  # an unsafe or broken users file: nobody logs in until fixed
        no_users, error, status = False, str(exc), 503
    html = console.pages.get_template("login.html").render(
        csrf=token,
        error=error,
        next=_safe_next(request.query_params.get("next")),
        no_users=no_users,
    )
    response = HTMLResponse(html, status_code=status)
    response.set_cookie(
        LOGIN_COOKIE,
        token,
        max_age=3600,
        httponly=True,
        samesite="strict",
        secure=console.secure(request),
        path="/login",
    )
    return response


async def login_page(request: Request) -> Response:
    console: Console = request.app.state.console
    if await run_in_threadpool(authenticate, console, request):
        return RedirectResponse("/", status_code=303)
    return await run_in_threadpool(_login_page, console, request)


async def login(request: Request) -> Response:
    console: Console = request.app.state.console
    if not _same_origin(request):
        return _refusal(console, request, 403, "this request did not come from the console")
    form = await request.form()
    if not same_token(str(form.get("csrf") or ""), request.cookies.get(LOGIN_COOKIE)):
        return _refusal(
            console, request, 403, "the login form is stale (CSRF): open the login page again"
        )
    name = str(form.get("name") or "").strip()[:64]
    password = str(form.get("password") or "")
    address = _client(request)
    wait = console.limiter.retry_after(name, address)
    if wait > 0:
        log.warning("console login refused for %r from %s: too many attempts", name, address)
        response = await run_in_threadpool(
            _login_page,
            console,
            request,
            429,
            f"too many failed attempts: wait {int(wait) + 1} s before trying again",
        )
        response.headers["Retry-After"] = str(int(wait) + 1)
        return response
    try:
        user = await run_in_threadpool(console.users.verify, name, password)
    except UserError as exc:
        log.error("console login impossible: %s", exc)
        return await run_in_threadpool(_login_page, console, request, 503, str(exc))
    if user is None:
        console.limiter.failed(name, address)
        log.warning("console login failed for %r from %s", name, address)
        return await run_in_threadpool(_login_page, console, request, 401, "wrong name or password")
    console.limiter.succeeded(name)
    token, _session = console.sessions.open(user.name, user.stamp)
    await run_in_threadpool(console.record, user.name, "login", "console", f"from {address}")
    response = RedirectResponse(_safe_next(str(form.get("next") or "/")), status_code=303)
    response.set_cookie(
        console.cookie_name(request),
        token,
        max_age=int(console.config.console.session_hours * 3600),
        httponly=True,
        samesite="strict",
        secure=console.secure(request),
        path="/",
    )
    response.delete_cookie(LOGIN_COOKIE, path="/login")
    return response


@page(Role.VIEWER)
def logout(ctx: Ctx) -> Response:
    """End this session."""
    name = ctx.console.cookie_name(ctx.request)
    ctx.console.sessions.close(ctx.request.cookies.get(name))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(name, path="/", secure=ctx.console.secure(ctx.request), httponly=True)
    return response


# -- the application ---------------------------------------------------------------------------


class Guard:
    """Headers on every response (CSP, no framing, no sniffing, no caching of pages), and a
    bound on request bodies."""

    def __init__(self, app: ASGIApp, *, tls: bool) -> None:
        self.app = app
        self.tls = tls

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY):
            await PlainTextResponse("request too large", status_code=413)(scope, receive, send)
            return
        received = 0

        async def bounded() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > MAX_BODY:
                raise Forbidden("request too large")
            return message

        static = scope["path"].startswith("/static/")

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                extra = [
                    (b"content-security-policy", CSP.encode()),
                    (b"x-content-type-options", b"nosniff"),
                    (b"x-frame-options", b"DENY"),
                    (b"referrer-policy", b"same-origin"),
                    (b"cross-origin-opener-policy", b"same-origin"),
                ]
                if not static:
                    extra.append((b"cache-control", b"no-store"))
                if self.tls:
                    extra.append((b"strict-transport-security", b"max-age=31536000"))
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, bounded, with_headers)


def routes() -> list[BaseRoute]:
    # The pages import this module for `page`, `Ctx` and the roles: imported here, at the
    # first request's routing, not at this module's import.
    from broadcaster.console import manage, night, posts, templates_page

    return [
        Route("/login", login_page, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        *night.routes(),
        *posts.routes(),
        *manage.routes(),
        *templates_page.routes(),
        Mount("/static", app=StaticFiles(directory=str(STATIC)), name="static"),
    ]


def create_app(
    config: Config, store: Store | None = None, *, users: UserStore | None = None
) -> Starlette:
    """The console for `config`, on `store` (opened here, and closed at shutdown, when None)."""
    register_config_secrets(config)
    own = store is None
    store = store or Store(config.database_url)
    store.ensure_indexes()
    console = Console(config, store, users or UserStore(users_path(config)), own_store=own)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> Any:
        try:
            yield
        finally:
            await console.watcher.stop()
            console.close()

    app = Starlette(routes=routes(), lifespan=lifespan)
    app.state.console = console
    app.add_middleware(Guard, tls=config.console.tls)
    return app
