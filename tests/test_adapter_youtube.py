"""The YouTube adapter through google-api-python-client on its requests transport
(google-auth's AuthorizedSession), mocked by `responses`."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses

from broadcaster.publishers import InDoubt, Reauthorize, Rejected, RetryLater
from broadcaster.publishers.youtube import YouTubePublisher, next_reset
from tests.adapters import NOW, account, env, post

SECRETS = {"YT_ID": "client-id-value", "YT_SECRET": "client-secret-value"}
TOKEN_URI = "https://oauth2.googleapis.com/token"
API = "https://www.googleapis.com/youtube/v3"
MESSAGES = f"{API}/liveChat/messages"
BROADCASTS = f"{API}/liveBroadcasts"
FRESH = {"access_token": "ya29.fresh-access", "expires_in": 3599, "token_type": "Bearer"}
ACTIVE = {"items": [{"id": "b1", "snippet": {"liveChatId": "chat-1", "channelId": "UC-own"}}]}


def yt_error(status: int, reason: str, **headers: str) -> dict:
    body = {
        "error": {
            "code": status,
            "message": reason,
            "errors": [{"reason": reason, "domain": "youtube"}],
        }
    }
    return {"json": body, "status": status, "headers": headers}


def make(tmp_path, **settings) -> YouTubePublisher:
    acct = account("youtube", client_id="YT_ID", client_secret="YT_SECRET", **settings)
    return YouTubePublisher(
        acct, env(tmp_path, SECRETS, {"youtube-main": {"refresh_token": "1//refresh"}})
    )


def live(token: bool = True) -> None:
    """The token endpoint and the active broadcast, as every post starts."""
    if token:
        responses.post(TOKEN_URI, json=FRESH)
    responses.get(BROADCASTS, json=ACTIVE)


@responses.activate
def test_chat_message_shape_refresh_and_quota(tmp_path):
    live()
    responses.post(MESSAGES, json={"id": "msg-1", "snippet": {}})
    pub = make(tmp_path)
    ref = pub.publish(post())
    assert ref.platform_id == "msg-1"
    token, listing, insert = (c.request for c in responses.calls)
    assert token.url == TOKEN_URI
    assert parse_qs(token.body.decode())["grant_type"] == ["refresh_token"]
    assert parse_qs(urlsplit(listing.url).query)["broadcastStatus"] == ["active"]
    assert insert.method == "POST"
    assert urlsplit(insert.url).path == "/youtube/v3/liveChat/messages"
    assert json.loads(insert.body) == {
        "snippet": {
            "liveChatId": "chat-1",
            "type": "textMessageEvent",
            "textMessageDetails": {"messageText": "[TEST] Ana wins Northbay"},
        }
    }
    assert insert.headers["authorization"] == "Bearer ya29.fresh-access"
    _, used = pub.quota_used()
    assert used == 1 + 20


@pytest.mark.parametrize(
    ("error", "expected", "text", "delay"),
    [
        (yt_error(403, "quotaExceeded"), RetryLater, "daily quota exceeded", "midnight"),
        (yt_error(403, "rateLimitExceeded"), RetryLater, "rate limited", None),
        (yt_error(403, "userRateLimitExceeded"), RetryLater, "rate limited", None),
        (yt_error(429, "rateLimitExceeded", **{"Retry-After": "33"}), RetryLater, "rate", 33),
        (yt_error(400, "messageTextInvalid"), Rejected, "messageTextInvalid", None),
        (yt_error(403, "forbidden"), Rejected, "forbidden", None),
        # After the message was sent, a 5xx may come after YouTube posted it: in doubt.
        (yt_error(500, "backendError"), InDoubt, "server error", None),
        (yt_error(500, "somethingNew"), InDoubt, "server error", None),
        # 503 turns the request away: later, when Google says.
        (yt_error(503, "backendError", **{"Retry-After": "9"}), RetryLater, "server error", 9),
    ],
)
@responses.activate
def test_errors_map_to_the_taxonomy(tmp_path, error, expected, text, delay):
    live()
    responses.post(MESSAGES, **error)
    with pytest.raises(expected, match=text) as info:
        make(tmp_path).publish(post())
    assert type(info.value) is expected
    if delay == "midnight":
        assert info.value.delay == pytest.approx((next_reset(NOW) - NOW).total_seconds())
    elif expected is RetryLater:
        assert info.value.delay == (pytest.approx(delay) if delay is not None else None)


@responses.activate
def test_quota_exceeded_waits_for_midnight_pacific(tmp_path):
    live()
    responses.post(MESSAGES, **yt_error(403, "quotaExceeded"))
    pub = make(tmp_path)
    with pytest.raises(RetryLater):
        pub.publish(post())
    # The budget is now spent: the next call waits without asking YouTube.
    calls = len(responses.calls)
    with pytest.raises(RetryLater, match="daily quota spent"):
        pub.publish(post())
    assert len(responses.calls) == calls


@responses.activate
def test_budget_is_counted_before_calls(tmp_path):
    live()
    pub = make(tmp_path, daily_quota=20)
    with pytest.raises(RetryLater, match="daily quota spent \\(1 of 20"):
        pub.publish(post())  # 1 unit for the broadcast list leaves 19: not enough for an insert
    assert [c.request.method for c in responses.calls] == ["POST", "GET"], "no insert was sent"


@responses.activate
def test_chat_ended_looks_up_the_new_chat_once(tmp_path):
    live()
    responses.post(MESSAGES, **yt_error(403, "liveChatEnded"))
    responses.get(
        BROADCASTS,
        json={"items": [{"id": "b2", "snippet": {"liveChatId": "chat-2", "channelId": "UC-own"}}]},
    )
    responses.post(MESSAGES, json={"id": "msg-9"})
    assert make(tmp_path).publish(post()).platform_id == "msg-9"
    assert json.loads(responses.calls[-1].request.body)["snippet"]["liveChatId"] == "chat-2"


@responses.activate
def test_failed_refresh_asks_for_reauthorisation(tmp_path):
    responses.post(
        TOKEN_URI,
        status=400,
        json={"error": "invalid_grant", "error_description": "Token has been expired or revoked."},
    )
    with pytest.raises(Reauthorize, match="broadcaster auth youtube --account youtube-main"):
        make(tmp_path).publish(post())


@responses.activate
def test_a_refused_token_is_refreshed_once_and_the_message_sent_once(tmp_path):
    live()
    responses.post(MESSAGES, **yt_error(401, "authError"))
    responses.post(TOKEN_URI, json={**FRESH, "access_token": "ya29.second"})
    responses.post(MESSAGES, json={"id": "msg-2"})
    assert make(tmp_path).publish(post()).platform_id == "msg-2"
    inserts = [c.request for c in responses.calls if c.request.url.startswith(MESSAGES)]
    assert [r.headers["authorization"] for r in inserts] == [
        "Bearer ya29.fresh-access",
        "Bearer ya29.second",
    ]


@responses.activate
def test_network_failures_after_sending_are_in_doubt_before_are_later(tmp_path):
    live()
    responses.post(MESSAGES, body=requests.ConnectionError("Remote end closed connection"))
    pub = make(tmp_path)
    with pytest.raises(InDoubt, match="after the request was sent"):
        pub.publish(post())
    responses.replace(responses.POST, MESSAGES, body=requests.ConnectTimeout("connect"))
    with pytest.raises(RetryLater, match="nothing was sent"):
        pub.publish(post())
    # A look-up that fails created nothing: later, not in doubt.
    responses.get(MESSAGES, body=requests.ReadTimeout("read timed out"))
    with pytest.raises(RetryLater):
        pub.find(post())


@responses.activate
def test_find_own_message_by_text(tmp_path):
    live()
    responses.get(
        MESSAGES,
        json={
            "items": [
                {
                    "id": "m1",
                    "snippet": {"displayMessage": "[TEST] Ana wins Northbay"},
                    "authorDetails": {"channelId": "UC-someone-else", "isChatOwner": False},
                },
                {
                    "id": "m2",
                    "snippet": {"textMessageDetails": {"messageText": "[TEST] Ana wins Northbay"}},
                    "authorDetails": {"channelId": "UC-own", "isChatOwner": True},
                },
            ]
        },
    )
    assert make(tmp_path).find(post()).platform_id == "m2"


@responses.activate
def test_a_rendered_video_is_uploaded_as_a_short_with_its_quota(tmp_path):
    video = tmp_path / "result.mp4"
    video.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 2048)  # a stand-in, never played
    responses.post(TOKEN_URI, json=FRESH)
    responses.post(
        "https://www.googleapis.com/upload/youtube/v3/videos",
        status=200,
        headers={"Location": "https://upload.example/session-1"},
        body="",
    )
    responses.put("https://upload.example/session-1", json={"id": "vid-9", "snippet": {}})
    pub = make(tmp_path)
    ref = pub.publish(post(media=(str(video),), title="Northbay declared"))
    assert ref.platform_id == "video:vid-9"
    assert ref.url == "https://www.youtube.com/shorts/vid-9"
    _, init, put = (c.request for c in responses.calls)
    assert init.method == "POST"
    assert urlsplit(init.url).path == "/upload/youtube/v3/videos"
    assert parse_qs(urlsplit(init.url).query)["uploadType"] == ["resumable"]
    meta = json.loads(init.body)
    assert meta["snippet"]["title"] == "Northbay declared"
    assert meta["snippet"]["description"] == "[TEST] Ana wins Northbay"
    assert put.url == "https://upload.example/session-1"
    assert put.method == "PUT"
    size = video.stat().st_size
    assert put.headers["Content-Range"] == f"bytes 0-{size - 1}/{size}"  # the whole file
    _, used = pub.quota_used()
    assert used == 1600
    with pytest.raises(NotImplementedError, match="left to the operator"):
        pub.delete(ref)
