"""Telegram's Bot API as the Telegram publisher and the alerts use it: `getMe`, `getChat`,
`getChatMember`, `sendMessage`, `sendPhoto`, `editMessageText`, `editMessageCaption`,
`deleteMessage` and `forwardMessage`, at `/bot<token>/<method>`, with JSON, form or multipart
bodies. Answers are `{"ok": true, "result": ...}` or `{"ok": false, "error_code",
"description", "parameters"}`, as Telegram's.

What it checks as Telegram does: the token (malformed: 404; expired by a fault: 401); the bot's
rights (a chat whose name or id contains `not_admin` has the bot as a plain member: 403
"Forbidden: bot is not a member of the channel chat"); HTML parse mode (only Telegram's tags;
anything else is "can't parse entities"), with the text counted after entity parsing in UTF-16
units (4,096 for a message, 1,024 for a caption: "message is too long"); 20 messages a minute
per chat and 30 a second per bot (429 with `parameters.retry_after`). Message ids count up per
chat. A message posted to any chat is recorded (a channel's post, or an alert to the operators'
chat); forwarded copies are kept apart, readable through `forwardMessage` and deletable, as the
publisher's look-up uses them.

Faults land on `sendMessage` and `sendPhoto`. `code=C[@H]` answers Telegram's error with
description C (a known short name gives Telegram's wording: `not_admin`, `too_long`,
`chat_not_found`, `cant_parse`), HTTP 400 by default.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from broadcaster.rehearsal.emulator.data import Received
from broadcaster.rehearsal.emulator.faults import COMMON_MIX, FaultStyle, retry_after
from broadcaster.rehearsal.emulator.routing import Handler, Platform, Request, Route

NAME = "telegram"
BOT_ID = 7000000001
TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024
TOKEN = re.compile(r"\d+:[A-Za-z0-9_-]+")
# Telegram's HTML parse mode: these tags, and the entities &lt; &gt; &amp; &quot; and numeric.
TAGS = {
    "b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "span", "tg-spoiler", "a",
    "code", "pre", "blockquote", "tg-emoji",
}  # fmt: skip
TAG = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9-]*)?[^>]*>?")
ENTITY = re.compile(r"&(lt|gt|amp|quot|#\d+|#x[0-9A-Fa-f]+);")
DESCRIPTIONS = {
    "not_admin": (403, "Forbidden: bot is not a member of the channel chat"),
    "too_long": (400, "Bad Request: message is too long"),
    "chat_not_found": (400, "Bad Request: chat not found"),
    "cant_parse": (400, "Bad Request: can't parse entities: Unsupported start tag"),
}


@dataclass
class Chats:
    """The chats' messages, by chat and message id (ids count up per chat, from 100)."""

    messages: dict[str, dict[int, Received]] = field(default_factory=dict)
    copies: dict[str, dict[int, Received]] = field(default_factory=dict)  # forwarded copies
    last: dict[str, int] = field(default_factory=dict)

    def next_id(self, chat: str) -> int:
        self.last[chat] = self.last.get(chat, 99) + 1
        return self.last[chat]

    def find(self, chat: str, message_id: int) -> Received | None:
        for store in (self.messages, self.copies):
            found = store.get(chat, {}).get(message_id)
            if found is not None and not found.deleted:
                return found
        return None


def _chats(req: Request) -> Chats:
    return req.emulator.own("telegram:chats", Chats)


def _fail(
    req: Request,
    status: int,
    description: str,
    parameters: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> None:
    req.count(status)
    body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
    if parameters:
        body["parameters"] = parameters
    req.send(status, body, headers)


def _ok(req: Request, result: Any) -> None:
    req.count(200)
    req.send(200, {"ok": True, "result": result})


def _refused(req: Request, status: int, code: str, message: str, headers: dict[str, str]) -> None:
    """An injected refusal in Telegram's words, its wait in `parameters.retry_after`."""
    headers = dict(headers)
    wait = headers.pop("Retry-After", None)
    parameters = None
    if status == 429:
        seconds = int(wait) if wait else 1
        message, parameters = f"Too Many Requests: retry after {seconds}", {"retry_after": seconds}
    elif code in DESCRIPTIONS:
        known_status, message = DESCRIPTIONS[code]
        status = known_status if status == PLATFORM.faults.code_status else status
    elif message.endswith("(injected)"):
        prefix = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden"}.get(status, "Error")
        message = f"{prefix}: {code}"
    if wait and status != 429:
        headers["Retry-After"] = wait
    _fail(req, status, message, parameters, headers)


def _wait_headers(kind: str, wait: float, now: float, headers: Mapping[str, str]) -> dict[str, str]:
    return retry_after(kind, wait, now, headers)  # moved into the body by `_refused`


def _args(req: Request) -> dict[str, Any]:
    """The call's parameters: a JSON body, or a form or multipart one, and the query string."""
    if "json" in req.header("Content-Type"):
        try:
            data = req.json()
        except ValueError:
            return {}
        return {**req.query, **(data if isinstance(data, dict) else {})}
    return dict(req.form()[0])


def _bot(handler: Handler) -> Handler:
    """A call with a token Telegram knows (malformed: 404; expired by a fault: 401)."""

    def checked(req: Request) -> None:
        token = req.params["token"]
        if not TOKEN.fullmatch(token):
            _fail(req, 404, "Not Found")
            return
        if req.emulator.token_expired(token):
            _fail(req, 401, "Unauthorized")
            return
        handler(req)

    return checked


def _chat_id(args: Mapping[str, Any], key: str = "chat_id") -> str:
    return str(args.get(key, "")).strip()


def _chat(chat: str) -> dict[str, Any]:
    if chat.startswith("@"):
        return {"id": -1001000000000 - len(chat), "type": "channel", "title": f"{chat} (TEST)",
                "username": chat[1:]}  # fmt: skip
    kind = "channel" if chat.startswith("-100") else "group" if chat.startswith("-") else "private"
    return {"id": int(chat), "type": kind, "title": f"chat {chat} (TEST)"}


def _may_post(req: Request, chat: str) -> bool:
    if not chat:
        _fail(req, 400, "Bad Request: chat_id is empty")
        return False
    if "not_admin" in chat:
        _fail(req, 403, "Forbidden: bot is not a member of the channel chat")
        return False
    return True


def _within_limits(req: Request, chat: str) -> bool:
    emu, extra = req.emulator, req.emulator.limits.extra
    per_chat = int(extra.get("telegram_per_chat_per_min", 20))
    per_bot = int(extra.get("telegram_per_second", 30))
    for key, limit, window in (
        (f"tg-bot:{req.params['token']}", per_bot, 1.0),
        (f"tg-chat:{chat}", per_chat, 60.0),
    ):
        allowed, wait = emu.allow(key, limit, window)
        if not allowed:
            emu.refuse(NAME)
            seconds = max(1, round(wait))
            _fail(req, 429, f"Too Many Requests: retry after {seconds}", {"retry_after": seconds})
            return False
    return True


def parse_html(text: str) -> str | None:
    """The text as Telegram shows it after HTML parse mode; None when it cannot be parsed."""
    out, pos = [], 0
    for match in TAG.finditer(text):
        name = (match.group(2) or "").lower()
        if name not in TAGS or not match.group(0).endswith(">"):
            return None
        out.append(text[pos : match.start()])
        pos = match.end()
    out.append(text[pos:])
    plain = "".join(out)
    if "&" in ENTITY.sub("", plain):
        return None  # a bare ampersand: Telegram wants &amp;
    return html.unescape(plain)


def _units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _text(req: Request, args: Mapping[str, Any], key: str, limit: int) -> str | None:
    """The message's text or caption as shown, or None after answering the refusal."""
    raw = str(args.get(key) or "")
    shown = parse_html(raw) if str(args.get("parse_mode", "")).upper() == "HTML" else raw
    if shown is None:
        _fail(req, 400, "Bad Request: can't parse entities: Unsupported start tag")
        return None
    if key == "text" and not shown.strip():
        _fail(req, 400, "Bad Request: message text is empty")
        return None
    if _units(shown) > limit:
        what = "message caption is too long" if key == "caption" else "message is too long"
        _fail(req, 400, f"Bad Request: {what}")
        return None
    return shown


def _message(chat: str, message_id: int, post: Received, *, photo: bool) -> dict[str, Any]:
    message: dict[str, Any] = {"message_id": message_id, "date": 0, "chat": _chat(chat)}
    if photo:
        message["photo"] = [{"file_id": f"emu-photo-{message_id}", "width": 1200, "height": 675}]
        if post.text:
            message["caption"] = post.text
    else:
        message["text"] = post.text
    return message


def _send(req: Request, *, photo: bool) -> None:
    """sendMessage and sendPhoto: the posting calls, where faults land."""
    args = _args(req)
    chat = _chat_id(args)
    if not _may_post(req, chat) or not _within_limits(req, chat):
        return
    fault = req.take_fault()
    if fault is not None and fault.kind == "token_expired":
        req.emulator.expire_token(req.params["token"])
        _fail(req, 401, "Unauthorized")
        return
    if req.refuse(fault):
        return
    media: list[str] = []
    if photo:
        files = req.form()[1]
        if "photo" not in files and not args.get("photo"):
            _fail(req, 400, "Bad Request: there is no photo in the request")
            return
        media = [files["photo"][0] if "photo" in files else str(args["photo"])]
        text = _text(req, args, "caption", CAPTION_LIMIT) if args.get("caption") else ""
    else:
        text = _text(req, args, "text", TEXT_LIMIT)
    if text is None:
        return
    chats = _chats(req)
    with req.emulator.lock:
        message_id = chats.next_id(chat)
        reply = _json(args.get("reply_parameters"))
        post = req.emulator.record(
            NAME, chat, str(message_id), text, media, reply_to=_str(reply.get("message_id"))
        )
        chats.messages.setdefault(chat, {})[message_id] = post
    req.accepted(fault)
    _ok(req, _message(chat, message_id, post, photo=photo))


def _json(value: Any) -> dict[str, Any]:
    """A parameter Telegram takes as JSON (a string in a form or multipart body)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return {}
    return value if isinstance(value, dict) else {}


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


def _send_message(req: Request) -> None:
    _send(req, photo=False)


def _send_photo(req: Request) -> None:
    _send(req, photo=True)


def _edit(req: Request, *, caption: bool) -> None:
    args = _args(req)
    chat = _chat_id(args)
    if not _may_post(req, chat):
        return
    with req.emulator.lock:
        post = _chats(req).messages.get(chat, {}).get(int(args.get("message_id") or 0))
    if post is None or post.deleted:
        _fail(req, 400, "Bad Request: message to edit not found")
        return
    if caption != bool(post.media):
        kind = "there is no caption in the message to edit" if caption else "there is no text"
        _fail(req, 400, f"Bad Request: {kind}")
        return
    key = "caption" if caption else "text"
    text = _text(req, args, key, CAPTION_LIMIT if caption else TEXT_LIMIT)
    if text is None:
        return
    if text == post.text:
        _fail(req, 400, "Bad Request: message is not modified: specified new message content "
              "and reply markup are exactly the same as a current content")  # fmt: skip
        return
    with req.emulator.lock:
        post.text = text
    _ok(req, _message(chat, int(post.id), post, photo=caption))


def _edit_text(req: Request) -> None:
    _edit(req, caption=False)


def _edit_caption(req: Request) -> None:
    _edit(req, caption=True)


def _delete(req: Request) -> None:
    args = _args(req)
    chat = _chat_id(args)
    message_id = int(args.get("message_id") or 0)
    with req.emulator.lock:
        found = _chats(req).find(chat, message_id)
        if found is not None:
            found.deleted = True
    if found is None:
        _fail(req, 400, "Bad Request: message to delete not found")
        return
    _ok(req, True)


def _forward(req: Request) -> None:
    """A silent copy of a channel's message in another chat (the publisher's look-up reads it
    back); the copy is not a post of the platform's."""
    args = _args(req)
    chat, source = _chat_id(args), _chat_id(args, "from_chat_id")
    if not _may_post(req, chat) or not _within_limits(req, chat):
        return
    chats = _chats(req)
    with req.emulator.lock:
        original = chats.messages.get(source, {}).get(int(args.get("message_id") or 0))
        if original is None or original.deleted:
            original = None
        else:
            copy_id = chats.next_id(chat)
            copy = Received(NAME, chat, str(copy_id), original.text, list(original.media))
            chats.copies.setdefault(chat, {})[copy_id] = copy
    if original is None:
        _fail(req, 400, "Bad Request: message to forward not found")
        return
    message = _message(chat, copy_id, copy, photo=bool(copy.media))
    message["forward_origin"] = {
        "type": "channel",
        "chat": _chat(source),
        "message_id": int(original.id),
        "date": 0,
    }
    _ok(req, message)


def _get_me(req: Request) -> None:
    _ok(req, {"id": BOT_ID, "is_bot": True, "first_name": "Emulated results bot (TEST)",
              "username": "emulated_results_bot"})  # fmt: skip


def _get_chat(req: Request) -> None:
    chat = _chat_id(_args(req))
    if not chat:
        _fail(req, 400, "Bad Request: chat not found")
        return
    _ok(req, _chat(chat))


def _get_chat_member(req: Request) -> None:
    args = _args(req)
    chat = _chat_id(args)
    user = {"id": int(args.get("user_id") or 0), "is_bot": True}
    if "not_admin" in chat:
        _ok(req, {"status": "member", "user": user})
        return
    _ok(req, {"status": "administrator", "user": user, "can_post_messages": True,
              "can_edit_messages": True, "can_delete_messages": True})  # fmt: skip


def _no_method(req: Request) -> None:
    _fail(req, 404, "Not Found: method not found")


BOT = r"/bot(?P<token>[^/]+)"

PLATFORM = Platform(
    name=NAME,
    claim=r"/bot[^/]+/.*",
    routes=(
        Route("*", rf"{BOT}/getMe", _bot(_get_me)),
        Route("*", rf"{BOT}/getChat", _bot(_get_chat)),
        Route("*", rf"{BOT}/getChatMember", _bot(_get_chat_member)),
        Route("POST", rf"{BOT}/sendMessage", _bot(_send_message)),
        Route("POST", rf"{BOT}/sendPhoto", _bot(_send_photo)),
        Route("POST", rf"{BOT}/editMessageText", _bot(_edit_text)),
        Route("POST", rf"{BOT}/editMessageCaption", _bot(_edit_caption)),
        Route("POST", rf"{BOT}/deleteMessage", _bot(_delete)),
        Route("POST", rf"{BOT}/forwardMessage", _bot(_forward)),
    ),
    not_found=_no_method,
    faults=FaultStyle(
        refusals={
            "429": (429, "429", "Too Many Requests: retry after"),
            "503": (503, "503", "Service Unavailable"),
            "500": (500, "500", "Internal Server Error"),
        },
        code_status=400,
        mix=COMMON_MIX,
        wait_headers=_wait_headers,
    ),
    refused=_refused,
)
