"""A local stand-in for the platforms, close enough for the real client libraries.

It answers the endpoints the adapters and the live channel use (Facebook Graph, YouTube Data
API v3 and Google's token endpoint, TikTok's Content Posting API and OAuth, X API v2 and its
media upload, Telegram's Bot API) with their real success and error shapes, enforces their
rate limits, quotas and daily caps, records every accepted post, and injects faults on demand.
`GET /_emulator/posts` lists what it received; `POST /_emulator/faults {"spec": ...}` asks for
faults.

It binds 127.0.0.1 unless told otherwise: it accepts any token and must not be reachable from
outside the machine.

The modules:
  faults.py      the fault spec, the queues, the random mix, refusals and dropped connections
  data.py        Received (an accepted post), Limits, LiveState (the live channel's side)
  state.py       Emulator: posts, rate windows, quota, ids, clock, tokens; thread-safe
  routing.py     Route, Platform, and the Request a route handler gets; dispatch
  server.py      the HTTP handler, the /_emulator endpoints, EmulatorServer
  facebook.py, youtube.py, tiktok.py, x.py, telegram.py
                 one platform each: its route table, limits, error shapes and fault style
  platforms.py   the registry (PLATFORMS) and parse_faults

Fault specification (`--faults`, or POST /_emulator/faults): comma-separated
`platform:kind[:count]`, applied to that platform's next posting calls (Facebook feed and photo
posts, YouTube chat messages, TikTok content/init, X tweets, Telegram sendMessage and sendPhoto;
count defaults to 1). Each answer has the platform's own shape (Graph's error object, Google's
error list, TikTok's error code, X's problem document, the Bot API's `ok: false` with
`parameters.retry_after`).

Refused before the platform acts (nothing is recorded):
  429[=S]        rate limited, with the platform's own wait: Retry-After: S for YouTube and
                 TikTok, x-rate-limit-reset now+S for X, Graph error 4 with
                 estimated_time_to_regain_access ceil(S/60) minutes for Facebook,
                 parameters.retry_after S for Telegram. S defaults to
                 `Limits.fault_wait` (2); 429=0 sends no wait at all.
  503[=S]        unavailable, with Retry-After: S (Facebook: error 2, is_transient)
  500            an internal server error (Facebook: error 1, is_transient), with
                 Retry-After: `Limits.fault_wait`
  code=C[@H]     the platform's error C with HTTP status H: a Graph error code (default HTTP
                 400), a Google reason such as userRateLimitExceeded (default 403), a TikTok
                 error code (default HTTP 200, as TikTok does), an X problem title (default 400)
  token_expired  the access token is refused (TikTok and YouTube refresh it; X and Facebook need
                 an operator)
  chat_ended     YouTube only: the live chat ends; a new broadcast with a new chat starts
Accepted and recorded, then no answer:
  close          the connection is closed (FIN) without a byte of answer
  reset          the connection is reset (RST: SO_LINGER 0, then close)
  timeout        the connection stays open, unanswered, until the client gives up (or
                 `Limits.hang_seconds` pass)
Random faults:
  random=P       from now on, each posting call of that platform fails with probability P, with
                 a kind drawn from the platform's mix (`RANDOM_MIX`: every kind above that the
                 platform recovers from by itself), from a seeded generator

Adding a platform (say Telegram's Bot API) is one module and one registry entry:
  1. `broadcaster/rehearsal/emulator/telegram.py` declares
     `PLATFORM = Platform(name="telegram", claim=r"/bot[^/]+/.*", routes=(Route("POST",
     r"/bot(?P<token>[^/]+)/sendMessage", _send), ...), not_found=..., faults=FaultStyle(
     refusals={"429": ..., "503": ..., "500": ...}, code_status=400, mix=(*COMMON_MIX, ...)),
     refused=...)`. Handlers take a `Request`: `req.form()`, `req.json()`, `req.params`,
     `req.send(status, payload, headers)`, and for the posting call `fault = req.take_fault()`,
     `req.refuse(fault, headers)` (answers 429/503/500/code= in the platform's shape, returns
     True), `req.record(target, id, text)` then `req.accepted(fault)` (close/reset/timeout
     happen there). Limits go through `req.emulator.allow(key, limit, window)`; tunable ones
     through `Limits.extra`; state of its own through `req.emulator.own(key, factory)`.
  2. `platforms.py`: add `telegram.PLATFORM` to `PLATFORMS`. Its claim must not overlap the
     others'. Faults (`telegram:429`), the snapshot and the CLI then work unchanged.
"""

from __future__ import annotations

from broadcaster.rehearsal.emulator.data import Limits, LiveState, Received
from broadcaster.rehearsal.emulator.faults import FAULT_KINDS, Fault, FaultStyle
from broadcaster.rehearsal.emulator.platforms import PLATFORMS, RANDOM_MIX, parse_faults
from broadcaster.rehearsal.emulator.routing import Platform, Request, Route
from broadcaster.rehearsal.emulator.server import EmulatorServer
from broadcaster.rehearsal.emulator.state import Emulator, live_state

__all__ = [
    "FAULT_KINDS",
    "PLATFORMS",
    "RANDOM_MIX",
    "Emulator",
    "EmulatorServer",
    "Fault",
    "FaultStyle",
    "Limits",
    "LiveState",
    "Platform",
    "Received",
    "Request",
    "Route",
    "live_state",
    "parse_faults",
]
