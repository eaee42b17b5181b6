"""Short result videos (vertical MP4 from the channel's painter) and the video posts that carry
them: TikTok's video/init with a chunked FILE_UPLOAD, YouTube's resumable videos.insert."""

from __future__ import annotations

import json

import av
import pytest
import responses

from broadcaster.core.paths import DEMO_SNAPSHOTS
from broadcaster.live.data import replay_steps
from broadcaster.live.shorts import render_short
from broadcaster.publishers.tiktok import MIN_CHUNK, video_chunks
from broadcaster.runtime.configuration import load_config
from tests.adapters import post
from tests.sequence import TOKEN, Sequence
from tests.test_adapter_tiktok import API, INFO, make, ok
from tests.test_adapter_youtube import make as make_youtube

CONFIG = load_config(None)


@pytest.fixture(scope="module")
def final():
    return replay_steps(CONFIG, sorted(DEMO_SNAPSHOTS.glob("*.json")))[-1].data


def test_a_short_of_a_call_is_a_vertical_mp4_with_sound(tmp_path, final):
    contest = final.calls[0].contest_id
    path = render_short(
        CONFIG, final, tmp_path / "call.mp4", contest_id=contest, seconds=10, fps=10
    )
    with av.open(str(path)) as video:
        stream = video.streams.video[0]
        assert (stream.codec_context.width, stream.codec_context.height) == (1080, 1920)
        assert 9.9 <= video.duration / 1e6 <= 10.2
        assert [s.codec_context.name for s in video.streams.audio] == ["aac"]
        frame = next(video.decode(video=0)).to_image()
    tally = render_short(CONFIG, final, tmp_path / "tally.mp4", seconds=10, fps=5)
    with av.open(str(tally)) as video:
        other = next(video.decode(video=0)).to_image()
    middle = (40, 400, 1040, 1300)  # the contest's results, or the tally's bars
    assert frame.crop(middle).tobytes() != other.crop(middle).tobytes()
    assert not list(tmp_path.glob("*.part*"))


def test_a_short_refuses_a_wrong_length_or_an_unknown_contest(tmp_path, final):
    with pytest.raises(ValueError, match="10 to 20 seconds"):
        render_short(CONFIG, final, tmp_path / "x.mp4", seconds=5)
    with pytest.raises(ValueError, match="no contest"):
        render_short(CONFIG, final, tmp_path / "x.mp4", contest_id="nope")


def test_chunking_follows_tiktok_rules():
    assert video_chunks(1_000_000) == (1_000_000, 1)  # under 5 MB: whole
    assert video_chunks(21 * 1024 * 1024) == (10 * 1024 * 1024, 2)  # the rest rides the last
    chunk, count = video_chunks(200 * 1024 * 1024)
    assert chunk >= MIN_CHUNK
    assert count == 20


@responses.activate
def test_tiktok_video_post_uploads_in_chunks_then_follows_the_publish_id(tmp_path):
    video = tmp_path / "short.mp4"
    size = 21 * 1024 * 1024
    video.write_bytes(b"\0" * size)
    upload = "https://open-upload.tiktokapis.com/video/?upload_id=1&upload_token=t"
    responses.post(f"{API}/v2/post/publish/creator_info/query/", json=INFO)
    responses.post(
        f"{API}/v2/post/publish/video/init/",
        json=ok({"publish_id": "v_pub_file~v2.1", "upload_url": upload}),
    )
    responses.put(upload, status=206)
    responses.put(upload, status=201)
    responses.post(
        f"{API}/v2/post/publish/status/fetch/",
        json=ok({"status": "PUBLISH_COMPLETE", "publicaly_available_post_id": [7001]}),
    )
    publisher = make(tmp_path)
    ref = publisher.publish_video(post("[TEST] Seat tally"), str(video))
    assert ref.platform_id == "7001"
    init = json.loads(responses.calls[1].request.body)
    assert init["source_info"] == {
        "source": "FILE_UPLOAD",
        "video_size": size,
        "chunk_size": 10 * 1024 * 1024,
        "total_chunk_count": 2,
    }
    assert init["post_info"]["title"] == "[TEST] Seat tally"
    assert init["post_info"]["privacy_level"] == "PUBLIC_TO_EVERYONE"
    puts = [c.request for c in responses.calls if c.request.method == "PUT"]
    assert [p.headers["Content-Range"] for p in puts] == [
        f"bytes 0-{10 * 1024 * 1024 - 1}/{size}",
        f"bytes {10 * 1024 * 1024}-{size - 1}/{size}",
    ]
    assert sum(len(p.body) for p in puts) == size
    assert publisher.env.checkpoint.values == {7: "v_pub_file~v2.1"}


@responses.activate
def test_tiktok_refused_chunk_is_retried_later_without_a_checkpoint(tmp_path):
    video = tmp_path / "short.mp4"
    video.write_bytes(b"\0" * 1000)
    upload = "https://open-upload.tiktokapis.com/video/?upload_id=2"
    responses.post(f"{API}/v2/post/publish/creator_info/query/", json=INFO)
    responses.post(
        f"{API}/v2/post/publish/video/init/",
        json=ok({"publish_id": "v_pub_file~v2.2", "upload_url": upload}),
    )
    responses.put(upload, status=400)
    publisher = make(tmp_path)
    from broadcaster.publishers import RetryLater

    with pytest.raises(RetryLater, match="chunk 1 of 1"):
        publisher.publish_video(post(), str(video))
    assert publisher.env.checkpoint.values == {}


@responses.activate
def test_tiktok_last_chunk_failing_after_the_whole_file_is_in_doubt_and_found_by_publish_id(
    tmp_path,
):
    video = tmp_path / "short.mp4"
    video.write_bytes(b"\0" * 1000)
    upload = "https://open-upload.tiktokapis.com/video/?upload_id=3"
    responses.post(f"{API}/v2/post/publish/creator_info/query/", json=INFO)
    responses.post(
        f"{API}/v2/post/publish/video/init/",
        json=ok({"publish_id": "v_pub_file~v2.3", "upload_url": upload}),
    )
    responses.put(upload, status=500)
    responses.post(
        f"{API}/v2/post/publish/status/fetch/",
        json=ok({"status": "PUBLISH_COMPLETE", "publicaly_available_post_id": [7003]}),
    )
    publisher = make(tmp_path)
    from broadcaster.publishers import InDoubt

    sent = post()
    with pytest.raises(InDoubt, match="after the whole file"):
        publisher.publish_video(sent, str(video))
    assert publisher.env.checkpoint.values == {7: "v_pub_file~v2.3"}
    # The dispatcher looks the post up with the Post it had before the checkpoint existed.
    assert sent.checkpoint is None
    assert publisher.find(sent).platform_id == "7003"


def test_a_video_between_5_mb_and_one_chunk_goes_whole():
    # floor(8 MB / 10 MB) would be 0 chunks, which TikTok refuses.
    assert video_chunks(8 * 1024 * 1024) == (8 * 1024 * 1024, 1)


def test_youtube_short_goes_through_the_existing_resumable_upload(tmp_path, final):
    path = render_short(CONFIG, final, tmp_path / "short.mp4", seconds=10, fps=5)
    started = ({"status": "200", "location": "https://www.googleapis.com/upload/x?upload_id=u"}, "")
    done = ({"status": "200"}, json.dumps({"id": "vid-9"}))
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        http = Sequence(mock, [TOKEN, started, done])
        publisher = make_youtube(tmp_path)
        ref = publisher.upload_short(str(path), post("[TEST] Seat tally"))
    assert ref.url == "https://www.youtube.com/shorts/vid-9"
    assert "uploadType=resumable" in http.request_sequence[1][0]
    assert publisher.quota_used()[1] == 1600


def test_a_looped_sound_file_keeps_playing_and_a_missing_one_is_named(tmp_path):
    from fractions import Fraction

    from broadcaster.live.encoder import AudioSource, Encoder

    sound = tmp_path / "jingle.wav"
    with av.open(str(sound), "w") as out:
        stream = out.add_stream("pcm_s16le", rate=22050)
        stream.layout = "mono"
        for i in range(3):  # 0.3 s of a rising tone
            frame = av.AudioFrame(format="s16", layout="mono", samples=2205)
            frame.sample_rate = 22050
            frame.planes[0].update(bytes([i * 40 % 256, 1]) * 2205)
            frame.pts, frame.time_base = i * 2205, Fraction(1, 22050)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    source = AudioSource(sound)
    frames = [source.next_frame() for _ in range(100)]  # about 2 s from a 0.3 s file
    assert all(any(bytes(f.planes[0])) for f in frames), "the file plays again, never silence"
    encoder = Encoder((160, 90), 10, audio=AudioSource(sound))
    audio = [c for i in range(20) for c in encoder.encode(None, i) if not c.video]
    encoder.close()
    assert sum(1 for c in audio if c.dts >= 0) >= 40
    with pytest.raises(ValueError, match=r"missing\.wav"):
        AudioSource(tmp_path / "missing.wav")
