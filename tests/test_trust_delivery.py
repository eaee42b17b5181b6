"""Nothing rehearsed, leaked or wrong reaches a real account: the delivery half of the trust
issue. Each test is named after the path it closes and fails on the code before the fix.

A real account here is a Facebook Page on the local platform emulator, reached through the real
adapter over HTTP: whatever the emulator records would have been on the Page."""

from __future__ import annotations

import json
import os
import shutil
import stat
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from broadcaster.cli import main
from broadcaster.core.clock import FeedClock
from broadcaster.core.config import Config, ConfigError
from broadcaster.core.secrets import Secrets
from broadcaster.delivery.cards import CardMaker
from broadcaster.delivery.dispatcher import Dispatcher, publisher_env
from broadcaster.domain.posts import HoldKind, PostState
from broadcaster.ingest.sources import make_fetched
from broadcaster.outbox import operations as operate
from broadcaster.outbox.audit import entries
from broadcaster.outbox.store import DatabaseMode, Store
from broadcaster.publishers import PublisherEnv
from broadcaster.rehearsal.emulator import Emulator, EmulatorServer
from broadcaster.runtime.configuration import load_config
from broadcaster.runtime.cycle import Pipeline
from broadcaster.runtime.daemon import Daemon
from tests.conftest import read_jsonl, write_config

HEADER = (
    "election,status,generated_at,is_test,contest_id,contest_name,contest_type,seats,"
    "selection_id,selection_name,party_id,votes,winner,seats_won,units_reported,units_total"
)
PAGE_TOKEN = "emu-page-token-0123456789"


def snapshot(
    *, is_test: bool, at: str = "21:00", called: bool = True, name: str = "Seat One"
) -> bytes:
    """One fictional contest (a test night unless `is_test` is false, for the real-night cases)."""
    winner = "true" if called else "false"
    rows = [
        ["C1", name, "candidate", "1", "C1-A", "Ana Fictional", "P1", "600", winner, "", "10"],
        ["C1", name, "candidate", "1", "C1-B", "Ben Fictional", "P2", "300", "false", "", "10"],
    ]
    head = ["Trust Test Election", "partial", f"2030-07-28T{at}:00+07:00", str(is_test).lower()]
    lines = [HEADER]
    for i, r in enumerate(rows):
        lines.append(",".join([*(head if i == 0 else ["", "", "", ""]), *r, "10"]))
    return ("\n".join(lines) + "\n").encode()


@pytest.fixture
def platform() -> Iterator[EmulatorServer]:
    with EmulatorServer(emulator=Emulator()) as server:
        yield server


def page_account(base: str, *, allow_test: bool = False, dry_run: bool = False) -> str:
    return f"""
[[accounts]]
name = "page"
platform = "facebook"
dry_run = {str(dry_run).lower()}
allow_test_posts = {str(allow_test).lower()}
events = ["called"]
page_id = "100000000000001"
page_token = "FB_PAGE_TOKEN"
api_base = "{base}"
"""


def night_config(tmp_path: Path, base: str, **account: bool) -> Config:
    return load_config(
        write_config(tmp_path / "c.toml", source="feed.csv", accounts=page_account(base, **account))
    )


def environment(config: Config, store: Store, clock: FeedClock) -> PublisherEnv:
    env = publisher_env(config, store, clock, config.path("posts.jsonl") or Path("posts.jsonl"))
    return replace(env, secrets=Secrets(environ={"FB_PAGE_TOKEN": PAGE_TOKEN}))


def ingest(pipeline: Pipeline, clock: FeedClock, body: bytes, name: str) -> None:
    fetched = make_fetched(body, name)
    read = pipeline.read(fetched, "test")
    assert isinstance(read, tuple), read
    clock.advance_to(read[0].generated_at)
    pipeline.apply(fetched, "test", read[0])


def received(server: EmulatorServer) -> list[dict]:
    return [p for p in server.emulator.snapshot()["posts"] if not p["deleted"]]


# -- path 1: rehearsal and dry-run rows ---------------------------------------------------------


def test_path1_rows_of_a_dry_run_never_reach_the_platform(tmp_path: Path, platform):
    """`run --dry-run` on a test feed leaves pending rows; a live dispatcher on the same outbox
    (after a non-test snapshot) sent them, [TEST] prefix included, through the real adapter."""
    config = night_config(tmp_path, platform.url)
    store = Store(config.database_url)
    clock = FeedClock()
    rehearsal = Pipeline(config, store, clock=clock, dry_run=True)
    ingest(rehearsal, clock, snapshot(is_test=True, called=True), "1.csv")
    dry_rows = store.posts_in_state(PostState.PENDING)
    assert dry_rows, "the dry run planned a post"
    assert all(r.dry_run and r.test_data for r in dry_rows)

    # The night starts on the same outbox (bypassing the start-up refusal tested below): a new
    # snapshot, real accounts, the real adapter.
    live = Pipeline(config, store, clock=clock, dry_run=False)
    ingest(live, clock, snapshot(is_test=False, at="21:30", name="Seat One Renamed"), "2.csv")
    dispatcher = Dispatcher(
        config, store, clock=clock, env=environment(config, store, clock), dry_run=False
    )
    dispatcher.drain()
    texts = [p["text"] for p in received(platform)]
    assert not any("[TEST]" in t for t in texts), texts
    for row in dry_rows:  # still there, never sent, never claimed
        assert store.post_row(row.id).state == PostState.PENDING
    dispatcher.close()
    store.close()


def test_path1_a_rehearsal_database_is_refused_for_the_night_and_back(tmp_path: Path):
    config = load_config(write_config(tmp_path / "c.toml", source="feed.csv"))
    (tmp_path / "feed.csv").write_bytes(snapshot(is_test=True))
    Daemon(config, dry_run=True).store.close()  # a rehearsal claims the database
    with pytest.raises(ConfigError, match="belongs to a rehearsal") as refused:
        Daemon(config, dry_run=False)
    assert "broadcaster golive" in str(refused.value)
    assert "new, empty database" in str(refused.value)

    night = config.with_overrides(
        database=config.database.model_copy(update={"url": "sqlite:///n.db"})
    )
    Daemon(night, dry_run=False).store.close()
    with pytest.raises(ConfigError, match="belongs to the live night"):
        Daemon(night, dry_run=True)
    store = Store(night.database_url)
    assert store.mode() == DatabaseMode.LIVE
    store.close()


def test_path1_test_data_is_refused_at_send_time_in_every_mode(tmp_path: Path, platform):
    """The guard ran only when posts were planned: an account that allowed test posts then, and
    no longer does, or a test post whose [TEST] marker was edited away, went out."""
    allowing = night_config(tmp_path, platform.url, allow_test=True)
    store = Store(allowing.database_url)
    clock = FeedClock()
    ingest(
        Pipeline(allowing, store, clock=clock, dry_run=False), clock, snapshot(is_test=True), "1"
    )
    (row,) = store.posts_in_state(PostState.PENDING)
    assert row.test_data
    assert not row.dry_run
    assert row.text.startswith("[TEST]")

    # The operator turns test posts off before the night.
    strict = night_config(tmp_path, platform.url, allow_test=False)
    Dispatcher(
        strict, store, clock=clock, env=environment(strict, store, clock), dry_run=False
    ).drain()
    assert received(platform) == []
    refused = store.post_row(row.id)
    assert refused.state == PostState.CANCELLED
    assert refused.hold_reason.startswith("test data: never posted to a real account")

    # Allowed, but the marker is gone (an edit, a template that dropped it): held, not sent.
    with store.engine.begin() as conn:
        conn.exec_driver_sql(
            "UPDATE posts SET state='pending', text='Seat One: Ana Fictional wins' WHERE id=?",
            (row.id,),
        )
    Dispatcher(
        allowing, store, clock=clock, env=environment(allowing, store, clock), dry_run=False
    ).drain()
    assert received(platform) == []
    held = store.post_row(row.id)
    assert (held.state, held.hold_kind) == (PostState.HELD, HoldKind.TEST_DATA)
    store.close()


# -- path 2: cards named by what they show --------------------------------------------------------


def _card(tmp_path: Path, folder: Path, *, is_test: bool, accounts: str) -> list[Path]:
    """Plan one called contest and draw the card of each of its posts."""
    config = load_config(
        write_config(tmp_path / f"{is_test}.toml", source="f", accounts=accounts, cards=True)
    )
    store = Store(f"sqlite:///{tmp_path / f'{is_test}.db'}")
    clock = FeedClock()
    ingest(
        Pipeline(config, store, clock=clock, dry_run=True), clock, snapshot(is_test=is_test), "1"
    )
    maker = CardMaker(config, store, folder)
    accounts_by_name = {a.name: a for a in config.accounts}
    paths = [
        maker.card_for(row, accounts_by_name[row.account])
        for row in store.posts_in_state(PostState.PENDING)
        if row.event_kind == "called"
    ]
    store.close()
    return paths


def test_path2_a_rehearsal_card_is_never_reused_for_a_real_post(tmp_path: Path):
    two_pages = "".join(
        f'\n[[accounts]]\nname = "{n}"\nplatform = "facebook"\ndry_run = true\n'
        for n in ("page-en", "page-en-2")
    )
    folder = tmp_path / "cards"
    rehearsed = _card(tmp_path, folder, is_test=True, accounts=two_pages)
    real = _card(tmp_path, folder, is_test=False, accounts=two_pages)
    # One picture, one file: two accounts showing the same card share it...
    assert len(set(rehearsed)) == 1
    assert len(set(real)) == 1
    # ...but the night's card for the same event is not the rehearsal's.
    assert rehearsed[0] != real[0]
    banner = (2, 154)  # inside the red TEST DATA band of a 1080 px card
    with Image.open(rehearsed[0]) as img:
        assert img.convert("RGB").getpixel(banner) == (0xC6, 0x28, 0x28)
    with Image.open(real[0]) as img:
        assert img.convert("RGB").getpixel(banner) != (0xC6, 0x28, 0x28)


# -- path 3: going live -------------------------------------------------------------------------


def test_path3_golive_prints_a_checklist_and_fails_on_a_rehearsal_database(
    tmp_path: Path, platform
):
    (tmp_path / "feed.csv").write_bytes(snapshot(is_test=False))
    cfg = write_config(tmp_path / "c.toml", source="feed.csv", accounts=page_account(platform.url))
    runner = CliRunner()
    env = {"FB_PAGE_TOKEN": PAGE_TOKEN, "COLUMNS": "200"}
    ready = runner.invoke(main, ["golive", "--config", str(cfg)], env=env)
    assert ready.exit_code == 0, ready.output
    for line in ("PASS accounts", "PASS database: empty", "PASS templates", "PASS feed"):
        assert line in ready.output
    assert "PASS account page (facebook)" in ready.output
    assert "ready to go live" in ready.output

    # The folder was used to rehearse: its database would silently suppress the night's posts.
    store = Store(load_config(cfg).database_url)
    store.claim_mode(DatabaseMode.REHEARSAL)
    store.close()
    (tmp_path / "feed.csv").write_bytes(snapshot(is_test=True))
    refused = runner.invoke(main, ["golive", "--config", str(cfg)], env=env)
    assert refused.exit_code == 1
    assert "FAIL database: belongs to a rehearsal" in refused.output
    assert "FAIL feed: the feed says it is test data" in refused.output
    assert "not ready to go live" in refused.output


def test_path3_golive_fails_on_a_dry_run_account_and_an_unreachable_page(tmp_path: Path):
    (tmp_path / "feed.csv").write_bytes(snapshot(is_test=False))
    accounts = page_account("http://127.0.0.1:9") + (
        '\n[[accounts]]\nname = "rehearsal-x"\nplatform = "x"\ndry_run = true\n'
    )
    cfg = write_config(tmp_path / "c.toml", source="feed.csv", accounts=accounts)
    result = CliRunner().invoke(
        main, ["golive", "--config", str(cfg)], env={"FB_PAGE_TOKEN": PAGE_TOKEN, "COLUMNS": "200"}
    )
    assert result.exit_code == 1
    assert "FAIL accounts: rehearsal-x still dry run" in result.output
    assert "FAIL account page (facebook)" in result.output


# -- path 4: a post carrying a secret --------------------------------------------------------------


def test_path4_a_post_holding_a_secret_is_never_sent_nor_kept(tmp_path: Path, platform):
    """An operator's template (or a feed value) that writes out a token: the post is held, the
    token is masked in the database, and the reason does not repeat it."""
    folder = tmp_path / "tpl" / "en" / "facebook"
    folder.mkdir(parents=True)
    (folder / "called.j2").write_text("{{ contest.name }}: called. ref " + PAGE_TOKEN + "\n")
    accounts = page_account(platform.url)
    config = load_config(
        write_config(
            tmp_path / "c.toml", source="f", accounts=accounts, extra='[templates]\ndir = "tpl"\n'
        )
    )
    store = Store(config.database_url)
    clock = FeedClock()
    env = environment(config, store, clock)
    env.secrets.get("FB_PAGE_TOKEN")  # registered, as the daemon does for every secret at start
    ingest(Pipeline(config, store, clock=clock, dry_run=False), clock, snapshot(is_test=False), "1")
    Dispatcher(config, store, clock=clock, env=env, dry_run=False).drain()
    assert received(platform) == []
    (held,) = store.posts_in_state(PostState.HELD)
    assert held.hold_kind == HoldKind.SECRET
    assert PAGE_TOKEN not in (held.text or "")
    assert "[redacted]" in held.text
    assert PAGE_TOKEN not in held.hold_reason
    with store.engine.connect() as conn:
        dump = "\n".join(str(tuple(r)) for r in conn.exec_driver_sql("SELECT * FROM posts"))
    assert PAGE_TOKEN not in dump
    store.close()


def test_path4_the_send_time_scan_catches_a_secret_that_got_in_later(tmp_path: Path, platform):
    """The last net: text changed after it was planned (an operator's edit, an older version's
    row) is searched again just before the platform is called."""
    config = night_config(tmp_path, platform.url)
    store = Store(config.database_url)
    clock = FeedClock()
    env = environment(config, store, clock)
    env.secrets.get("FB_PAGE_TOKEN")
    ingest(Pipeline(config, store, clock=clock, dry_run=False), clock, snapshot(is_test=False), "1")
    (row,) = store.posts_in_state(PostState.PENDING)
    with store.engine.begin() as conn:
        conn.exec_driver_sql(
            "UPDATE posts SET text=? WHERE id=?", (f"{row.text} {PAGE_TOKEN}", row.id)
        )
    Dispatcher(config, store, clock=clock, env=env, dry_run=False).drain()
    assert received(platform) == []
    held = store.post_row(row.id)
    assert held.hold_kind == HoldKind.SECRET
    assert PAGE_TOKEN not in held.text
    store.close()


# -- path 8: a token echoed by a platform ------------------------------------------------------


def test_path8_a_token_echoed_by_the_platform_is_masked_everywhere(tmp_path: Path, cli, platform):
    """The platform's error quoted the token: it reached the outbox, status, outbox show and
    /healthz. Every stored error and every output masks registered secrets."""
    import responses

    config = night_config(tmp_path, "https://graph.facebook.com")
    store = Store(config.database_url)
    clock = FeedClock()
    env = environment(config, store, clock)
    ingest(Pipeline(config, store, clock=clock, dry_run=False), clock, snapshot(is_test=False), "1")
    with responses.RequestsMock() as mock:
        mock.add(
            responses.POST,
            "https://graph.facebook.com/v25.0/100000000000001/feed",
            status=400,
            json={"error": {"code": 100, "message": f"Invalid token {PAGE_TOKEN} for page"}},
        )
        Dispatcher(config, store, clock=clock, env=env, dry_run=False).drain()
    (failed,) = store.posts_in_state(PostState.FAILED)
    assert "[redacted]" in failed.last_error
    assert PAGE_TOKEN not in failed.last_error
    # The same error text stored by a run that had not registered the secret (an older
    # version): the operator's commands mask it on output all the same.
    with store.engine.begin() as conn:
        conn.exec_driver_sql(
            "UPDATE posts SET last_error=? WHERE id=?", (f"echo {PAGE_TOKEN}", failed.id)
        )
        conn.exec_driver_sql(
            "INSERT INTO kv (key, value) VALUES ('paused:page', ?)",
            (json.dumps({"reason": f"re-authorise: token {PAGE_TOKEN} expired"}),),
        )
    store.close()
    cli_env = {"FB_PAGE_TOKEN": PAGE_TOKEN}
    shown = cli("outbox", "show", str(failed.id), "--config", str(tmp_path / "c.toml"), env=cli_env)
    assert shown.returncode == 0, shown.stderr
    assert PAGE_TOKEN not in shown.stdout
    assert "[redacted]" in shown.stdout
    status = cli("status", "--config", str(tmp_path / "c.toml"), env=cli_env, columns=250)
    assert status.returncode == 0, status.stderr
    assert "re-authorise: token [redacted] expired" in status.stdout
    assert PAGE_TOKEN not in status.stdout


# -- path 10: the operator's terminal, and who did what ----------------------------------------


def test_path10_feed_values_cannot_drive_the_terminal(tmp_path: Path):
    """`[/]` in a feed value crashed `feed check` (rich markup) and `[conceal]` hid text."""
    feed = tmp_path / "feed.csv"
    feed.write_bytes(snapshot(is_test=True, name="Seat [/] One [conceal]hidden"))
    cfg = write_config(tmp_path / "c.toml", source="feed.csv")
    result = CliRunner().invoke(
        main, ["feed", "check", str(feed), "--config", str(cfg)], env={"COLUMNS": "250"}
    )
    assert result.exit_code == 0, result.output
    assert "Seat [/] One [conceal]hidden" in result.output


def test_path10_operators_are_audited_and_approve_all_spares_gated_posts(tmp_path: Path):
    from tests.test_gates import Night, base_rows, body, case_votes_decreased

    night = Night(tmp_path)
    night.feed(body(base_rows()), "1.csv")
    rows = base_rows()
    case_votes_decreased(rows)
    night.feed(body(rows, at="21:30"), "2.csv")
    gated = night.store.posts_in_state(PostState.HELD)
    assert gated
    assert all(r.hold_kind == HoldKind.GATE for r in gated)
    cfg = str(tmp_path / "c.toml")
    runner = CliRunner()
    result = runner.invoke(main, ["--as", "alice", "outbox", "approve", "--all", "--config", cfg])
    assert result.exit_code == 0, result.output
    assert "0 posts approved" in result.output
    assert f"{len(gated)} posts held by a gate were left held" in result.output
    assert all(night.store.post_row(r.id).state == PostState.HELD for r in gated)

    result = runner.invoke(
        main, ["--as", "bob", "outbox", "approve", "--all", "--include-gated", "--config", cfg]
    )
    assert result.exit_code == 0, result.output
    trail = entries(night.store)
    assert {e.actor for e in trail} == {"bob"}
    assert all(e.action == "approve" and "was: implausible" in (e.detail or "") for e in trail)
    shown = runner.invoke(main, ["audit", "--config", cfg], env={"COLUMNS": "200"})
    assert "bob" in shown.output
    assert "approve" in shown.output

    operate.pause(night.store, ["x-test"], "checking a complaint", actor="carol")
    operate.resume(night.store, ["x-test"], actor="carol")
    assert [e.action for e in entries(night.store, actor="carol")] == ["resume", "pause"]


# -- path 11: files ------------------------------------------------------------------------------


def test_path11_the_database_and_posts_file_are_private(tmp_path: Path, demo_files: list[Path]):
    from broadcaster.rehearsal.replay import rehearse

    night = tmp_path / "snapshots"
    night.mkdir()
    for path in demo_files[:3]:  # the first posts: the whole night would add nothing here
        shutil.copy(path, night)
    out = tmp_path / "night"
    rehearse(load_config(None), night, out)
    assert read_jsonl(out / "posts.jsonl")
    for name in ("state.db", "posts.jsonl"):
        assert stat.S_IMODE((out / name).stat().st_mode) == 0o600, name


def test_path11_group_readable_files_when_configured(tmp_path: Path):
    cfg = write_config(tmp_path / "c.toml", source="f")
    cfg.write_text(cfg.read_text().replace("[output]\n", '[output]\nfile_mode = "0640"\n'))
    config = load_config(cfg)
    old = os.umask(0o027)
    try:
        Store(config.database_url, file_mode=config.output.mode).close()
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "state.db").stat().st_mode) == 0o640


def test_secrets_in_the_configured_files_are_registered_for_masking(tmp_path: Path):
    from broadcaster.core.logs import redact
    from broadcaster.core.secrets import register_config_secrets

    secrets = tmp_path / "secrets.toml"
    secrets.write_text('FILE_SECRET = "file-secret-value-1234"\n')
    os.chmod(secrets, 0o600)
    tokens = tmp_path / "tokens.json"
    tokens.write_text(json.dumps({"page": {"page_token": "stored-token-value-5678"}}))
    os.chmod(tokens, 0o600)
    cfg = write_config(
        tmp_path / "c.toml",
        source="f",
        accounts=page_account("https://graph.facebook.com"),
        extra='[secrets]\nfile = "secrets.toml"\ntokens = "tokens.json"\n',
    )
    register_config_secrets(load_config(cfg), environ={"FB_PAGE_TOKEN": "env-token-value-9012"})
    for value in ("file-secret-value-1234", "stored-token-value-5678", "env-token-value-9012"):
        assert redact(f"x {value} y") == "x [redacted] y"
