"""Limits counted the platform's way, overflow policies, and threads posted in order."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from twitter_text import parse_tweet

from broadcaster.core.clock import FeedClock
from broadcaster.delivery.dispatcher import Dispatcher
from broadcaster.domain.limits import (
    _MAYBE_EMOJI,
    ELLIPSIS,
    Overflow,
    OverLimit,
    TextLimit,
    apply_policy,
    count_chars,
    count_utf16,
    count_x,
    shorten,
    split_thread,
)
from broadcaster.domain.posts import PostState
from broadcaster.ingest.sources import make_fetched
from broadcaster.outbox.store import Store
from broadcaster.publishers import PublisherEnv, capabilities_for, text_limits
from broadcaster.publishers.dryrun import read_posts
from broadcaster.runtime.configuration import load_config
from broadcaster.runtime.cycle import Pipeline
from tests.conftest import write_config

KHMER = "ជាប់ឆ្នោត"  # 9 code points


def test_the_emoji_prefilter_matches_exactly_what_can_start_an_emoji():
    # © ®, ‼ ⁉ and every code point from U+2070 up, and nothing else: any character it missed
    # would be counted without twitter-text, wrongly if it were an emoji.
    everything = "".join(map(chr, range(sys.maxunicode + 1)))
    found = {m.start() for m in _MAYBE_EMOJI.finditer(everything)}
    assert found == {0xA9, 0xAE, 0x203C, 0x2049, *range(0x2070, sys.maxunicode + 1)}


def test_x_counts_khmer_double_urls_as_23_and_normalises():
    assert count_x("a" * 10) == 10
    assert count_x(KHMER) == 2 * len(KHMER)
    assert count_x("results https://example.org/a/very/long/path/to/results.html") == 8 + 23
    assert count_x("e\u0301") == 1  # NFC: é is one character
    assert count_x("“quotes”") == 8  # U+2018-U+201F weigh 1


def test_x_weight_without_twitter_text_equals_twitter_texts() -> None:
    """The direct count (text with no possible URL or emoji) weighs exactly as twitter-text,
    at the edges of every range X weighs 1 and in the scripts the feeds use."""
    import random

    from twitter_text import parse_tweet

    edges = [0x10FF, 0x1100, 0x1FFF, 0x2000, 0x200D, 0x200E, 0x200F, 0x2010, 0x201F, 0x2020]
    edges += [0x2031, 0x2032, 0x2037, 0x2038, 0x2069, 0x0E01, 0x1780, 0x0627, 0x00E9, 0x0915]
    rng = random.Random(13)
    samples = ["", "plain ascii", KHMER, "Dato' Sri Haji Mohd. Ali bin Abu", "Ngô Thị Hồng"]
    for _ in range(300):
        samples.append("".join(chr(rng.choice(edges)) if rng.random() < 0.5 else rng.choice("ab ,")
                               for _ in range(rng.randint(1, 40))))  # fmt: skip
    for text in samples:
        assert count_x(text) == parse_tweet(text).weightedLength, repr(text)


def test_tiktok_counts_utf16_units_and_others_count_characters():
    assert count_utf16("abc") == 3
    assert count_utf16("👍") == 2  # outside the BMP: a surrogate pair
    assert count_utf16(KHMER) == len(KHMER)
    assert count_chars("👍") == 1
    assert count_chars("e\u0301") == 1


def test_platform_defaults_and_config_overrides():
    assert text_limits("x", {}) == (TextLimit(280, "x-weighted"), None)
    assert text_limits("youtube", {})[0] == TextLimit(200, "chars")
    assert text_limits("facebook", {})[0] == TextLimit(63206, "chars")
    text, title = text_limits("tiktok", {})
    assert text == TextLimit(4000, "utf16")
    assert title == TextLimit(90, "utf16")
    assert text_limits("x", {"x": 25000})[0] == TextLimit(25000, "x-weighted")
    assert text_limits("tiktok", {"tiktok_title": 60})[1] == TextLimit(60, "utf16")
    assert capabilities_for("x").threads
    assert not capabilities_for("youtube").threads


def test_shorten_cuts_at_a_word_boundary_with_an_ellipsis():
    limit = TextLimit(20, "chars")
    out = shorten("Harbour Party wins Northbay with 52.3%", limit)
    assert out == "Harbour Party wins" + ELLIPSIS
    assert limit.fits(out)
    # Khmer phrases end at spaces or "។"; X counts each Khmer character double.
    khmer = f"{KHMER} {KHMER}។ {KHMER} {KHMER}"
    x = TextLimit(40, "x-weighted")
    cut = shorten(khmer, x)
    assert x.fits(cut)
    assert cut.endswith(ELLIPSIS)
    assert cut.startswith(KHMER)


def test_thread_parts_are_numbered_and_each_fits():
    limit = TextLimit(60, "chars")
    text = "\n".join(f"{i}. Candidate number {i}: 1,234 votes" for i in range(1, 8))
    parts = split_thread(text, limit)
    assert len(parts) > 1
    assert all(limit.fits(p) for p in parts)
    assert [p.rsplit(" ", 1)[1] for p in parts] == [
        f"{i}/{len(parts)}" for i in range(1, len(parts) + 1)
    ]
    joined = " ".join(p.rsplit(" ", 1)[0] for p in parts)
    assert all(f"Candidate number {i}:" in joined for i in range(1, 8))


def test_policies():
    limit = TextLimit(30, "chars")
    long_text = "word " * 20
    with pytest.raises(OverLimit, match=r"over the platform limit: 100 of 30 \(characters\)"):
        apply_policy(long_text, limit, Overflow.FAIL, threads=True)
    assert len(apply_policy(long_text, limit, Overflow.SHORTEN, threads=False)) == 1
    assert len(apply_policy(long_text, limit, Overflow.THREAD, threads=True)) > 1
    with pytest.raises(OverLimit, match="cannot be a thread"):
        apply_policy(long_text, limit, Overflow.THREAD, threads=False)
    assert apply_policy("short", limit, Overflow.FAIL, threads=False) == ["short"]


LONG_X = (
    "{% for s in contest.selections %}{{ s.name }} has {{ s.votes|number }} votes here.\n"
    "{% endfor %}{% for s in contest.selections %}{{ s.name }} keeps {{ s.share|pct }} of the"
    " vote.\n{% endfor %}"
)


@pytest.mark.parametrize("policy", ["fail", "shorten", "thread"])
def test_overflow_policy_in_the_pipeline(tmp_path: Path, demo_files, policy: str):
    tpl = tmp_path / "tpl" / "en" / "x"
    tpl.mkdir(parents=True)
    (tpl / "progress.j2").write_text(LONG_X)
    extra = f'[templates]\ndir = "tpl"\n[templates.overflow]\n"x/progress" = "{policy}"\n'
    accounts = (
        '[[accounts]]\nname = "x-main"\nplatform = "x"\nevents = ["progress"]\n'
        "quota = [{posts = 10000, seconds = 86400}]\n"
    )
    cfg = load_config(write_config(tmp_path / "c.toml", source="f", extra=extra, accounts=accounts))
    store = Store(cfg.database_url)
    clock = FeedClock()
    pipeline = Pipeline(cfg, store, clock=clock, dry_run=True)
    for p in demo_files[:4]:
        assert pipeline.ingest(make_fetched(p.read_bytes(), p.name), "t").outcome == "accepted"
    env = PublisherEnv(clock=clock, posts_path=tmp_path / "posts.jsonl")
    Dispatcher(cfg, store, clock=clock, env=env, dry_run=True).drain()
    records = read_posts(tmp_path / "posts.jsonl")
    held = store.posts_in_state(PostState.HELD)
    limit = TextLimit(280, "x-weighted")
    if policy == "fail":
        assert not records
        assert held
        assert all("over the platform limit" in r.hold_reason for r in held)
        assert all("progress.j2" in r.hold_reason for r in held)
    elif policy == "shorten":
        assert records
        assert not held
        assert all(limit.fits(r["text"]) for r in records)
        assert any(r["text"].endswith(ELLIPSIS) for r in records)
    else:
        assert records
        assert not held
        assert all(limit.fits(r["text"]) for r in records)
        # Parts go out in order, each replying to the previous part's platform id.
        by_key = {r["idempotency_key"]: r for r in records}
        replies = [r for r in records if r["reply_to"]]
        assert replies
        for r in replies:
            base, part = r["idempotency_key"].rsplit("#", 1)
            previous = base if part == "2" else f"{base}#{int(part) - 1}"
            assert r["reply_to"] == f"dryrun:{by_key[previous]['idempotency_key']}"
            assert records.index(by_key[previous]) < records.index(r)
    store.close()


POST_ALPHABET = st.sampled_from(
    list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
    + list(" .,:;!?%()/-_#@&'\"\n\r\t")
    + list("ក​ខគឃងចឆជញដណតថទធនបផពមយរលវសហឡអាិីឹឺុូួើឿៀេែៃោៅំះ្៉៊់៌៍៎៏័។៕០១២៣៤៥៦៧៨៩")
    + list("éàüñçÅ…–—“”‘’•€£¥©®‼⁉™→★✓❤")
    + ["😷", "🇲🇾", "👍🏽", "1️⃣", "\u200d", "\ufe0f", "ℹ", "．", "。", "e\u0301"]
    + ["example.com", "https://x.org/a", "www.ec.gov.kh", "t.co", "a.b", "12.50"]
)


@settings(max_examples=400, deadline=None)
@given(st.lists(POST_ALPHABET, max_size=60).map("".join))
def test_x_count_matches_twitter_text_on_any_text(text: str):
    assert count_x(text) == parse_tweet(text).weightedLength
