"""YouTube Live and Facebook live-video lifecycles: against the documented request and response
bodies (`responses`, answering YouTube's calls in order), then end to
end against the platform emulator's live endpoints with the stream going to local listeners."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import responses

from broadcaster.core.config import AccountConfig, LiveDestinationConfig
from broadcaster.core.logs import redact
from broadcaster.core.paths import DEMO_SNAPSHOTS
from broadcaster.core.secrets import Secrets, TokenStore
from broadcaster.live.channel import Channel
from broadcaster.live.data import replay_steps
from broadcaster.live.destinations import Destination
from broadcaster.live.facebook_live import FacebookLive
from broadcaster.live.sender import TargetError
from broadcaster.live.youtube_live import BroadcastEnded, YouTubeLive
from broadcaster.publishers import publisher_class
from broadcaster.publishers.base import PublisherEnv
from broadcaster.rehearsal.emulator import Emulator, EmulatorServer, live_state
from broadcaster.runtime.configuration import load_config
from tests.adapters import account, env
from tests.conftest import wait_for
from tests.sequence import TOKEN, Sequence, ok
from tests.sequence import failure as yt_error
from tests.test_adapter_youtube import SECRETS
from tests.test_live_stream import SwitchFeed, listeners  # noqa: F401 - the fixture

CONFIG = load_config(None)
STREAM = {
    "kind": "youtube#liveStream",
    "id": "stream-1",
    "snippet": {"title": "broadcaster yt"},
    "cdn": {
        "ingestionType": "rtmp",
        "ingestionInfo": {
            "streamName": "abcd-efgh-ijkl-mnop",
            "ingestionAddress": "rtmp://a.rtmp.youtube.com/live2",
            "rtmpsIngestionAddress": "rtmps://a.rtmps.youtube.com/live2",
        },
    },
    "status": {"streamStatus": "ready", "healthStatus": {"status": "noData"}},
}
BROADCAST = {
    "kind": "youtube#liveBroadcast",
    "id": "bc-1",
    "status": {"lifeCycleStatus": "created", "privacyStatus": "public"},
    "contentDetails": {"enableAutoStart": True, "enableAutoStop": True},
}


@pytest.fixture
def google():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def youtube(mock, tmp_path, answers, **dest) -> tuple[YouTubeLive, Sequence]:
    http = Sequence(mock, answers)
    acct = account("youtube", client_id="YT_ID", client_secret="YT_SECRET")
    environment = env(tmp_path, SECRETS, {"youtube-main": {"refresh_token": "1//refresh"}})
    destination = LiveDestinationConfig(name="yt", kind="youtube", account=acct.name, **dest)
    return YouTubeLive(CONFIG, destination, acct, environment), http


def test_youtube_creates_a_reusable_stream_and_an_auto_starting_broadcast(tmp_path, google):
    bound = {**BROADCAST, "contentDetails": {"boundStreamId": "stream-1"}}
    live, http = youtube(
        google, tmp_path, [TOKEN, ok(STREAM), ok(BROADCAST), ok(bound)], privacy="unlisted"
    )
    url = live.start()
    assert url == "rtmps://a.rtmps.youtube.com/live2/abcd-efgh-ijkl-mnop"
    assert "abcd-efgh-ijkl-mnop" not in redact(f"connecting to {url}")  # the key is a secret
    _, (s_uri, s_method, s_body, _), (_b_uri, _, b_body, _), (bind_uri, bind_method, *_) = (
        http.request_sequence
    )
    assert (urlsplit(s_uri).path, s_method) == ("/youtube/v3/liveStreams", "POST")
    assert json.loads(s_body)["contentDetails"] == {"isReusable": True}
    assert json.loads(s_body)["cdn"]["ingestionType"] == "rtmp"
    broadcast = json.loads(b_body)
    assert broadcast["contentDetails"]["enableAutoStart"] is True
    assert broadcast["contentDetails"]["enableAutoStop"] is True
    assert broadcast["status"]["privacyStatus"] == "unlisted"
    assert broadcast["snippet"]["title"]
    assert urlsplit(bind_uri).path == "/youtube/v3/liveBroadcasts/bind"
    assert parse_qs(urlsplit(bind_uri).query)["streamId"] == ["stream-1"]
    assert bind_method == "POST"
    assert live.pub.quota_used()[1] == 150  # three 50-unit calls, in the adapter's own count
    assert live.start() == url  # a reconnection asks YouTube nothing more
    assert len(http.request_sequence) == 4


def test_youtube_watch_reads_health_and_notices_the_end(tmp_path, google):
    stream = {"items": [{"id": "stream-1", "status": {
        "streamStatus": "active",
        "healthStatus": {"status": "bad", "configurationIssues": [
            {"type": "bitrateLow", "severity": "error"}]},
    }}]}  # fmt: skip
    live_now = {"items": [{"id": "bc-1", "status": {"lifeCycleStatus": "live"}}]}
    ended = {"items": [{"id": "bc-1", "status": {"lifeCycleStatus": "complete"}}]}
    live, _http = youtube(
        google, tmp_path, [TOKEN, ok(stream), ok(live_now), ok(stream), ok(ended)]
    )
    live.stream_id, live.broadcast_id = "stream-1", "bc-1"
    assert live.watch() == "live; stream active, health bad (bitrateLow)"
    with pytest.raises(BroadcastEnded, match="youtube ended the broadcast"):
        live.watch()
    assert live.pub.quota_used()[1] == 4


def test_youtube_restart_binds_the_same_broadcast_and_ends_it(tmp_path, google):
    bound = {
        **BROADCAST,
        "status": {"lifeCycleStatus": "live"},
        "contentDetails": {"boundStreamId": "stream-1"},
    }
    complete = {**bound, "status": {"lifeCycleStatus": "complete"}}
    answers = [TOKEN, ok({"items": [STREAM]}), ok({"items": [bound]}), ok(complete)]
    live, http = youtube(google, tmp_path, answers)
    live.env.state.put_state("live:youtube:yt", {"stream_id": "stream-1", "broadcast_id": "bc-1"})
    live.start()
    live.end()
    methods = [(urlsplit(u).path, m) for u, m, *_ in http.request_sequence[1:]]
    assert methods == [
        ("/youtube/v3/liveStreams", "GET"),
        ("/youtube/v3/liveBroadcasts", "GET"),
        ("/youtube/v3/liveBroadcasts/transition", "POST"),
    ]
    query = parse_qs(urlsplit(http.request_sequence[-1][0]).query)
    assert query["broadcastStatus"] == ["complete"]
    assert live.env.state.get_state("live:youtube:yt") == {"stream_id": "stream-1"}


def test_youtube_live_not_enabled_fails_that_destination_for_good(tmp_path, google):
    live, _ = youtube(google, tmp_path, [TOKEN, yt_error(403, "liveStreamingNotEnabled")])
    with pytest.raises(TargetError) as caught:
        live.start()
    assert caught.value.permanent
    assert "liveStreamingNotEnabled" in str(caught.value)


GRAPH = "https://graph.facebook.com/v25.0"


def facebook(tmp_path) -> FacebookLive:
    acct = account("facebook", page_id="1234", page_token="FB_TOKEN")
    environment = env(tmp_path, {"FB_TOKEN": "page-token-value"})
    destination = LiveDestinationConfig(name="fb", kind="facebook", account=acct.name)
    return FacebookLive(CONFIG, destination, acct, environment)


@responses.activate
def test_facebook_live_video_from_creation_to_end(tmp_path):
    secure = "rtmps://live-api-s.facebook.com:443/rtmp/FB-777-stream-key-abc"
    responses.post(
        f"{GRAPH}/1234/live_videos",
        json={
            "id": "777",
            "stream_url": secure.replace("rtmps", "rtmp"),
            "secure_stream_url": secure,
        },
    )
    responses.get(f"{GRAPH}/777", json={"id": "777", "status": "LIVE"})
    responses.get(f"{GRAPH}/777", json={"id": "777", "status": "LIVE_STOPPED"})
    responses.post(f"{GRAPH}/777", json={"id": "777", "success": True})
    live = facebook(tmp_path)
    assert live.start() == secure
    assert "FB-777-stream-key-abc" not in redact(secure)
    created = parse_qs(responses.calls[0].request.body)
    assert created["status"] == ["LIVE_NOW"]
    assert created["access_token"] == ["page-token-value"]
    assert live.watch() == "LIVE"
    with pytest.raises(BroadcastEnded, match="LIVE_STOPPED"):
        live.watch()
    live.end()
    assert parse_qs(responses.calls[-1].request.body)["end_live_video"] == ["true"]
    assert live.env.state.get_state("live:facebook:fb") == {}


@responses.activate
def test_facebook_expired_page_token_fails_that_destination(tmp_path):
    responses.post(
        f"{GRAPH}/1234/live_videos",
        status=400,
        json={"error": {"message": "Session has expired", "type": "OAuthException", "code": 190}},
    )
    with pytest.raises(TargetError) as caught:
        facebook(tmp_path).start()
    assert caught.value.permanent
    assert "190" in str(caught.value)


def emulated(name: str, base: str, tmp_path: Path) -> tuple[AccountConfig, PublisherEnv]:
    setup = publisher_class(name).emulator_account(base, tmp_path)
    assert setup is not None
    acct = AccountConfig.model_validate(
        {"name": name, "platform": name, "dry_run": False, **setup.settings}
    )
    tokens = TokenStore(tmp_path / f"{name}-tokens.json")
    if setup.tokens:
        tokens.put(name, setup.tokens)
    return acct, env_with(tmp_path, setup.secrets, tokens)


def env_with(tmp_path: Path, secrets: dict[str, str], tokens: TokenStore) -> PublisherEnv:
    from broadcaster.core.clock import WallClock
    from broadcaster.publishers.base import MemoryState

    return PublisherEnv(
        clock=WallClock(),
        posts_path=tmp_path / "posts.jsonl",
        secrets=Secrets(environ=secrets),
        tokens=tokens,
        state=MemoryState(),
    )


def test_end_to_end_against_the_emulator_one_platform_ends_the_other_goes_on(
    tmp_path,
    listeners,  # noqa: F811
):
    yt_ingest, fb_ingest = listeners("youtube"), listeners("facebook")
    steps = replay_steps(CONFIG, sorted(DEMO_SNAPSHOTS.glob("*.json")))
    with EmulatorServer(emulator=Emulator()) as server:
        state = live_state(server.emulator)
        state.ingest = yt_ingest.url.rsplit("/", 1)[0]
        state.facebook_ingest = fb_ingest.url.rsplit("/", 1)[0]
        yt_account, yt_env = emulated("youtube", server.url, tmp_path)
        fb_account, fb_env = emulated("facebook", server.url, tmp_path)
        yt = YouTubeLive(
            CONFIG, LiveDestinationConfig(name="yt", kind="youtube", account="youtube"),
            yt_account, yt_env,
        )  # fmt: skip
        fb = FacebookLive(
            CONFIG, LiveDestinationConfig(name="fb", kind="facebook", account="facebook"),
            fb_account, fb_env,
        )  # fmt: skip
        config = CONFIG.with_overrides(
            live=CONFIG.live.model_copy(update={"width": 320, "height": 180, "fps": 15})
        )
        channel = Channel(
            config,
            feed=SwitchFeed(steps[9].data),
            destinations=[
                Destination("yt", "youtube", "landscape", yt, watch_interval=0.3),
                Destination("fb", "facebook", "landscape", fb, watch_interval=0.3),
            ],
        )
        thread = threading.Thread(target=channel.run, daemon=True)
        thread.start()
        try:
            wait_for(lambda: len(yt_ingest.lines("video")) > 10, 60)
            wait_for(lambda: len(fb_ingest.lines("video")) > 10, 60)
            wait_for(lambda: channel.status()["destinations"]["yt"]["platform_health"], 20)
            status = channel.status()["destinations"]
            assert status["yt"]["platform_health"] == "live; stream active, health good"
            assert status["fb"]["platform_health"].startswith("LIVE")
            assert [b["status"]["lifeCycleStatus"] for b in state.broadcasts.values()] == ["live"]
            state.end_all("youtube")  # YouTube stops the broadcast on its side
            wait_for(lambda: channel.status()["destinations"]["yt"]["state"] == "failed", 20)
            ended_at = time.time()
            wait_for(lambda: fb_ingest.lines("video")[-1][0] > ended_at + 1.5, 20)
            status = channel.status()["destinations"]
            assert "youtube ended the broadcast (complete)" in status["yt"]["reason"]
            assert status["fb"]["state"] == "live"
        finally:
            channel.stop.set()
            thread.join(30)
        assert [v["status"] for v in state.videos.values()] == ["LIVE_STOPPED"]
        assert any(c.startswith("POST liveStreams") for c in state.calls)
        assert "POST liveBroadcasts/bind" in state.calls
        assert server.emulator.quota_used >= 150
