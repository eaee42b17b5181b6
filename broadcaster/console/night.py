"""The night view, and its live updates by server-sent events.

One watcher per console asks the database twice a second whether anything changed (a few index
look-ups: `Store.change_marker`); when it did, it renders the night's panels once and every
open page receives them. Nothing else is polled, and a quiet night costs almost nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from markupsafe import Markup
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from broadcaster.console.app import Ctx, authenticate, page
from broadcaster.console.users import Role
from broadcaster.domain.posts import ALL_STATES
from broadcaster.runtime.status import collect_status

if TYPE_CHECKING:
    from broadcaster.console.app import Console

log = logging.getLogger(__name__)

POLL = 0.5  # seconds between "did anything change?"
REFRESH = 15.0  # re-render anyway this often (ages, next slots and budgets move with time)
KEEPALIVE = 10.0  # an SSE comment this often, so proxies keep the stream open


def night_data(console: Console) -> dict[str, Any]:
    """The night view's data, from `collect_status` (as `broadcaster status` prints it)."""
    report = collect_status(console.config, console.store)
    totals: dict[str, int] = {}
    for states in report["outbox"].values():
        for state, n in states.items():
            totals[state] = totals.get(state, 0) + n
    now = datetime.now(UTC)
    last = report["last_snapshot"]
    age = None
    if last and last.get("received_at"):
        age = (now - datetime.fromisoformat(last["received_at"])).total_seconds()
    reauth = {
        a["name"]
        for a in report["accounts"]
        if a["state"] == "paused" and "re-authorise" in (a.get("reason") or "")
    }
    return {
        "report": report,
        "totals": totals,
        "states": list(ALL_STATES),
        "age": age,
        "mode": console.store.mode(),
        "reauth": reauth,
        "live": report.get("live"),  # the live video channel's destinations, where reported
        "rendered": now,
    }


def night_fragment(console: Console) -> str:
    data = night_data(console)
    return console.pages.get_template("night_panels.html").render(**data)


class Watcher:
    """Renders the night's panels when the database changes; pages wait for new versions."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.version = 0
        self.html = ""
        self._marker: Any = None
        self._rendered = 0.0
        self._changed: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.closing = False

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._changed = asyncio.Event()
            self._loop = asyncio.get_running_loop()
            self._task = self._loop.create_task(self._run(), name="night")

    def close_streams(self) -> None:
        """End every open event stream (the server is stopping); safe from any thread."""
        self.closing = True
        loop, changed = self._loop, self._changed
        if loop is not None and changed is not None and not loop.is_closed():
            loop.call_soon_threadsafe(changed.set)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None

    async def check(self) -> bool:
        """Look once; True when the panels changed (and were rendered again)."""
        marker = await run_in_threadpool(self.console.store.change_marker)
        if marker == self._marker and time.monotonic() - self._rendered < REFRESH:
            return False
        html = await run_in_threadpool(night_fragment, self.console)
        self._marker, self._rendered = marker, time.monotonic()
        if html == self.html:
            return False
        self.html = html
        self.version += 1
        if self._changed is not None:
            self._changed.set()
            self._changed = asyncio.Event()
        return True

    async def _run(self) -> None:
        while True:
            try:
                await self.check()
            except asyncio.CancelledError:
                raise
            except Exception:  # a database hiccup must not end the live view
                log.exception("console: the night view could not be refreshed")
            await asyncio.sleep(POLL)

    async def after(self, version: int, timeout: float) -> tuple[int, str]:
        """The current panels once their version is past `version`, or as they are after
        `timeout` seconds."""
        if self.version <= version and self._changed is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout)
        return self.version, self.html


def _sse(event: str, data: str) -> str:
    lines = "".join(f"data: {line}\n" for line in data.split("\n"))
    return f"event: {event}\n{lines}\n"


async def events(request: Request) -> Response:
    """The night's panels, pushed whenever they change (text/event-stream)."""
    console: Console = request.app.state.console
    if await run_in_threadpool(authenticate, console, request) is None:
        return PlainTextResponse("log in first", status_code=401)
    watcher: Watcher = console.watcher
    watcher.start()
    if not watcher.html:
        await watcher.check()

    async def stream() -> AsyncIterator[str]:
        seen = -1
        yield "retry: 1000\n\n"
        while True:
            version, html = await watcher.after(seen, KEEPALIVE)
            if watcher.closing or await request.is_disconnected():
                return
            if await run_in_threadpool(authenticate, console, request) is None:
                yield _sse("logout", "")
                return
            if version != seen:
                seen = version
                yield _sse("night", html)
            else:
                yield ": still here\n\n"

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


@page(Role.VIEWER)
def night_page(ctx: Ctx) -> Response:
    """The night at a glance: feed, accounts, outbox, findings; live."""
    # The panels were rendered by the autoescaping page environment: they are safe HTML.
    panels = Markup(night_fragment(ctx.console))  # noqa: S704
    return ctx.render("night.html", panels=panels)


@page(Role.VIEWER, fragment=True)
def night_panels(ctx: Ctx) -> Response:
    """The night's panels alone (what the live updates carry)."""
    return ctx.fragment("night_panels.html", **night_data(ctx.console))


def routes() -> list[BaseRoute]:
    return [
        Route("/", night_page, methods=["GET"]),
        Route("/night", night_panels, methods=["GET"]),
        Route("/events", events, methods=["GET"]),
    ]
