"""The TikTok adapter (requests), mocked by `responses`: creator info first, the documented
photo-post body, error codes even on HTTP 200, token refresh and rotation, status polling."""

from __future__ import annotations

import json
import time
from urllib.parse import parse_qs

import pytest
import requests
import responses

from broadcaster.publishers import InDoubt, Reauthorize, Rejected, RetryLater
from broadcaster.publishers.tiktok import TikTokPublisher
from tests.adapters import account, env, post

API = "https://open.tiktokapis.com"
SECRETS = {"TT_KEY": "client-key-value", "TT_SECRET": "client-secret-value"}


def ok(data: dict) -> dict:
    return {"data": data, "error": {"code": "ok", "message": "", "log_id": "L"}}


def fail(code: str, message: str = "") -> dict:
    return {"data": {}, "error": {"code": code, "message": message, "log_id": "L"}}


INFO = ok(
    {
        "creator_username": "nec_cambodia",
        "privacy_level_options": ["PUBLIC_TO_EVERYONE", "SELF_ONLY"],
    }
)


@pytest.fixture
def card(tmp_path):
    path = tmp_path / "abc123.jpg"
    path.write_bytes(b"\xff\xd8 jpeg")
    return path


def make(
    tmp_path, *, expires_in: float = 86400, privacy: str = "PUBLIC_TO_EVERYONE"
) -> TikTokPublisher:
    acct = account(
        "tiktok",
        client_key="TT_KEY",
        client_secret="TT_SECRET",
        privacy_level=privacy,
        media_base_url="https://results.example.org/cards",
        media_dir=str(tmp_path / "public"),
        status_interval=0.01,
        status_wait=1,
    )
    tokens = {
        "tiktok-main": {
            "access_token": "act.first-access-token",
            "refresh_token": "rft.first-refresh",
            "expires_at": time.time() + expires_in,
        }
    }
    return TikTokPublisher(acct, env(tmp_path, SECRETS, tokens))


@responses.activate
def test_photo_post_shape_publish_id_checkpoint_and_status(tmp_path, card):
    pub = make(tmp_path)
    responses.post(f"{API}/v2/post/publish/creator_info/query/", json=INFO)
    responses.post(
        f"{API}/v2/post/publish/content/init/", json=ok({"publish_id": "p_pub_url~v2.1"})
    )
    responses.post(
        f"{API}/v2/post/publish/status/fetch/", json=ok({"status": "PROCESSING_DOWNLOAD"})
    )
    responses.post(
        f"{API}/v2/post/publish/status/fetch/",
        json=ok({"status": "PUBLISH_COMPLETE", "publicaly_available_post_id": [7300000001]}),
    )
    ref = pub.publish(post(media=(str(card),), title="[TEST] Ana wins"))
    assert ref.platform_id == "7300000001"
    init = json.loads(responses.calls[1].request.body)
    assert init == {
        "media_type": "PHOTO",
        "post_mode": "DIRECT_POST",
        "post_info": {
            "title": "[TEST] Ana wins",
            "description": "[TEST] Ana wins Northbay",
            "privacy_level": "PUBLIC_TO_EVERYONE",
            "disable_comment": False,
            "auto_add_music": False,
        },
        "source_info": {
            "source": "PULL_FROM_URL",
            "photo_images": ["https://results.example.org/cards/abc123.jpg"],
            "photo_cover_index": 0,
        },
    }
    assert responses.calls[1].request.headers["Authorization"] == "Bearer act.first-access-token"
    assert (tmp_path / "public" / "abc123.jpg").read_bytes() == card.read_bytes()
    assert pub.env.checkpoint.values == {7: "p_pub_url~v2.1"}
    assert json.loads(responses.calls[2].request.body) == {"publish_id": "p_pub_url~v2.1"}


@responses.activate
def test_error_code_is_checked_even_on_http_200(tmp_path, card):
    pub = make(tmp_path)
    responses.post(f"{API}/v2/post/publish/creator_info/query/", json=INFO)
    responses.post(
        f"{API}/v2/post/publish/content/init/", json=fail("spam_risk_too_many_posts", "cap")
    )
    with pytest.raises(RetryLater, match="daily post cap"):
        pub.publish(post(media=(str(card),)))


@pytest.mark.parametrize(
    ("status", "body", "expected", "text"),
    [
        (429, fail("rate_limit_exceeded"), RetryLater, "rate_limit_exceeded"),
        (200, fail("internal_error"), RetryLater, "internal_error"),
        (403, fail("spam_risk_too_many_pending_share"), RetryLater, "pending_share"),
        # Any 5xx, whatever its code (one never seen before included), is not a refusal: after
        # content/init TikTok may have created the post, so it is in doubt.
        (500, fail("internal_error"), InDoubt, "no publish_id"),
        (500, fail("brand_new_error_code"), InDoubt, "brand_new_error_code"),
        (502, {"not": "tiktok"}, InDoubt, "no publish_id"),
        # 503 turns the request away: tried again later.
        (503, fail("brand_new_error_code"), RetryLater, "brand_new_error_code"),
        (403, fail("url_ownership_unverified"), Rejected, "url_ownership_unverified"),
        (403, fail("privacy_level_option_mismatch"), Rejected, "privacy_level_option_mismatch"),
        (200, fail("unaudited_client_can_only_post_to_private_accounts"), Rejected, "SELF_ONLY"),
        (403, fail("spam_risk_user_banned_from_posting"), Rejected, "banned"),
        (400, fail("invalid_param", "title too long"), Rejected, "invalid_param"),
    ],
)
@responses.activate
def test_errors_map_to_the_taxonomy(tmp_path, card, status, body, expected, text):
    pub = make(tmp_path)
    responses.post(f"{API}/v2/post/publish/creator_info/query/", json=INFO)
    responses.post(f"{API}/v2/post/publish/content/init/", json=body, status=status)
    with pytest.raises(expected, match=text) as info:
        pub.publish(post(media=(str(card),)))
    assert type(info.value) is expected


@pytest.mark.parametrize(
    ("headers", "delay"),
    [
        ({"Retry-After": "17"}, 17.0),
        ({"Retry-After": "Sun, 28 Jul 2030 14:00:30 GMT"}, 30.0),
        ({}, None),
    ],
)
@responses.activate
def test_rate_limit_waits_for_retry_after_or_leaves_the_backoff_to_the_dispatcher(
    tmp_path, card, headers, delay
):
    pub = make(tmp_path)
    responses.post(f"{API}/v2/post/publish/creator_info/query/", json=INFO)
    responses.post(
        f"{API}/v2/post/publish/content/init/",
        json=fail("rate_limit_exceeded"),
        status=429,
        headers=headers,
    )
    with pytest.raises(RetryLater) as info:
        pub.publish(post(media=(str(card),)))
    assert info.value.delay == (pytest.approx(delay) if delay is not None else None)


@responses.activate
def test_a_server_error_before_posting_is_simply_retried(tmp_path, card):
    pub = make(tmp_path)
    responses.post(
        f"{API}/v2/post/publish/creator_info/query/", json=fail("whatever_new"), status=500
    )
    with pytest.raises(RetryLater):
        pub.publish(post(media=(str(card),)))
    assert all("content/init" not in c.request.url for c in responses.calls)


@responses.activate
def test_a_server_error_on_token_refresh_is_temporary_not_reauthorisation(tmp_path):
    pub = make(tmp_path, expires_in=10)
    responses.post(f"{API}/v2/oauth/token/", json={"error": "server_error"}, status=502)
    with pytest.raises(RetryLater, match="token refresh: HTTP 502"):
        pub.creator_info()


@responses.activate
def test_privacy_level_not_allowed_is_a_clear_error(tmp_path, card):
    pub = make(tmp_path, privacy="FOLLOWER_OF_CREATOR")
    responses.post(f"{API}/v2/post/publish/creator_info/query/", json=INFO)
    with pytest.raises(Rejected, match="privacy_level FOLLOWER_OF_CREATOR is not allowed"):
        pub.publish(post(media=(str(card),)))
    assert len(responses.calls) == 1, "nothing is posted"


@responses.activate
def test_token_refreshed_before_expiry_and_rotated_atomically(tmp_path, card):
    pub = make(tmp_path, expires_in=60)  # inside the refresh margin
    responses.post(
        f"{API}/v2/oauth/token/",
        json={
            "access_token": "act.second",
            "refresh_token": "rft.second",
            "expires_in": 86400,
            "open_id": "o",
            "refresh_expires_in": 31536000,
            "token_type": "Bearer",
        },
    )
    responses.post(f"{API}/v2/post/publish/creator_info/query/", json=INFO)
    assert pub.creator_info()["creator_username"] == "nec_cambodia"
    refresh = parse_qs(responses.calls[0].request.body)
    assert refresh == {
        "client_key": ["client-key-value"],
        "client_secret": ["client-secret-value"],
        "grant_type": ["refresh_token"],
        "refresh_token": ["rft.first-refresh"],
    }
    assert responses.calls[1].request.headers["Authorization"] == "Bearer act.second"
    stored = pub.env.tokens.get("tiktok-main")
    assert stored["access_token"] == "act.second"
    assert stored["refresh_token"] == "rft.second"
    assert oct((tmp_path / "tokens.json").stat().st_mode & 0o777) == "0o600"


@responses.activate
def test_token_refreshed_once_on_an_auth_error(tmp_path, card):
    pub = make(tmp_path)
    responses.post(
        f"{API}/v2/post/publish/creator_info/query/", json=fail("access_token_invalid"), status=401
    )
    responses.post(
        f"{API}/v2/oauth/token/",
        json={"access_token": "act.new", "refresh_token": "rft.new", "expires_in": 86400},
    )
    responses.post(
        f"{API}/v2/post/publish/creator_info/query/", json=fail("access_token_invalid"), status=401
    )
    with pytest.raises(Reauthorize, match="broadcaster auth tiktok"):
        pub.creator_info()
    assert [c.request.url.rsplit("/v2/", 1)[1] for c in responses.calls] == [
        "post/publish/creator_info/query/",
        "oauth/token/",
        "post/publish/creator_info/query/",
    ]


@responses.activate
def test_failed_refresh_asks_for_reauthorisation(tmp_path):
    pub = make(tmp_path, expires_in=10)
    responses.post(
        f"{API}/v2/oauth/token/",
        json={"error": "invalid_grant", "error_description": "x"},
        status=400,
    )
    with pytest.raises(Reauthorize, match="refresh failed \\(invalid_grant\\)"):
        pub.creator_info()


@responses.activate
def test_lookup_needs_a_publish_id_and_resume_never_reposts(tmp_path, card):
    pub = make(tmp_path)
    with pytest.raises(NotImplementedError):
        pub.find(post())
    responses.post(
        f"{API}/v2/post/publish/status/fetch/",
        json=ok({"status": "PUBLISH_COMPLETE", "publicaly_available_post_id": [5]}),
    )
    assert pub.find(post(checkpoint="p_pub_url~v2.9")).platform_id == "5"
    # publishing a post that already has a publish_id follows it instead of posting again
    assert pub.publish(post(media=(str(card),), checkpoint="p_pub_url~v2.9")).platform_id == "5"
    assert all("content/init" not in c.request.url for c in responses.calls)


@responses.activate
def test_timeout_after_sending_is_in_doubt(tmp_path, card):
    pub = make(tmp_path)
    responses.post(f"{API}/v2/post/publish/creator_info/query/", json=INFO)
    responses.post(f"{API}/v2/post/publish/content/init/", body=requests.ReadTimeout("timed out"))
    with pytest.raises(InDoubt):
        pub.publish(post(media=(str(card),)))
