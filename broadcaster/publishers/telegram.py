"""Telegram channels through the Bot API, over the shared requests transport.

Why not a client library: python-telegram-bot and aiogram are asyncio frameworks built around
receiving updates (polling loops, handlers, their own HTTP clients and retry policies), and
pyTelegramBotAPI retries and sleeps on its own; we need five plain, synchronous calls that are
sent exactly once. The Bot API is JSON over HTTPS (`POST /bot<token>/<method>`, answers
`{"ok": true, "result": ...}` or `{"ok": false, "error_code", "description", "parameters"}`), so
the shared transport (broadcaster/publishers/http.py: a timeout, no retries, no redirects,
network failures mapped without quoting the URL, which carries the bot token) is the whole
client, and `responses` and the emulator see every call.

What is posted: the rendered post, escaped whole for HTML parse mode (a feed value or a
template can never become markup or a link), link previews off, silent (`disable_notification`)
for the event kinds the account names (progress updates by default). With a card: `sendPhoto`
with the text as its caption when it fits Telegram's 1,024-unit caption; a longer text goes as
a message right after the photo, whose id is recorded first (a checkpoint) so that a retry
never posts the photo twice. Texts are counted as Telegram counts them, in UTF-16 code units
after entity parsing: the escaped entities count as the one character they stand for.

Corrections: `edit` changes a message's text (`editMessageText`) or a photo's caption
(`editMessageCaption`); `delete` removes the message and its photo.

Posts in doubt (the connection dropped after the message was sent): the Bot API cannot list a
channel's messages, and a bot receives no update for its own posts (`getUpdates` and
`channel_post` only carry other people's), so a channel cannot simply be searched. The adapter
records the highest message id it has seen in each channel; a message sent since can only have
a higher id. With `lookup_chat` set (a private chat or group of the operators that the bot is a
member of), `find` forwards the next `lookup_span` message ids of the channel there, silently,
reads each forwarded copy's text, deletes the copy, and reports the post found when one has the
post's exact text (three ids in a row that are not there end the search: forwards count against
the chat's 20 messages a minute). Nothing found proves nothing (the ids may belong to other
admins' posts, a forward may be refused), so a post that is not found is held for an operator
(`broadcaster outbox mark-sent ID` or `approve ID`), never sent again blindly. Without
`lookup_chat` every post in doubt is held.

Errors: 429 waits `parameters.retry_after` seconds; a refused token (401, or 404 for a token
Telegram does not know) and a bot that may not post to the channel (403, missing admin rights,
chat not found) pause the account with the remedy; other 400s (message too long, ...) refuse
the post for good; a 5xx other than 503, or a dropped connection, after a send leaves the post
in doubt; 503 and failures of the other calls are tried again later.

Limits (Telegram's bot FAQ): about 20 messages a minute to one channel or group and 30 a second
overall; messages 4,096 and captions 1,024 UTF-16 units.
"""

from __future__ import annotations

import contextlib
import html
import json
import mimetypes
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from broadcaster.core.config import AccountConfig
from broadcaster.domain.events import EventKind
from broadcaster.domain.limits import TextLimit, count_utf16
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
else:  # loaded when the adapter first uses them (LazyModule says why)
    requests = LazyModule("requests")

API = "https://api.telegram.org"
CAPTION_LIMIT = 1024  # UTF-16 units, after entity parsing
MISSES = 3  # ids in a row that are not there end a look-up (each read is a forward: rate-limited)

CAPABILITIES = Capabilities(
    can_delete=True,
    can_edit=True,
    can_find=True,  # with `lookup_chat`; without it every post in doubt is held
    threads=True,  # a long post's parts are replies to the previous part
    media=("image/png", "image/jpeg"),
    text=TextLimit(4096, "utf16"),
    card=CardSpec("PNG", 1200, 675),
    quota=(Window(posts=20, seconds=60), Window(posts=30, seconds=1)),
)

CREATES = {"post", "photo post"}  # the calls that create a message in the channel
CHANNEL = re.compile(r"^@[A-Za-z][A-Za-z0-9_]{3,31}$|^-?[1-9][0-9]{0,19}$")
SECRET_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# 400 answers that are about the account (the bot's place in the chat), not about the post.
ACCOUNT_PROBLEMS = (
    "chat not found",
    "need administrator rights",
    "not enough rights",
    "chat_admin_required",
    "have no rights to send",
    "bot is not a member",
    "bot was kicked",
)


def _channel(value: str) -> str:
    if not CHANNEL.match(value):
        raise ValueError(
            f"expected a public channel's @username or a chat's numeric id, got {value[:40]!r}"
        )
    return value


def _secret_name(value: str) -> str:
    if not SECRET_NAME.match(value):
        raise ValueError(
            "expected the NAME of the environment variable or secrets-file entry holding the "
            "bot's token (secrets never go in the configuration), not the token"
        )
    return value


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    bot_token: Annotated[str, AfterValidator(_secret_name)]  # the name of the secret
    channel: Annotated[str, AfterValidator(_channel)]  # @username, or -100... for a private one
    # Posts of these event kinds go out silently (no sound on subscribers' phones); true: all,
    # false: none.
    disable_notification: bool | list[EventKind] = Field(
        default_factory=lambda: [EventKind.PROGRESS]
    )
    # A private chat or group of the operators the bot may write to, where `find` forwards
    # candidate messages to read them back (see the module's docstring).
    lookup_chat: Annotated[str, AfterValidator(_channel)] | None = None
    lookup_span: int = Field(default=10, ge=1, le=50)
    api_base: Annotated[str, AfterValidator(require_https)] = API
    timeout: float = Field(default=20, gt=0)

    @field_validator("lookup_chat")
    @classmethod
    def _private_lookup(cls, value: str | None) -> str | None:
        if value is not None and value.startswith("@"):
            raise ValueError("the lookup chat is a private chat, given by its numeric id")
        return value

    def silent(self, kind: str) -> bool:
        if isinstance(self.disable_notification, bool):
            return self.disable_notification
        return kind in self.disable_notification


@dataclass(frozen=True, slots=True)
class MessageRef:
    """Where a post is in the channel: its text message or its captioned photo, and the photo
    sent before a text too long for a caption. Kept as the post's platform id:
    `msg:12`, `caption:12`, `msg:13+photo:12`."""

    kind: str  # "msg" or "caption"
    message_id: int
    photo_id: int | None = None

    def __str__(self) -> str:
        base = f"{self.kind}:{self.message_id}"
        return base if self.photo_id is None else f"{base}+photo:{self.photo_id}"

    @classmethod
    def parse(cls, value: str) -> MessageRef:
        match = re.fullmatch(r"(msg|caption):(\d+)(?:\+photo:(\d+))?", value or "")
        if not match:
            raise Rejected(f"telegram: {value!r} is not a message reference of this adapter")
        kind, message, photo = match.groups()
        return cls(kind, int(message), int(photo) if photo else None)


class ApiError(Exception):
    """Telegram's answer to a call that failed (or an answer that is not Telegram's)."""

    def __init__(
        self, status: int, description: str, parameters: dict[str, Any], headers: Any
    ) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.parameters = parameters
        self.headers = headers
        self.readable = bool(description) or bool(parameters)

    def says(self, *phrases: str) -> bool:
        text = self.description.lower()
        return any(p in text for p in phrases)


def escape(text: str) -> str:
    """The text for HTML parse mode: every character shown as written, nothing markup."""
    return html.escape(text, quote=False)


def _normal(text: str | None) -> str:
    return " ".join(unicodedata.normalize("NFC", text or "").split())


class TelegramPublisher(Publisher):
    platform = "telegram"
    settings_model = Settings
    capabilities = CAPABILITIES

    def __init__(self, account: AccountConfig, env: PublisherEnv) -> None:
        self.account = account
        self.env = env
        self.settings = s = Settings.model_validate(account.settings)
        self.token = env.secrets.get(s.bot_token, what=f"{account.name} bot_token")
        self.session = platform_session(s.timeout)
        self.base = s.api_base.rstrip("/")

    # -- calls --

    def _request(
        self, method: str, payload: dict[str, Any], files: dict[str, Any] | None = None
    ) -> Any:
        """One Bot API call; its `result`, or ApiError. Network failures are requests'."""
        url = f"{self.base}/bot{self.token}/{method}"
        if files:
            form = {
                k: (v if isinstance(v, str) else json.dumps(v))
                for k, v in payload.items()
                if v is not None
            }
            resp = self.session.post(url, data=form, files=files)
        else:
            resp = self.session.post(url, json={k: v for k, v in payload.items() if v is not None})
        try:
            body = resp.json()
        except ValueError:
            body = None
        if isinstance(body, dict) and body.get("ok") is True and resp.status_code == 200:
            return body.get("result")
        if not isinstance(body, dict) or "ok" not in body:
            raise ApiError(resp.status_code, "", {}, resp.headers)
        params = body.get("parameters")
        raise ApiError(
            int(body.get("error_code") or resp.status_code),
            str(body.get("description") or f"HTTP {resp.status_code}")[:200],
            params if isinstance(params, dict) else {},
            resp.headers,
        )

    def _call(
        self,
        method: str,
        payload: dict[str, Any],
        action: str,
        files: dict[str, Any] | None = None,
    ) -> Any:
        try:
            return self._request(method, payload, files)
        except ApiError as exc:
            raise self._map(exc, action) from None
        except requests.RequestException as exc:
            error = network_error(exc, f"telegram {action}")
            if isinstance(error, InDoubt) and action not in CREATES:
                error = RetryLater(str(error))  # nothing is created twice by repeating it
            raise error from None

    def _map(self, exc: ApiError, action: str) -> PublishError:
        status = exc.status
        creates = action in CREATES
        where = f"telegram {action}: HTTP {status}"
        detail = f"{where} {exc.description}" if exc.description else where
        wait = exc.parameters.get("retry_after")
        delay = (
            float(wait)
            if isinstance(wait, int | float)
            else retry_after(exc.headers, now=self.env.clock.now().timestamp())
        )
        name = self.account.name
        if not exc.readable:
            # Not Telegram's answer (a proxy's page, a cut body): no verdict on the message.
            if creates and (status == 200 or may_have_acted(status)):
                return InDoubt(f"{where}: the answer could not be read")
            return RetryLater(f"{where}: not an answer from Telegram", delay=delay)
        if status == 429:
            return RetryLater(f"{detail}: rate limited", delay=delay)
        if status in (401, 404):
            return Reauthorize(
                f"{detail}: the bot token was refused; get the bot's token from @BotFather "
                f"(/token), put it in the secret named {self.settings.bot_token}, then run "
                f"`broadcaster auth telegram --account {name}` (it checks and resumes)"
            )
        if "migrate_to_chat_id" in exc.parameters:
            return Reauthorize(
                f"{detail}: the group became a supergroup; set channel = "
                f'"{exc.parameters["migrate_to_chat_id"]}" for {name}, then `broadcaster resume '
                f"{name}`"
            )
        if status == 403 or (status == 400 and exc.says(*ACCOUNT_PROBLEMS)):
            return Reauthorize(
                f"{detail}: the bot may not post to {self.settings.channel}; make it an "
                "administrator of the channel allowed to post messages, then run `broadcaster "
                f"auth telegram --account {name}` (it checks and resumes)"
            )
        if status >= 500:
            if creates and may_have_acted(status):
                return InDoubt(f"{detail}: Telegram failed after receiving the message")
            return RetryLater(detail, delay=delay)
        return Rejected(detail)

    # -- posting --

    def _common(self, silent: bool) -> dict[str, Any]:
        return {
            "chat_id": self.settings.channel,
            "parse_mode": "HTML",
            "disable_notification": silent,
        }

    def send_text(
        self, text: str, *, silent: bool = False, reply_to: int | None = None
    ) -> dict[str, Any]:
        """Send one text message (escaped, link previews off); the Message Telegram returns."""
        payload = {
            **self._common(silent),
            "text": escape(unicodedata.normalize("NFC", text)),
            "link_preview_options": {"is_disabled": True},
        }
        if reply_to is not None:
            payload["reply_parameters"] = {
                "message_id": reply_to,
                "allow_sending_without_reply": True,
            }
        message = self._call("sendMessage", payload, "post")
        return self._message(message, "post")

    def send_photo(self, path: str, caption: str | None, *, silent: bool) -> dict[str, Any]:
        payload = self._common(silent)
        if caption:
            payload["caption"] = escape(unicodedata.normalize("NFC", caption))
        mime = mimetypes.guess_type(path)[0] or "image/png"
        with open(path, "rb") as image:
            message = self._call(
                "sendPhoto",
                payload,
                "photo post",
                files={"photo": (Path(path).name, image, mime)},
            )
        return self._message(message, "photo post")

    def _message(self, message: Any, action: str) -> dict[str, Any]:
        if not isinstance(message, dict) or not isinstance(message.get("message_id"), int):
            raise InDoubt(f"telegram {action}: the answer carried no message id")
        self._seen(message["message_id"])
        return message

    def publish(self, post: Post) -> PublishedRef:
        silent = self.settings.silent(post.event_kind)
        reply_to = MessageRef.parse(post.reply_to).message_id if post.reply_to else None
        if not post.media:
            message = self.send_text(post.text, silent=silent, reply_to=reply_to)
            return self._ref(MessageRef("msg", message["message_id"]))
        if count_utf16(post.text) <= CAPTION_LIMIT:
            message = self.send_photo(post.media[0], post.text, silent=silent)
            return self._ref(MessageRef("caption", message["message_id"]))
        # Too long for a caption: the card, then the text. The photo's id is recorded at once,
        # so that a retry after a failed text sends only the text.
        photo_id = _checkpoint_photo(post.checkpoint)
        if photo_id is None:
            photo = self.send_photo(post.media[0], None, silent=silent)
            photo_id = int(photo["message_id"])
            self.env.checkpoint(post.outbox_id, f"photo:{photo_id}")
        try:
            message = self.send_text(post.text, silent=silent)
        except Rejected:
            # The text will never go: do not leave its card alone in the channel.
            self._delete_quietly(self.settings.channel, photo_id)
            raise
        return self._ref(MessageRef("msg", message["message_id"], photo_id))

    def _ref(self, ref: MessageRef) -> PublishedRef:
        return PublishedRef(
            platform_id=str(ref), published_at=self.env.clock.now(), url=self.url(ref.message_id)
        )

    def url(self, message_id: int) -> str | None:
        """The message's public address: t.me/<name>/<id>, or t.me/c/<id>/<id> for a private
        channel (visible to its members only); None for other chats."""
        channel = self.settings.channel
        if channel.startswith("@"):
            return f"https://t.me/{channel[1:]}/{message_id}"
        if channel.startswith("-100"):
            return f"https://t.me/c/{channel[4:]}/{message_id}"
        return None

    # -- the highest message id seen in the channel (a post sent since has a higher one) --

    def _last_key(self) -> str:
        return f"telegram:last_message:{self.account.name}:{self.settings.channel}"

    def _seen(self, message_id: int) -> None:
        last = self.env.state.get_state(self._last_key())
        if not isinstance(last, int) or message_id > last:
            self.env.state.put_state(self._last_key(), message_id)

    # -- settling a post in doubt --

    def find(self, post: Post) -> PublishedRef | None:
        """Positive-only: the post's message among the ids after the last one seen, read back
        through the lookup chat; NotImplementedError (the post is held for an operator) when it
        cannot be found that way. Never None: absence cannot be proven (module docstring)."""
        pid = post.outbox_id
        hold = (
            f"look at the channel: `broadcaster outbox mark-sent {pid}` if the post is there, "
            f"`broadcaster outbox approve {pid}` to send it again"
        )
        lookup = self.settings.lookup_chat
        if lookup is None:
            raise NotImplementedError(
                f"telegram cannot list a channel's posts (no lookup_chat set); {hold}"
            )
        photo_id = _checkpoint_photo(post.checkpoint)
        last = self.env.state.get_state(self._last_key())
        start = photo_id if photo_id is not None else last
        if not isinstance(start, int):
            raise NotImplementedError(
                f"telegram: no message id of this channel is known yet to look after; {hold}"
            )
        span = range(start + 1, start + 1 + self.settings.lookup_span)
        misses = 0
        for candidate in span:
            copy = self._forward(lookup, candidate)
            if copy is None:
                misses += 1
                if misses >= MISSES:
                    break  # past the channel's newest message, most likely: stop asking
                continue
            misses = 0
            text = copy.get("text") if "text" in copy else copy.get("caption")
            has_photo = "photo" in copy
            self._delete_quietly(lookup, int(copy["message_id"]))
            if _normal(text) != _normal(post.text):
                continue
            self._seen(candidate)
            if has_photo:
                return self._ref(MessageRef("caption", candidate))
            return self._ref(MessageRef("msg", candidate, photo_id))
        raise NotImplementedError(
            f"telegram: the post is not among messages {span.start}-{candidate} of "
            f"{self.settings.channel}; {hold}"
        )

    def _forward(self, chat: str, message_id: int) -> dict[str, Any] | None:
        """A silent copy of the channel's message `message_id` in `chat`; None when the channel
        has no such message (never sent, deleted) or it cannot be forwarded."""
        payload = {
            "chat_id": chat,
            "from_chat_id": self.settings.channel,
            "message_id": message_id,
            "disable_notification": True,
        }
        try:
            result = self._request("forwardMessage", payload)
        except ApiError as exc:
            if exc.status == 400 and exc.says("not found", "can't be forwarded", "message_id"):
                return None
            raise self._map(exc, "look-up") from None
        except requests.RequestException as exc:
            raise RetryLater(str(network_error(exc, "telegram look-up"))) from None
        return result if isinstance(result, dict) and "message_id" in result else None

    # -- corrections --

    def edit(self, ref: PublishedRef, text: str) -> None:
        where = MessageRef.parse(ref.platform_id)
        body = escape(unicodedata.normalize("NFC", text))
        if where.kind == "caption":
            if count_utf16(text) > CAPTION_LIMIT:
                raise Rejected(
                    f"telegram edit: the new text ({count_utf16(text)} UTF-16 units) no longer "
                    f"fits a photo's caption ({CAPTION_LIMIT})"
                )
            method = "editMessageCaption"
            payload: dict[str, Any] = {"caption": body}
        else:
            method = "editMessageText"
            payload = {"text": body, "link_preview_options": {"is_disabled": True}}
        payload.update(
            chat_id=self.settings.channel, message_id=where.message_id, parse_mode="HTML"
        )
        try:
            self._request(method, payload)
        except ApiError as exc:
            if exc.status == 400 and exc.says("message is not modified"):
                return  # already says this: an edit repeated after a lost answer
            raise self._map(exc, "edit") from None
        except requests.RequestException as exc:
            raise RetryLater(str(network_error(exc, "telegram edit"))) from None

    def delete(self, ref: PublishedRef) -> None:
        where = MessageRef.parse(ref.platform_id)
        for message_id in (where.message_id, where.photo_id):
            if message_id is not None:
                self._delete(self.settings.channel, message_id)

    def _delete(self, chat: str, message_id: int) -> None:
        try:
            self._request("deleteMessage", {"chat_id": chat, "message_id": message_id})
        except ApiError as exc:
            if exc.status == 400 and exc.says("message to delete not found"):
                return  # gone already: a delete repeated after a lost answer
            raise self._map(exc, "delete") from None
        except requests.RequestException as exc:
            raise RetryLater(str(network_error(exc, "telegram delete"))) from None

    def _delete_quietly(self, chat: str, message_id: int) -> None:
        with contextlib.suppress(PublishError):  # best effort: the caller's outcome matters more
            self._delete(chat, message_id)

    def close(self) -> None:
        self.session.close()

    # -- checks and set-up --

    def check(self) -> str:
        """The bot's identity and its rights in the channel; Rejected or Reauthorize naming
        what to fix."""
        me = self._call("getMe", {}, "check")
        chat = self._call("getChat", {"chat_id": self.settings.channel}, "check")
        bot = f"@{me.get('username')}"
        title = chat.get("title") or chat.get("first_name") or self.settings.channel
        kind = chat.get("type")
        if kind == "private":  # an operator's own chat with the bot (alerts)
            return f"bot {bot} may write to {title!r} ({self.settings.channel})"
        member = self._call(
            "getChatMember", {"chat_id": self.settings.channel, "user_id": me.get("id")}, "check"
        )
        status = member.get("status")
        if kind == "channel":
            allowed = status == "creator" or (
                status == "administrator" and member.get("can_post_messages") is True
            )
        else:  # a group or a private chat (an alerts chat): a member may write
            allowed = status in ("creator", "administrator", "member") and (
                member.get("can_send_messages") is not False
            )
        if not allowed:
            raise Reauthorize(
                f"bot {bot} is {status!r} in {kind} {title!r}: make it an administrator allowed "
                f"to post messages, then run `broadcaster auth telegram --account "
                f"{self.account.name}`"
            )
        extras = [
            right.removeprefix("can_").replace("_messages", "")
            for right in ("can_edit_messages", "can_delete_messages")
            if member.get(right) is True or status == "creator"
        ]
        rights = f"post{', ' + ', '.join(extras) if extras else ''}"
        return f"bot {bot} may {rights} in {kind} {title!r} ({self.settings.channel})"

    @classmethod
    def doctor(cls, account: AccountConfig, env: PublisherEnv) -> str:
        """One line: the token works and the bot may post in the channel."""
        publisher = cls(account, env)
        try:
            return publisher.check()
        finally:
            publisher.close()

    @classmethod
    def authorize(cls, account: AccountConfig, env: PublisherEnv, prompt: Any) -> dict[str, Any]:
        """Telegram bots have one fixed token: explain how to make the bot and give it the
        channel, then check the token (getMe) and the bot's rights. Nothing is stored: the
        token stays in the secret the settings name."""
        s = Settings.model_validate(account.settings)
        print(
            "A Telegram channel is posted to by a bot that is one of its administrators:\n"
            "  1. In Telegram, talk to @BotFather: /newbot, choose a name and a username.\n"
            "     It answers with the bot's token (digits, a colon, letters).\n"
            f"  2. Put the token in the environment variable or secrets-file entry named "
            f"{s.bot_token}.\n"
            f"  3. In the channel {s.channel}: Administrators > Add Admin > the bot; allow it to\n"
            "     post messages (and to edit and delete them, for corrections).\n"
            "  4. Optional: a private group of the operators with the bot in it, as lookup_chat,\n"
            "     lets posts left in doubt be found without an operator.\n"
            "Checking the token and the bot's rights now."
        )
        print(cls.doctor(account, env))
        return {}

    @classmethod
    def emulator_account(cls, base: str, workdir: Path) -> EmulatorAccount:
        return EmulatorAccount(
            settings={
                "bot_token": "EMU_TG_BOT_TOKEN",
                "channel": "@emulated_results",
                "lookup_chat": "-1009000000001",
                "api_base": base,
            },
            secrets={"EMU_TG_BOT_TOKEN": "7000000001:emu-telegram-bot-token"},
        )


def _checkpoint_photo(checkpoint: str | None) -> int | None:
    if checkpoint and checkpoint.startswith("photo:") and checkpoint[6:].isdigit():
        return int(checkpoint[6:])
    return None
