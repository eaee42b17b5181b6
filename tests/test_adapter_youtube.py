"""The YouTube adapter through google-api-python-client, with googleapiclient's own
HttpMockSequence (httplib2, which `responses` cannot see)."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import pytest
from googleapiclient.http import HttpMockSequence

from broadcaster.publishers import InDoubt, Reauthorize, Rejected, RetryLater
from broadcaster.publishers.youtube import YouTubePublisher, next_reset
from tests.adapters import NOW, account, env, post

SECRETS = {"YT_ID": "client-id-value", "YT_SECRET": "client-secret-value"}
TOKEN = (
    {"status": "200", "content-type": "application/json"},
    json.dumps({"access_token": "ya29.fresh-access", "expires_in": 3599, "token_type": "Bearer"}),
)
BROADCASTS = (
    {"status": "200"},
    json.dumps(
        {"items": [{"id": "b1", "snippet": {"liveChatId": "chat-1", "channelId": "UC-own"}}]}
    ),
)


def yt_error(status: int, reason: str) -> tuple[dict, str]:
    body = {
        "error": {
            "code": status,
            "message": reason,
            "errors": [{"reason": reason, "domain": "youtube"}],
        }
    }
    return {"status": str(status), "content-type": "application/json"}, json.dumps(body)


def make(tmp_path, responses_: list, **settings) -> tuple[YouTubePublisher, HttpMockSequence]:
    http = HttpMockSequence(list(responses_))
    acct = account("youtube", client_id="YT_ID", client_secret="YT_SECRET", **settings)
    pub = YouTubePublisher(
        acct,
        env(tmp_path, SECRETS, {"youtube-main": {"refresh_token": "1//refresh"}}),
        transport=http,
    )
    return pub, http


def test_chat_message_shape_refresh_and_quota(tmp_path):
    inserted = ({"status": "200"}, json.dumps({"id": "msg-1", "snippet": {}}))
    pub, http = make(tmp_path, [TOKEN, BROADCASTS, inserted])
    ref = pub.publish(post())
    assert ref.platform_id == "msg-1"
    (token_uri, _, token_body, _), (list_uri, *_), (insert_uri, method, body, headers) = (
        http.request_sequence
    )
    assert token_uri == "https://oauth2.googleapis.com/token"
    assert parse_qs(token_body.decode())["grant_type"] == ["refresh_token"]
    assert parse_qs(urlsplit(list_uri).query)["broadcastStatus"] == ["active"]
    assert method == "POST"
    assert urlsplit(insert_uri).path == "/youtube/v3/liveChat/messages"
    assert json.loads(body) == {
        "snippet": {
            "liveChatId": "chat-1",
            "type": "textMessageEvent",
            "textMessageDetails": {"messageText": "[TEST] Ana wins Northbay"},
        }
    }
    assert headers["authorization"] == "Bearer ya29.fresh-access"
    _, used = pub.quota_used()
    assert used == 1 + 20


@pytest.mark.parametrize(
    ("error", "expected", "text"),
    [
        (yt_error(403, "quotaExceeded"), RetryLater, "daily quota exceeded"),
        (yt_error(403, "rateLimitExceeded"), RetryLater, "rate limited"),
        (yt_error(400, "messageTextInvalid"), Rejected, "messageTextInvalid"),
        (yt_error(403, "forbidden"), Rejected, "forbidden"),
        (yt_error(503, "backendError"), InDoubt, "server error"),
    ],
)
def test_errors_map_to_the_taxonomy(tmp_path, error, expected, text):
    pub, _ = make(tmp_path, [TOKEN, BROADCASTS, error])
    with pytest.raises(expected, match=text):
        pub.publish(post())


def test_quota_exceeded_waits_for_midnight_pacific(tmp_path):
    pub, _ = make(tmp_path, [TOKEN, BROADCASTS, yt_error(403, "quotaExceeded")])
    with pytest.raises(RetryLater) as info:
        pub.publish(post())
    expected = (next_reset(NOW) - NOW).total_seconds()
    assert info.value.delay == pytest.approx(expected)
    # The budget is now spent: the next call waits without asking YouTube.
    with pytest.raises(RetryLater, match="daily quota spent"):
        pub.publish(post())


def test_budget_is_counted_before_calls(tmp_path):
    pub2, http2 = make(tmp_path, [TOKEN, BROADCASTS], daily_quota=20)
    with pytest.raises(RetryLater, match="daily quota spent \\(1 of 20"):
        pub2.publish(post())  # 1 unit for the broadcast list leaves 19: not enough for an insert
    assert len(http2.request_sequence) == 2, "the insert was never sent"


def test_chat_ended_looks_up_the_new_chat_once(tmp_path):
    new_broadcast = (
        {"status": "200"},
        json.dumps(
            {"items": [{"id": "b2", "snippet": {"liveChatId": "chat-2", "channelId": "UC-own"}}]}
        ),
    )
    inserted = ({"status": "200"}, json.dumps({"id": "msg-9"}))
    pub, http = make(
        tmp_path, [TOKEN, BROADCASTS, yt_error(403, "liveChatEnded"), new_broadcast, inserted]
    )
    assert pub.publish(post()).platform_id == "msg-9"
    assert json.loads(http.request_sequence[-1][2])["snippet"]["liveChatId"] == "chat-2"


def test_failed_refresh_asks_for_reauthorisation(tmp_path):
    refused = (
        {"status": "400", "content-type": "application/json"},
        json.dumps(
            {"error": "invalid_grant", "error_description": "Token has been expired or revoked."}
        ),
    )
    pub, _ = make(tmp_path, [refused])
    with pytest.raises(Reauthorize, match="broadcaster auth youtube"):
        pub.publish(post())


def test_find_own_message_by_text(tmp_path):
    listing = (
        {"status": "200"},
        json.dumps(
            {
                "items": [
                    {
                        "id": "m1",
                        "snippet": {"displayMessage": "[TEST] Ana wins Northbay"},
                        "authorDetails": {"channelId": "UC-someone-else", "isChatOwner": False},
                    },
                    {
                        "id": "m2",
                        "snippet": {
                            "textMessageDetails": {"messageText": "[TEST] Ana wins Northbay"}
                        },
                        "authorDetails": {"channelId": "UC-own", "isChatOwner": True},
                    },
                ]
            }
        ),
    )
    pub, _ = make(tmp_path, [TOKEN, BROADCASTS, listing])
    assert pub.find(post()).platform_id == "m2"


def test_a_rendered_video_is_uploaded_as_a_short_with_its_quota(tmp_path):
    video = tmp_path / "result.mp4"
    video.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 2048)  # a stand-in, never played
    started = ({"status": "200", "location": "https://upload.example/session-1"}, "")
    done = ({"status": "200"}, json.dumps({"id": "vid-9", "snippet": {}}))
    pub, http = make(tmp_path, [TOKEN, started, done])
    ref = pub.publish(post(media=(str(video),), title="Northbay declared"))
    assert ref.platform_id == "video:vid-9"
    assert ref.url == "https://www.youtube.com/shorts/vid-9"
    _, (init_uri, init_method, init_body, _), (put_uri, put_method, _, put_headers) = (
        http.request_sequence
    )
    assert init_method == "POST"
    assert urlsplit(init_uri).path == "/upload/youtube/v3/videos"
    assert parse_qs(urlsplit(init_uri).query)["uploadType"] == ["resumable"]
    meta = json.loads(init_body)
    assert meta["snippet"]["title"] == "Northbay declared"
    assert meta["snippet"]["description"] == "[TEST] Ana wins Northbay"
    assert put_uri == "https://upload.example/session-1"
    assert put_method == "PUT"
    size = video.stat().st_size
    assert put_headers["Content-Range"] == f"bytes 0-{size - 1}/{size}"  # the whole file
    _, used = pub.quota_used()
    assert used == 1600
    with pytest.raises(NotImplementedError, match="left to the operator"):
        pub.delete(ref)
