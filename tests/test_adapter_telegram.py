"""The Telegram adapter (Bot API over requests), mocked by `responses`: the escaped HTML body
with previews off, silent routine posts, cards as captions or before a long text (never twice),
the error taxonomy from Telegram's own answers, edits and deletes, the lookup of a post in doubt
through the lookup chat, and the channel and doctor checks."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import requests
import responses
from responses import matchers

from broadcaster.core.config import AccountConfig
from broadcaster.core.logs import redact
from broadcaster.domain.limits import count_utf16
from broadcaster.publishers import InDoubt, Reauthorize, Rejected, RetryLater
from broadcaster.publishers.base import PublishedRef
from broadcaster.publishers.registry import validate_account_settings
from broadcaster.publishers.telegram import MessageRef, TelegramPublisher, escape
from tests.adapters import NOW, account, env, post

TOKEN = "7012345678:AAH-test-token-value"
API = f"https://api.telegram.org/bot{TOKEN}"
SECRETS = {"TG_TOKEN": TOKEN}


def make(tmp_path, **settings) -> TelegramPublisher:
    acct = account("telegram", bot_token="TG_TOKEN", channel="@nec_results", **settings)
    return TelegramPublisher(acct, env(tmp_path, SECRETS))


def ok(result) -> dict:
    return {"ok": True, "result": result}


def fail(code: int, description: str, **parameters) -> dict:
    body: dict = {"ok": False, "error_code": code, "description": description}
    if parameters:
        body["parameters"] = parameters
    return body


def message(mid: int, text: str | None = None, **extra) -> dict:
    msg = {"message_id": mid, "date": 1, "chat": {"id": -1001, "type": "channel"}, **extra}
    if text is not None:
        msg["text"] = text
    return msg


@pytest.fixture
def card(tmp_path):
    path = tmp_path / "card.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n fake")
    return str(path)


def sent_json(call) -> dict:
    return json.loads(call.request.body)


@responses.activate
def test_text_is_escaped_whole_previews_off_and_routine_posts_silent(tmp_path):
    pub = make(tmp_path)
    responses.post(f"{API}/sendMessage", json=ok(message(41)))
    hostile = '[TEST] <b>Ana</b> & "Ben" <a href="https://x.example">win</a> ត្រូវបានជាប់ឆ្នោត'
    ref = pub.publish(replace(post(hostile), event_kind="progress"))
    body = sent_json(responses.calls[0])
    assert body["text"] == escape(hostile)
    assert "<b>" not in body["text"]
    assert "&lt;b&gt;Ana&lt;/b&gt; &amp;" in body["text"]
    assert body["parse_mode"] == "HTML"
    assert body["link_preview_options"] == {"is_disabled": True}
    assert body["chat_id"] == "@nec_results"
    assert body["disable_notification"] is True  # progress is routine by default
    assert ref.platform_id == "msg:41"
    assert ref.url == "https://t.me/nec_results/41"
    responses.post(f"{API}/sendMessage", json=ok(message(42)))
    pub.publish(post("[TEST] Ana wins Northbay"))  # a call: subscribers are notified
    assert sent_json(responses.calls[1])["disable_notification"] is False


@responses.activate
def test_disable_notification_setting_all_or_none(tmp_path):
    responses.post(f"{API}/sendMessage", json=ok(message(1)))
    make(tmp_path, disable_notification=True).publish(post())
    make(tmp_path, disable_notification=False).publish(replace(post(), event_kind="progress"))
    assert [sent_json(c)["disable_notification"] for c in responses.calls] == [True, False]


@responses.activate
def test_short_text_with_card_is_one_captioned_photo(tmp_path, card):
    pub = make(tmp_path)
    responses.post(f"{API}/sendPhoto", json=ok(message(50, photo=[{"file_id": "f"}])))
    ref = pub.publish(post("[TEST] Ana <wins>", media=(card,)))
    (call,) = responses.calls
    body = call.request.body
    assert b'name="photo"; filename="card.png"' in body
    assert b"[TEST] Ana &lt;wins&gt;" in body
    assert b'name="parse_mode"' in body
    assert ref.platform_id == "caption:50"


@responses.activate
def test_long_text_goes_after_its_photo_whose_id_is_recorded_first(tmp_path, card):
    pub = make(tmp_path)
    text = "[TEST] " + "ភ្នំពេញ " * 200  # about 1,600 UTF-16 units: over a caption's 1,024
    assert count_utf16(text) > 1024
    responses.post(f"{API}/sendPhoto", json=ok(message(60, photo=[{"file_id": "f"}])))
    responses.post(f"{API}/sendMessage", json=fail(500, "Internal Server Error"), status=500)
    with pytest.raises(InDoubt):
        pub.publish(post(text, media=(card,)))
    assert pub.env.checkpoint.values == {7: "photo:60"}  # type: ignore[attr-defined]
    assert b"caption" not in responses.calls[0].request.body
    # The retry carries the checkpoint: only the text is sent, never a second photo.
    responses.post(f"{API}/sendMessage", json=ok(message(61)))
    ref = pub.publish(post(text, media=(card,), checkpoint="photo:60", attempt=2))
    assert [c.request.url.rsplit("/", 1)[1] for c in responses.calls] == [
        "sendPhoto",
        "sendMessage",
        "sendMessage",
    ]
    assert ref.platform_id == "msg:61+photo:60"


@responses.activate
def test_a_refused_long_text_takes_its_lonely_photo_away(tmp_path, card):
    pub = make(tmp_path)
    responses.post(f"{API}/sendPhoto", json=ok(message(70, photo=[{"file_id": "f"}])))
    responses.post(
        f"{API}/sendMessage", json=fail(400, "Bad Request: message is too long"), status=400
    )
    responses.post(f"{API}/deleteMessage", json=ok(True))
    with pytest.raises(Rejected, match="message is too long"):
        pub.publish(post("x" * 2000, media=(card,)))
    assert sent_json(responses.calls[2]) == {"chat_id": "@nec_results", "message_id": 70}


@responses.activate
def test_thread_parts_reply_to_the_previous_part(tmp_path):
    pub = make(tmp_path)
    responses.post(f"{API}/sendMessage", json=ok(message(81)))
    pub.publish(post("part 2/2", reply_to="msg:80"))
    assert sent_json(responses.calls[0])["reply_parameters"]["message_id"] == 80


@pytest.mark.parametrize(
    ("status", "body", "kind", "words"),
    [
        (429, fail(429, "Too Many Requests: retry after 35", retry_after=35), RetryLater, "35"),
        (401, fail(401, "Unauthorized"), Reauthorize, "@BotFather"),
        (404, fail(404, "Not Found"), Reauthorize, "secret named TG_TOKEN"),
        (
            403,
            fail(403, "Forbidden: bot is not a member of the channel chat"),
            Reauthorize,
            "administrator",
        ),
        (
            400,
            fail(400, "Bad Request: need administrator rights in the channel chat"),
            Reauthorize,
            "auth telegram --account telegram-main",
        ),
        (400, fail(400, "Bad Request: chat not found"), Reauthorize, "@nec_results"),
        (
            400,
            fail(400, "Bad Request: group chat was upgraded", migrate_to_chat_id=-1009),
            Reauthorize,
            'channel = "-1009"',
        ),
        (400, fail(400, "Bad Request: message is too long"), Rejected, "too long"),
        (400, fail(400, "Bad Request: can't parse entities"), Rejected, "parse"),
        (500, fail(500, "Internal Server Error"), InDoubt, "after receiving"),
        (502, "<html>Bad Gateway</html>", InDoubt, "could not be read"),
        (503, "<html>unavailable</html>", RetryLater, "not an answer"),
        (200, "cut off {", InDoubt, "could not be read"),
    ],
)
@responses.activate
def test_every_answer_maps_to_one_kind(tmp_path, status, body, kind, words):
    pub = make(tmp_path)
    if isinstance(body, dict):
        responses.post(f"{API}/sendMessage", json=body, status=status)
    else:
        responses.post(f"{API}/sendMessage", body=body, status=status)
    with pytest.raises(kind) as raised:
        pub.publish(post())
    assert words in str(raised.value)
    assert TOKEN not in str(raised.value)
    assert "AAH-test" not in str(raised.value)
    if kind is RetryLater and status == 429:
        assert raised.value.delay == 35


@responses.activate
def test_retry_after_header_is_the_fallback_wait(tmp_path):
    pub = make(tmp_path)
    responses.post(f"{API}/sendMessage", body="busy", status=503, headers={"Retry-After": "12"})
    with pytest.raises(RetryLater) as raised:
        pub.publish(post())
    assert raised.value.delay == 12


@responses.activate
def test_network_failures_never_quote_the_token(tmp_path):
    pub = make(tmp_path)
    responses.post(f"{API}/sendMessage", body=requests.ReadTimeout(f"read timeout on {API}"))
    with pytest.raises(InDoubt) as raised:
        pub.publish(post())
    assert TOKEN not in str(raised.value)
    responses.post(f"{API}/deleteMessage", body=requests.ConnectionError(f"reset {API}"))
    with pytest.raises(RetryLater) as again:  # a delete creates nothing: simply retried
        pub.delete(PublishedRef("msg:5", NOW))
    assert TOKEN not in str(again.value)
    assert redact(f"x {TOKEN} y") == "x [redacted] y"  # registered when read


@responses.activate
def test_edit_text_or_caption_and_an_unchanged_edit_is_done(tmp_path):
    pub = make(tmp_path)
    responses.post(f"{API}/editMessageText", json=ok(message(41)))
    pub.edit(PublishedRef("msg:41+photo:40", NOW), "Corrected <b>")
    body = sent_json(responses.calls[0])
    assert body["message_id"] == 41
    assert body["text"] == "Corrected &lt;b&gt;"
    assert body["link_preview_options"] == {"is_disabled": True}
    responses.post(f"{API}/editMessageCaption", json=ok(message(50)))
    pub.edit(PublishedRef("caption:50", NOW), "Corrected")
    assert sent_json(responses.calls[1])["caption"] == "Corrected"
    responses.post(
        f"{API}/editMessageText",
        json=fail(400, "Bad Request: message is not modified: specified new message content"),
        status=400,
    )
    pub.edit(PublishedRef("msg:41", NOW), "Corrected <b>")  # no error: it already says that
    with pytest.raises(Rejected, match="no longer fits"):
        pub.edit(PublishedRef("caption:50", NOW), "y" * 1100)


@responses.activate
def test_delete_removes_the_message_and_its_photo_and_tolerates_gone(tmp_path):
    pub = make(tmp_path)
    responses.post(f"{API}/deleteMessage", json=ok(True))
    responses.post(
        f"{API}/deleteMessage",
        json=fail(400, "Bad Request: message to delete not found"),
        status=400,
    )
    pub.delete(PublishedRef("msg:61+photo:60", NOW))
    assert [sent_json(c)["message_id"] for c in responses.calls] == [61, 60]
    responses.post(
        f"{API}/deleteMessage", json=fail(400, "Bad Request: message can't be deleted"), status=400
    )
    with pytest.raises(Rejected):
        pub.delete(PublishedRef("msg:1", NOW))


@responses.activate
def test_find_reads_candidates_back_through_the_lookup_chat(tmp_path):
    pub = make(tmp_path, lookup_chat="-100777")
    responses.post(f"{API}/sendMessage", json=ok(message(100)))
    pub.publish(post("[TEST] earlier post"))  # the last id seen: 100
    target = post("[TEST] Ana wins <Northbay>")
    responses.post(
        f"{API}/forwardMessage",
        json=ok(message(900, "an admin's own post")),
        match=[matchers.json_params_matcher({"message_id": 101}, strict_match=False)],
    )
    responses.post(
        f"{API}/forwardMessage",
        json=ok(message(901, "[TEST] Ana wins <Northbay>")),
        match=[matchers.json_params_matcher({"message_id": 102}, strict_match=False)],
    )
    responses.post(f"{API}/deleteMessage", json=ok(True))
    ref = pub.find(target)
    assert ref is not None
    assert ref.platform_id == "msg:102"
    forwards = [sent_json(c) for c in responses.calls if c.request.url.endswith("forwardMessage")]
    assert forwards[0] == {
        "chat_id": "-100777",
        "from_chat_id": "@nec_results",
        "message_id": 101,
        "disable_notification": True,
    }
    deleted = [sent_json(c) for c in responses.calls if c.request.url.endswith("deleteMessage")]
    assert deleted == [
        {"chat_id": "-100777", "message_id": 900},
        {"chat_id": "-100777", "message_id": 901},
    ]


@responses.activate
def test_find_holds_when_it_cannot_tell(tmp_path):
    with pytest.raises(NotImplementedError, match="outbox mark-sent 7"):
        make(tmp_path).find(post())  # no lookup chat
    pub = make(tmp_path, lookup_chat="-100777", lookup_span=3)
    with pytest.raises(NotImplementedError, match="no message id"):
        pub.find(post())  # nothing seen in this channel yet
    responses.post(f"{API}/sendMessage", json=ok(message(10)))
    pub.publish(post("[TEST] earlier"))
    responses.post(
        f"{API}/forwardMessage",
        json=fail(400, "Bad Request: message to forward not found"),
        status=400,
    )
    with pytest.raises(NotImplementedError, match="messages 11-13"):
        pub.find(post())
    assert len([c for c in responses.calls if "forwardMessage" in c.request.url]) == 3


def test_channel_and_token_settings_are_checked():
    def problems(**settings) -> list[tuple[str, str]]:
        acct = AccountConfig.model_validate(
            {"name": "tg", "platform": "telegram", "dry_run": False, **settings}
        )
        return validate_account_settings(acct)

    assert problems(bot_token="TG_TOKEN", channel="@nec_results") == []
    assert problems(bot_token="TG_TOKEN", channel="-1001234567890") == []
    (bad,) = problems(bot_token=TOKEN, channel="@nec_results")
    assert bad[0] == "bot_token"
    assert "NAME" in bad[1]
    assert TOKEN not in bad[1]
    assert problems(bot_token="T", channel="nec_results")[0][0] == "channel"
    assert problems(bot_token="T", channel="@x", lookup_chat="-1")[0][0] == "channel"
    assert "numeric id" in problems(bot_token="T", channel="@nec_results", lookup_chat="@ops")[0][1]
    assert problems(bot_token="T", channel="@nec_results", api_base="http://example.org")[0][0] == (
        "api_base"
    )
    assert problems(bot_token="T", channel="@nec_results", disable_notification=["sometimes"])


def test_message_refs_round_trip():
    for value in ("msg:1", "caption:22", "msg:13+photo:12"):
        assert str(MessageRef.parse(value)) == value
    with pytest.raises(Rejected):
        MessageRef.parse("12")


def test_private_channel_links_and_none_for_groups(tmp_path):
    acct = account("telegram", bot_token="TG_TOKEN", channel="-1001234567890")
    assert TelegramPublisher(acct, env(tmp_path, SECRETS)).url(5) == "https://t.me/c/1234567890/5"
    acct = account("telegram", bot_token="TG_TOKEN", channel="-4242")
    assert TelegramPublisher(acct, env(tmp_path, SECRETS)).url(5) is None


def admin(**rights) -> dict:
    return {"status": "administrator", "user": {"id": 7012345678}, **rights}


@responses.activate
def test_doctor_needs_an_admin_allowed_to_post(tmp_path):
    acct = account("telegram", bot_token="TG_TOKEN", channel="@nec_results")
    responses.post(f"{API}/getMe", json=ok({"id": 7012345678, "is_bot": True, "username": "nb"}))
    responses.post(f"{API}/getChat", json=ok({"id": -1001, "type": "channel", "title": "NEC"}))
    responses.post(
        f"{API}/getChatMember",
        json=ok(admin(can_post_messages=True, can_edit_messages=True, can_delete_messages=True)),
    )
    line = TelegramPublisher.doctor(acct, env(tmp_path, SECRETS))
    assert line == "bot @nb may post, edit, delete in channel 'NEC' (@nec_results)"
    member_call = next(c for c in responses.calls if c.request.url.endswith("getChatMember"))
    assert sent_json(member_call) == {"chat_id": "@nec_results", "user_id": 7012345678}
    responses.replace(responses.POST, f"{API}/getChatMember", json=ok(admin()))
    with pytest.raises(Reauthorize, match="'administrator' in channel 'NEC'"):
        TelegramPublisher.doctor(acct, env(tmp_path, SECRETS))


@responses.activate
def test_authorize_explains_botfather_and_checks_the_token(tmp_path, capsys):
    acct = account("telegram", bot_token="TG_TOKEN", channel="@nec_results")
    responses.post(f"{API}/getMe", json=fail(401, "Unauthorized"), status=401)
    with pytest.raises(Reauthorize, match="bot token was refused"):
        TelegramPublisher.authorize(acct, env(tmp_path, SECRETS), prompt=lambda *a, **k: "")
    out = capsys.readouterr().out
    assert "@BotFather" in out
    assert "/newbot" in out
    assert "named TG_TOKEN" in out


@pytest.mark.parametrize("language", ["en", "ms", "km"])
def test_the_bundled_templates_fit_telegram_in_every_language(tmp_path, language):
    """Khmer renders as text on Telegram: the default templates post unchanged, within 4,096
    UTF-16 units, and the console lets operators edit Telegram's own files."""
    from broadcaster.console.template_files import Name
    from broadcaster.content.lint import lint_templates
    from broadcaster.runtime.configuration import load_config
    from tests.conftest import write_config

    accounts = (
        '\n[[accounts]]\nname = "tg"\nplatform = "telegram"\ndry_run = true\n'
        f'language = "{language}"\nbot_token = "TG_TOKEN"\nchannel = "@nec_results"\n'
    )
    config = load_config(write_config(tmp_path / "c.toml", source="f", accounts=accounts))
    report = lint_templates(config)
    assert report.problems == []
    assert report.renders > 50
    assert str(Name.parse(f"{language}/telegram/called.j2")) == f"{language}/telegram/called.j2"
