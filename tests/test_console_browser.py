"""The console in a real browser (Playwright driving Debian's Chromium) against `broadcaster run`
posting to the platform emulator: log in, see a held post from the demo night, approve it and
see it sent in the emulator, watch the night view follow a pause live, edit a template and see
the preview change before saving, announce, and a viewer refused an action.

Skipped where /usr/bin/chromium (Debian's `chromium` package; `.ci/run` installs it) or the
playwright package is missing. Screenshots of the main pages go to $BROADCASTER_SCREENSHOTS
when set (docs/console/ for the documentation), else to the test's own folder.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from broadcaster.domain.posts import HoldKind, PostState
from broadcaster.outbox.store import Store
from broadcaster.publishers import publisher_class
from broadcaster.rehearsal.emulator import EmulatorServer
from tests.conftest import DEMO, broadcaster_cmd, invoke, wait_for
from tests.local_servers import free_port

CHROMIUM = Path(os.environ.get("BROADCASTER_CHROMIUM", "/usr/bin/chromium"))
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ADMIN_PASSWORD = "the admin's long password"
VIEWER_PASSWORD = "the viewer's long password"

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason=f"{CHROMIUM} not installed (apt-get install chromium)"
)


def toml_value(value: Any) -> str:
    return json.dumps(value)


@pytest.fixture
def night(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """The daemon with its console, replaying the demo night into the emulator."""
    emulator = EmulatorServer().start()
    proc = None
    log = None
    try:
        feed = tmp_path / "feed"
        shutil.copytree(DEMO, feed)
        secrets: dict[str, str] = {}
        accounts = []
        for name, platform in (("fb", "facebook"), ("x", "x")):
            emu = publisher_class(platform).emulator_account(emulator.url, tmp_path)
            secrets.update(emu.secrets)
            settings = "".join(f"{k} = {toml_value(v)}\n" for k, v in emu.settings.items())
            accounts.append(
                f'[[accounts]]\nname = "{name}"\nplatform = "{platform}"\ndry_run = false\n'
                "allow_test_posts = true  # the demo night is test data; the emulator is no "
                "real account\n"
                'events = ["called", "corrected", "majority", "tally"]\n'
                "quota = [{posts = 10000, seconds = 86400}]\n" + settings
            )
        port = free_port()
        (tmp_path / "my-templates").mkdir()  # run refuses a [templates] dir that is missing
        config = tmp_path / "c.toml"
        config.write_text(
            f"""
[election]
timezone = "Asia/Bangkok"

[feed]
source = "feed"
poll_interval = 0.2

[dispatch]
interval = 0.2

[database]
url = "sqlite:///state.db"

[templates]
dir = "my-templates"

[service]
listen = ""

[console]
enabled = true
listen = "127.0.0.1:{port}"

{"".join(accounts)}
"""
        )
        env = {**os.environ, **secrets}
        for name, role, password in (
            ("ada", "admin", ADMIN_PASSWORD),
            ("vera", "viewer", VIEWER_PASSWORD),
        ):
            command = ["console", "adduser", name, "--role", role, "--password-stdin"]
            added = invoke(*command, "--config", str(config), input=password + "\n")
            assert added.returncode == 0, added.stderr
        log = (tmp_path / "daemon.log").open("w")
        proc = subprocess.Popen(
            [*broadcaster_cmd(), "run", "--config", str(config)],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
            start_new_session=True,
        )
        db = f"sqlite:///{tmp_path / 'state.db'}"

        def held_by_the_gate() -> bool:
            if proc.poll() is not None:
                raise AssertionError((tmp_path / "daemon.log").read_text()[-3000:])
            if not (tmp_path / "state.db").exists():
                return False
            store = Store(db)
            try:
                return len(store.held(HoldKind.GATE)) >= 2
            finally:
                store.close()

        wait_for(held_by_the_gate, timeout=120)
        yield {
            "url": f"http://127.0.0.1:{port}",
            "emulator": emulator.emulator,
            "db": db,
            "dir": tmp_path,
        }
    finally:
        if proc is not None:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)
        if log is not None:
            log.close()
        emulator.stop()


@pytest.fixture
def browser() -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("BROADCASTER_SCREENSHOTS") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def log_in(page: Any, base: str, name: str, password: str) -> None:
    page.goto(base + "/")
    page.fill("input[name=name]", name)
    page.fill("input[name=password]", password)
    page.click("form[action='/login'] button[type=submit]")
    page.wait_for_url(base + "/")


def emulated(emulator: Any, platform: str, needle: str) -> list[dict[str, Any]]:
    return [
        p
        for p in emulator.snapshot()["posts"]
        if p["platform"] == platform and needle in (p.get("text") or "")
    ]


def test_the_night_in_a_browser(night: dict[str, Any], browser: Any, shots: Path):
    from playwright.sync_api import expect

    base, emulator = night["url"], night["emulator"]
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.goto(base + "/")
    expect(page.locator("h1")).to_have_text("Log in")
    page.screenshot(path=str(shots / "login.png"))
    log_in(page, base, "ada", ADMIN_PASSWORD)

    # The night view: the demo night's last snapshot, and posts held by the gate.
    expect(page.locator("#night")).to_contain_text("14-0200.json", timeout=60_000)
    expect(page.locator("#night")).to_contain_text("held by the plausibility gates")
    expect(page.locator("[data-live-state]")).to_have_text("live", timeout=10_000)
    page.screenshot(path=str(shots / "night.png"), full_page=True)

    # A held post from the demo night: its finding, confirmed, then approved.
    page.goto(base + "/posts?state=held")
    page.screenshot(path=str(shots / "posts.png"), full_page=True)
    held = page.locator("article.platform-facebook.state-held").first
    expect(held).to_contain_text("CORRECTION")
    held.locator("header a").first.click()
    expect(page.locator(".finding")).to_contain_text("implausible")
    post_id = int(page.url.rsplit("/", 1)[1])
    page.screenshot(path=str(shots / "post.png"), full_page=True)
    assert not emulated(emulator, "facebook", "CORRECTION")
    page.click("form.approve button[type=submit]")  # without ticking the confirmation
    expect(page.locator(".flash.error")).to_contain_text("held by a plausibility gate")
    page.check("form.approve input[name=confirm]")
    page.click("form.approve button[type=submit]")
    expect(page.locator(".flash.ok")).to_contain_text("approved")
    wait_for(lambda: emulated(emulator, "facebook", "CORRECTION"), timeout=60)
    for _ in range(100):
        page.reload()
        if page.locator("article .sent").count():
            break
        time.sleep(0.2)
    expect(page.locator("article .sent")).to_contain_text("on facebook")
    store = Store(night["db"])
    try:
        assert store.post_row(post_id).state == PostState.SENT
    finally:
        store.close()

    # Pausing an account: a night view open in another tab follows without reloading.
    watcher = context.new_page()
    watcher.goto(base + "/")
    expect(watcher.locator("[data-live-state]")).to_have_text("live", timeout=10_000)
    watcher.evaluate("window.untouched = true")
    page.goto(base + "/accounts")
    row = page.locator("tr[data-account='x']")
    row.locator("input[name=reason]").fill("checking the X account")
    row.locator("button", has_text="Pause").click()
    expect(page.locator(".flash.ok")).to_contain_text("paused: x")
    started = time.monotonic()
    expect(watcher.locator("tr[data-account='x']")).to_contain_text(
        "checking the X account", timeout=5_000
    )
    assert time.monotonic() - started < 5
    assert watcher.evaluate("window.untouched") is True  # updated in place, not reloaded
    page.screenshot(path=str(shots / "accounts.png"), full_page=True)

    # A template: the preview changes as it is typed, before anything is saved.
    page.goto(base + "/templates/edit?name=en/default/called.j2")
    preview = page.locator("#preview article.platform-facebook")
    expect(preview).to_be_visible()
    assert "BREAKING" not in preview.inner_text()
    source = page.locator("textarea[name=source]")
    source.fill("BREAKING: " + source.input_value())
    expect(preview).to_contain_text("BREAKING:", timeout=10_000)
    saved = night["dir"] / "my-templates" / "en" / "default" / "called.j2"
    assert not saved.exists()  # only previewed so far
    page.screenshot(path=str(shots / "templates.png"), full_page=True)
    page.click("form.template-form button[type=submit]")
    expect(page.locator(".flash.ok")).to_contain_text("saved")
    assert saved.read_text().startswith("BREAKING: ")
    expect(page.locator(".versions li")).to_have_count(1)

    # An announcement, measured as it is typed, then through the outbox to the platform.
    page.goto(base + "/announce")
    page.fill("textarea[name=text]", "Results from Region X are delayed (rehearsal).")
    page.check("input[name=accounts][value=fb]")
    expect(page.locator("#announce-fits")).to_contain_text("/ 63206 characters")
    page.screenshot(path=str(shots / "announce.png"), full_page=True)
    page.click("form.announce button[type=submit]")
    expect(page.locator(".flash.ok")).to_contain_text("announcement queued")
    wait_for(lambda: emulated(emulator, "facebook", "Region X are delayed"), timeout=60)

    page.goto(base + "/audit")
    expect(page.locator("table.audit")).to_contain_text("announce")
    page.screenshot(path=str(shots / "audit.png"), full_page=True)
    page.goto(base + "/users")
    page.screenshot(path=str(shots / "users.png"), full_page=True)
    context.close()

    # A viewer reads, and is refused an action even when the request is made by hand.
    viewer = browser.new_context(viewport={"width": 1280, "height": 900})
    vpage = viewer.new_page()
    log_in(vpage, base, "vera", VIEWER_PASSWORD)
    store = Store(night["db"])
    try:
        x_held = next(p for p in store.held(HoldKind.GATE) if p.platform == "x")
    finally:
        store.close()
    vpage.goto(f"{base}/posts/{x_held.id}")
    expect(vpage.locator(".finding")).to_be_visible()
    expect(vpage.locator("form.approve")).to_have_count(0)
    status = vpage.evaluate(
        """async (id) => {
            const token = document.querySelector('meta[name="csrf-token"]').content;
            const body = new URLSearchParams({csrf: token, confirm: "yes"});
            const answer = await fetch(`/posts/${id}/approve`, {method: "POST", body});
            return answer.status;
        }""",
        x_held.id,
    )
    assert status == 403
    store = Store(night["db"])
    try:
        assert store.post_row(x_held.id).state == PostState.HELD
    finally:
        store.close()
    viewer.close()
