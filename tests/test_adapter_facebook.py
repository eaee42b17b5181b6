"""The Facebook adapter through facebook-sdk, with the Graph API mocked by `responses`."""

from __future__ import annotations

import json
from urllib.parse import parse_qs

import pytest
import responses

from broadcaster.publishers import InDoubt, Reauthorize, Rejected, RetryLater
from broadcaster.publishers.facebook import FacebookPublisher
from tests.adapters import account, env, post

TOKEN = "EAAB-page-token-secret-value"
PAGE = "100000000000001"
BASE = "https://graph.facebook.com/v25.0"


@pytest.fixture
def publisher(tmp_path):
    acct = account("facebook", page_id=PAGE, page_token="FB_PAGE_TOKEN")
    return FacebookPublisher(acct, env(tmp_path, {"FB_PAGE_TOKEN": TOKEN}))


def graph_error(code: int, message: str = "boom", subcode: int | None = None) -> dict:
    error = {"message": message, "type": "OAuthException", "code": code, "fbtrace_id": "T"}
    if subcode:
        error["error_subcode"] = subcode
    return {"error": error}


@responses.activate
def test_text_post_shape_and_success(publisher):
    responses.post(
        f"{BASE}/{PAGE}/feed",
        json={"id": f"{PAGE}_42"},
        headers={"X-App-Usage": '{"call_count": 5, "total_time": 1, "total_cputime": 1}'},
    )
    ref = publisher.publish(post())
    assert ref.platform_id == f"{PAGE}_42"
    assert ref.url == f"https://www.facebook.com/{PAGE}_42"
    sent = responses.calls[0].request
    form = parse_qs(sent.body)
    assert form == {"message": ["[TEST] Ana wins Northbay"], "access_token": [TOKEN]}
    # the rate-limit headers are read through the session hook
    assert publisher.env.state.rate_limits["facebook-main"]["X-App-Usage"]["call_count"] == 5


@responses.activate
def test_photo_post_uses_the_photos_edge(publisher, tmp_path):
    card = tmp_path / "card.png"
    card.write_bytes(b"\x89PNG fake")
    responses.post(f"{BASE}/{PAGE}/photos", json={"id": "9", "post_id": f"{PAGE}_43"})
    ref = publisher.publish(post(media=(str(card),)))
    assert ref.platform_id == f"{PAGE}_43"
    body = responses.calls[0].request.body
    assert b'name="source"' in body
    assert b"\x89PNG fake" in body
    assert b'name="message"' in body


def transient(payload: dict) -> dict:
    payload["error"]["is_transient"] = True
    return payload


@pytest.mark.parametrize(
    ("status", "payload", "expected", "text"),
    [
        (400, graph_error(4, "(#4) Application request limit reached"), RetryLater, "rate limited"),
        (400, graph_error(17, "(#17) User request limit reached"), RetryLater, "rate limited"),
        (400, graph_error(32, "(#32) Page request limit reached"), RetryLater, "rate limited"),
        (400, graph_error(341, "Feed action request limit reached"), RetryLater, "rate limited"),
        (400, graph_error(80001, "Page throttled"), RetryLater, "rate limited"),
        (
            400,
            graph_error(190, "Session has expired", 463),
            Reauthorize,
            "run `broadcaster auth facebook --account facebook-main`",
        ),
        (403, graph_error(200, "Permissions error"), Rejected, "missing permission"),
        (400, graph_error(368, "blocked"), Rejected, "policy"),
        (400, graph_error(506, "Duplicate status message"), Rejected, "duplicate"),
        (400, graph_error(100, "Invalid parameter"), Rejected, "Invalid parameter"),
        # Any 5xx is temporary; after sending a post it may have been created: in doubt.
        (500, graph_error(2, "Service temporarily unavailable"), InDoubt, "temporary"),
        (500, graph_error(1, "An unknown error occurred"), InDoubt, "temporary"),
        (500, graph_error(987654, "never seen before"), InDoubt, "temporary"),
        (502, graph_error(1, "Bad gateway"), InDoubt, "temporary"),
        # 503 turns the request away: not acted on, simply later.
        (503, graph_error(2, "Service temporarily unavailable"), RetryLater, "temporary"),
        # Graph marks what is worth retrying, whatever the code.
        (400, transient(graph_error(987654, "try again")), RetryLater, "temporary"),
    ],
)
@responses.activate
def test_errors_map_to_the_taxonomy(publisher, status, payload, expected, text):
    responses.post(f"{BASE}/{PAGE}/feed", json=payload, status=status)
    with pytest.raises(expected) as info:
        publisher.publish(post())
    assert type(info.value) is expected
    assert text in str(info.value)
    assert TOKEN not in str(info.value)


@responses.activate
def test_a_throttle_without_a_wait_leaves_the_backoff_to_the_dispatcher(publisher):
    responses.post(f"{BASE}/{PAGE}/feed", json=graph_error(17, "limit"), status=400)
    with pytest.raises(RetryLater) as info:
        publisher.publish(post())
    assert info.value.delay is None


@pytest.mark.parametrize(
    ("headers", "delay"),
    [
        (
            {"X-App-Usage": json.dumps({"call_count": 100, "estimated_time_to_regain_access": 3})},
            180,
        ),
        (
            {"X-Page-Usage": json.dumps({"call_count": 100, "estimated_time_to_regain_access": 2})},
            120,
        ),
        ({"Retry-After": "42"}, 42),
        ({"Retry-After": "Sun, 28 Jul 2030 14:01:30 GMT"}, 90),  # the adapter clock says 14:00
    ],
)
@responses.activate
def test_throttle_delay_from_app_or_page_usage_or_retry_after(publisher, headers, delay):
    responses.post(f"{BASE}/{PAGE}/feed", json=graph_error(4, "limit"), status=400, headers=headers)
    with pytest.raises(RetryLater) as info:
        publisher.publish(post())
    assert info.value.delay == pytest.approx(delay)


@responses.activate
def test_a_duplicate_on_a_second_attempt_is_looked_up_not_failed(publisher):
    responses.post(f"{BASE}/{PAGE}/feed", json=graph_error(506, "Duplicate"), status=400)
    with pytest.raises(InDoubt, match="earlier attempt"):
        publisher.publish(post(attempt=2))


@responses.activate
def test_a_redirect_is_refused_not_followed(publisher):
    responses.post(
        f"{BASE}/{PAGE}/feed", status=307, headers={"Location": "http://evil.example/feed"}
    )
    with pytest.raises(RetryLater, match="redirect"):
        publisher.publish(post())
    assert len(responses.calls) == 1, "the POST (with its token) went nowhere else"


@responses.activate
def test_a_failed_look_up_is_retried_later_not_in_doubt(publisher):
    import requests

    responses.get(f"{BASE}/{PAGE}/posts", body=requests.ConnectionError("reset by peer"))
    with pytest.raises(RetryLater):
        publisher.find(post())


@responses.activate
def test_throttle_delay_comes_from_estimated_time_to_regain_access(publisher):
    usage = {
        "123": [
            {
                "type": "pages",
                "call_count": 100,
                "total_cputime": 10,
                "total_time": 10,
                "estimated_time_to_regain_access": 7,
            }
        ]
    }
    responses.post(
        f"{BASE}/{PAGE}/feed",
        json=graph_error(80001, "throttled"),
        status=400,
        headers={"X-Business-Use-Case-Usage": json.dumps(usage)},
    )
    with pytest.raises(RetryLater) as info:
        publisher.publish(post())
    assert info.value.delay == 7 * 60


@responses.activate
def test_html_error_page_and_timeout_are_in_doubt(publisher):
    import requests

    responses.post(
        f"{BASE}/{PAGE}/feed", body="<html>502</html>", status=502, content_type="text/html"
    )
    with pytest.raises(InDoubt):
        publisher.publish(post())
    responses.replace(
        responses.POST, f"{BASE}/{PAGE}/feed", body=requests.ReadTimeout("read timed out")
    )
    with pytest.raises(InDoubt) as info:
        publisher.publish(post())
    assert "access_token" not in str(info.value)
    assert TOKEN not in str(info.value)


@responses.activate
def test_find_matches_the_exact_text_among_recent_posts(publisher):
    responses.get(
        f"{BASE}/{PAGE}/posts",
        json={
            "data": [
                {
                    "id": f"{PAGE}_1",
                    "message": "something else",
                    "created_time": "2030-07-28T14:00:00+0000",
                },
                {
                    "id": f"{PAGE}_2",
                    "message": "[TEST] Ana  wins\nNorthbay",
                    "created_time": "2030-07-28T14:00:01+0000",
                },
            ]
        },
    )
    ref = publisher.find(post())
    assert ref is not None
    assert ref.platform_id == f"{PAGE}_2"
    query = parse_qs(responses.calls[0].request.url.split("?", 1)[1])
    assert query["fields"] == ["id,message,created_time"]
    assert int(query["since"][0]) <= int(post().created_at.timestamp())
    responses.replace(responses.GET, f"{BASE}/{PAGE}/posts", json={"data": []})
    assert publisher.find(post()) is None


@responses.activate
def test_delete_and_edit(publisher):
    from broadcaster.publishers import PublishedRef

    responses.delete(f"{BASE}/{PAGE}_2", json={"success": True})
    responses.post(f"{BASE}/{PAGE}_2", json={"success": True})
    ref = PublishedRef(f"{PAGE}_2", post().created_at)
    publisher.delete(ref)
    publisher.edit(ref, "corrected text")
    assert responses.calls[0].request.method == "DELETE"
    assert parse_qs(responses.calls[1].request.body)["message"] == ["corrected text"]


@responses.activate
def test_the_graph_version_comes_from_config_and_another_base_is_honoured(tmp_path):
    acct = account(
        "facebook",
        page_id=PAGE,
        page_token="T",
        graph_version="v26.0",
        api_base="http://127.0.0.1:9/emu",
    )
    pub = FacebookPublisher(acct, env(tmp_path, {"T": TOKEN}))
    responses.post(f"http://127.0.0.1:9/emu/v26.0/{PAGE}/feed", json={"id": "x_1"})
    assert pub.publish(post()).platform_id == "x_1"


def test_missing_secret_names_it_without_a_value(tmp_path):
    acct = account("facebook", page_id=PAGE, page_token="FB_PAGE_TOKEN")
    from broadcaster.core.secrets import SecretError

    with pytest.raises(SecretError, match="FB_PAGE_TOKEN is not set"):
        FacebookPublisher(acct, env(tmp_path, {}))
