"""The X adapter through tweepy (and its OAuth 1.0a signer for media), mocked by `responses`."""

from __future__ import annotations

import json

import pytest
import requests
import responses

from broadcaster.publishers import InDoubt, PublishedRef, Reauthorize, Rejected, RetryLater
from broadcaster.publishers.x import XPublisher
from tests.adapters import NOW, account, env, post

API = "https://api.x.com"
SECRETS = {
    "X_CK": "consumer-key-value",
    "X_CS": "consumer-secret-value",
    "X_AT": "access-token-value",
    "X_AS": "access-secret-value",
}


@pytest.fixture
def publisher(tmp_path):
    acct = account(
        "x",
        consumer_key="X_CK",
        consumer_secret="X_CS",
        access_token="X_AT",
        access_token_secret="X_AS",
    )
    return XPublisher(acct, env(tmp_path, SECRETS))


def problem(status: int, detail: str) -> dict:
    return {"title": "x", "detail": detail, "type": "about:blank", "status": status}


@responses.activate
def test_create_tweet_shape_and_oauth1_signature(publisher):
    responses.post(
        f"{API}/2/tweets",
        json={"data": {"id": "1500", "text": "t"}},
        status=201,
        headers={"x-rate-limit-remaining": "199", "x-user-limit-24hour-remaining": "99"},
    )
    ref = publisher.publish(post(reply_to="1499"))
    assert ref.platform_id == "1500"
    assert ref.url == "https://x.com/i/status/1500"
    request = responses.calls[0].request
    assert json.loads(request.body) == {
        "text": "[TEST] Ana wins Northbay",
        "reply": {"in_reply_to_tweet_id": "1499"},
    }
    auth = request.headers["Authorization"]
    assert auth.startswith("OAuth ")
    assert 'oauth_consumer_key="consumer-key-value"' in auth
    assert "consumer-secret-value" not in auth
    assert "access-secret-value" not in auth
    assert publisher.env.state.rate_limits["x-main"]["x-user-limit-24hour-remaining"] == "99"


@responses.activate
def test_image_goes_through_the_v2_media_upload_first(publisher, tmp_path):
    card = tmp_path / "card.png"
    card.write_bytes(b"\x89PNG card")
    responses.post(f"{API}/2/media/upload", json={"data": {"id": "777", "media_key": "3_777"}})
    responses.post(f"{API}/2/tweets", json={"data": {"id": "1501", "text": "t"}}, status=201)
    publisher.publish(post(media=(str(card),)))
    upload = responses.calls[0].request
    assert upload.url == f"{API}/2/media/upload"
    assert b'name="media"' in upload.body
    assert b"\x89PNG card" in upload.body
    assert b'name="media_category"' in upload.body
    assert b"tweet_image" in upload.body
    assert upload.headers["Authorization"].startswith("OAuth ")
    assert json.loads(responses.calls[1].request.body)["media"] == {"media_ids": ["777"]}


@pytest.mark.parametrize(
    ("status", "payload", "attempt", "expected", "text"),
    [
        (429, problem(429, "Too Many Requests"), 1, RetryLater, "rate limited"),
        (401, problem(401, "Unauthorized"), 1, Reauthorize, "refused"),
        (
            403,
            problem(403, "You are not allowed to create a Tweet with duplicate content."),
            1,
            Rejected,
            "duplicate content",
        ),
        (
            403,
            problem(403, "You are not allowed to create a Tweet with duplicate content."),
            2,
            InDoubt,
            "duplicate of an earlier attempt",
        ),
        (
            403,
            problem(403, "You are not permitted to perform this action."),
            1,
            Rejected,
            "forbidden",
        ),
        (400, problem(400, "Invalid Request"), 1, Rejected, "HTTP 400"),
        # A 5xx after the tweet was sent may have created it: in doubt (looked up); a 503
        # turned the request away: simply later.
        (500, problem(500, "Internal Server Error"), 1, InDoubt, "server error"),
        (502, problem(502, "Bad Gateway"), 1, InDoubt, "server error"),
        (503, problem(503, "Service Unavailable"), 1, RetryLater, "server error"),
        (
            401,
            problem(401, "Unauthorized"),
            1,
            Reauthorize,
            "`broadcaster auth x --account x-main`",
        ),
    ],
)
@responses.activate
def test_errors_map_to_the_taxonomy(publisher, status, payload, attempt, expected, text):
    responses.post(f"{API}/2/tweets", json=payload, status=status)
    with pytest.raises(expected) as info:
        publisher.publish(post(attempt=attempt))
    assert type(info.value) is expected
    assert text in str(info.value)
    for secret in SECRETS.values():
        assert secret not in str(info.value)


@responses.activate
def test_rate_limit_delay_from_the_reset_headers(publisher):
    reset = int(NOW.timestamp()) + 300
    responses.post(
        f"{API}/2/tweets",
        json=problem(429, "Too Many Requests"),
        status=429,
        headers={"x-user-limit-24hour-remaining": "0", "x-user-limit-24hour-reset": str(reset)},
    )
    with pytest.raises(RetryLater) as info:
        publisher.publish(post())
    assert info.value.delay == pytest.approx(300, abs=1)


@pytest.mark.parametrize(
    ("status", "headers", "delay"),
    [
        (429, {}, None),  # no wait given: the dispatcher backs off
        (429, {"Retry-After": "12"}, 12),
        (503, {"Retry-After": "7"}, 7),
    ],
)
@responses.activate
def test_waits_come_from_the_platform_or_not_at_all(publisher, status, headers, delay):
    responses.post(f"{API}/2/tweets", json=problem(status, "x"), status=status, headers=headers)
    with pytest.raises(RetryLater) as info:
        publisher.publish(post())
    assert info.value.delay == (pytest.approx(delay) if delay is not None else None)


@responses.activate
def test_network_failures(publisher):
    responses.post(f"{API}/2/tweets", body=requests.ConnectTimeout("connect timed out"))
    with pytest.raises(RetryLater, match="nothing was sent"):
        publisher.publish(post())
    responses.replace(
        responses.POST, f"{API}/2/tweets", body=requests.ReadTimeout("read timed out")
    )
    with pytest.raises(InDoubt, match="after the request was sent"):
        publisher.publish(post())


@responses.activate
def test_find_and_delete(publisher):
    responses.get(f"{API}/2/users/me", json={"data": {"id": "42", "name": "N", "username": "nec"}})
    responses.get(
        f"{API}/2/users/42/tweets",
        json={
            "data": [
                {"id": "1", "text": "other", "edit_history_tweet_ids": ["1"]},
                {"id": "2", "text": "[TEST] Ana wins Northbay", "edit_history_tweet_ids": ["2"]},
            ],
            "meta": {"result_count": 2},
        },
    )
    ref = publisher.find(post())
    assert ref is not None
    assert ref.platform_id == "2"
    responses.delete(f"{API}/2/tweets/2", json={"data": {"deleted": True}})
    publisher.delete(PublishedRef("2", NOW))
    assert responses.calls[-1].request.method == "DELETE"
