"""The operator console through Starlette's TestClient: login on every page, roles, CSRF,
cookies, the login rate limit, escaping, and each page and action on the demo night."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.routing import Mount, Route
from starlette.testclient import TestClient

from broadcaster.console.app import create_app
from broadcaster.console.users import Role, UserStore
from broadcaster.core.config import ConfigError
from broadcaster.core.logs import register_secret
from broadcaster.domain.posts import HoldKind, PostState
from broadcaster.outbox.audit import entries
from broadcaster.outbox.state import PauseRecord, State
from broadcaster.outbox.store import Store
from broadcaster.runtime.configuration import load_config
from tests.console_support import (
    FAST_HASHER,
    PASSWORD,
    USERS,
    config_text,
    demo_night,
    form_token,
    login,
    make_env,
)

GATED = "implausible: D06 Westfield"


@pytest.fixture(scope="module")
def night_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return demo_night(tmp_path_factory.mktemp("night"))


@pytest.fixture
def env(tmp_path: Path, night_db: Path) -> tuple[Path, Any]:
    return make_env(tmp_path, night_db, templates=f'dir = "{tmp_path / "mine"}"')


def client_for(config: Any, path: Path, **kwargs: Any) -> TestClient:
    users = UserStore(path.parent / "console-users.json", hasher=FAST_HASHER)
    kwargs.setdefault("base_url", "http://127.0.0.1")
    return TestClient(create_app(config, users=users), **kwargs)


@pytest.fixture
def app(env: tuple[Path, Any]) -> Iterator[TestClient]:
    path, config = env
    with client_for(config, path) as client:
        yield client


@pytest.fixture
def store(env: tuple[Path, Any]) -> Iterator[Store]:
    _path, config = env
    s = Store(config.database_url)
    yield s
    s.close()


def gated_post(store: Store) -> Any:
    rows = store.held(HoldKind.GATE)
    assert rows, "the demo night holds its correction"
    return rows[0]


def concrete(route: Route) -> str:
    return route.path.replace("{post_id:int}", "1").replace("{action:str}", "approve")


def all_routes(client: TestClient) -> list[tuple[str, str, Any]]:
    out = []
    for route in client.app.routes:  # type: ignore[attr-defined]
        if isinstance(route, Mount):
            continue
        assert isinstance(route, Route)
        for method in sorted(route.methods or ()):
            if method == "HEAD":
                continue
            out.append((method, concrete(route), route.endpoint))
    return out


# -- login, every page -------------------------------------------------------------------------


def test_every_page_needs_a_login(app: TestClient):
    checked = 0
    for method, path, _ in all_routes(app):
        if path == "/login":
            continue
        answer = app.request(method, path, follow_redirects=False)
        if method == "GET" and path not in ("/events", "/night"):
            assert answer.status_code == 303, (method, path)
            assert answer.headers["location"].startswith("/login?next="), path
        else:
            assert answer.status_code == 401, (method, path, answer.status_code)
        checked += 1
    assert checked >= 20
    assert app.get("/login").status_code == 200
    assert app.get("/static/console.js").status_code == 200


def test_login_then_every_page_renders_for_an_admin(app: TestClient, store: Store):
    login(app, "ada")
    post = gated_post(store)
    pages = [
        "/",
        "/night",
        "/posts",
        "/posts?state=held",
        f"/posts/{post.id}",
        "/accounts",
        "/announce",
        "/templates",
        "/templates?lang=km",
        "/templates/edit?name=en/x/called.j2",
        "/audit",
        "/users",
    ]
    for path in pages:
        answer = app.get(path)
        assert answer.status_code == 200, (path, answer.text[:300])
        assert "Content-Security-Policy" in answer.headers
        assert answer.headers["cache-control"] == "no-store"
        assert answer.headers["x-frame-options"] == "DENY"


def test_wrong_password_and_unknown_name_are_refused_alike(app: TestClient):
    page = app.get("/login")
    for name, password in (("ada", "not the password"), ("nobody", PASSWORD)):
        answer = app.post(
            "/login",
            data={"csrf": form_token(page.text), "name": name, "password": password},
            follow_redirects=False,
        )
        assert answer.status_code == 401
        assert "wrong name or password" in answer.text
        page = answer  # the form shown again carries a new token
    assert app.get("/", follow_redirects=False).status_code == 303


def test_login_form_needs_its_own_csrf_token(app: TestClient):
    app.get("/login")
    answer = app.post(
        "/login",
        data={"csrf": "forged", "name": "ada", "password": PASSWORD},
        follow_redirects=False,
    )
    assert answer.status_code == 403
    assert "CSRF" in answer.text


def test_logout_ends_the_session(app: TestClient):
    token = login(app, "vera")
    assert app.get("/", follow_redirects=False).status_code == 200
    assert app.post("/logout", data={"csrf": token}, follow_redirects=False).status_code == 303
    assert app.get("/", follow_redirects=False).status_code == 303


def test_a_password_change_from_the_command_line_ends_open_sessions(
    app: TestClient, env: tuple[Path, Any]
):
    login(app, "otto")
    assert app.get("/accounts", follow_redirects=False).status_code == 200
    UserStore(env[0].parent / "console-users.json", hasher=FAST_HASHER).set_password(
        "otto", "another long password"
    )
    assert app.get("/accounts", follow_redirects=False).status_code == 303


# -- cookies -----------------------------------------------------------------------------------


def test_session_cookie_is_httponly_and_samesite_strict_not_secure_on_plain_http(app: TestClient):
    page = app.get("/login")
    answer = app.post(
        "/login",
        data={"csrf": form_token(page.text), "name": "vera", "password": PASSWORD},
        follow_redirects=False,
    )
    cookie = next(c for c in answer.headers.get_list("set-cookie") if "broadcaster_session=" in c)
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    assert "Secure" not in cookie
    assert "Max-Age=43200" in cookie  # session_hours = 12


def test_session_cookie_is_secure_over_tls(env: tuple[Path, Any]):
    path, config = env
    with client_for(config, path, base_url="https://console.example") as client:
        page = client.get("/login")
        answer = client.post(
            "/login",
            data={"csrf": form_token(page.text), "name": "vera", "password": PASSWORD},
            follow_redirects=False,
        )
        cookie = next(c for c in answer.headers.get_list("set-cookie") if "__Host-" in c)
        assert "Secure" in cookie
        assert "HttpOnly" in cookie
        assert "SameSite=strict" in cookie
        assert client.get("/", follow_redirects=False).status_code == 200


# -- roles and CSRF ----------------------------------------------------------------------------


def test_each_post_route_refuses_a_role_below_its_own(app: TestClient):
    """Every POST route declares a role; each user below it is refused, even with a valid
    CSRF token, and the refusal names the role."""
    refused = 0
    for method, path, endpoint in all_routes(app):
        if method != "POST" or path in ("/login", "/logout"):
            continue
        needed: Role = endpoint.role
        assert needed is not Role.VIEWER, f"{path} lets a viewer act"
        for name, role in USERS.items():
            if role.allows(needed):
                continue
            app.cookies.clear()
            token = login(app, name)
            answer = app.post(path, data={"csrf": token}, follow_redirects=False)
            assert answer.status_code == 403, (path, name)
            assert f"your role ({role.value})" in answer.text
            refused += 1
    assert refused >= 12
    app.cookies.clear()
    login(app, "otto")
    assert app.get("/users", follow_redirects=False).status_code == 403


def test_roles_of_the_main_actions():
    from broadcaster.console import manage, posts, templates_page

    assert posts.post_action.role is Role.OPERATOR
    assert manage.accounts_pause.role is Role.OPERATOR
    assert manage.announce_post.role is Role.OPERATOR
    assert templates_page.template_save.role is Role.EDITOR
    assert manage.users_change.role is Role.ADMIN


def test_posts_without_or_with_a_wrong_csrf_token_or_another_origin_are_refused(
    app: TestClient, store: Store
):
    token = login(app, "ada")
    target = {"target": "x-demo", "reason": "checking"}
    for data, headers in (
        (target, {}),
        ({**target, "csrf": "wrong"}, {}),
        ({**target, "csrf": token}, {"Origin": "https://evil.example"}),
        ({**target, "csrf": token}, {"Origin": "null"}),
    ):
        answer = app.post("/accounts/pause", data=data, headers=headers, follow_redirects=False)
        assert answer.status_code == 403
    assert State(store).pause("x-demo") is None
    # The page's scripts send the token as a header.
    answer = app.post(
        "/accounts/pause", data=target, headers={"X-CSRF-Token": token}, follow_redirects=False
    )
    assert answer.status_code == 303
    assert State(store).pause("x-demo").reason == "checking"


def test_login_attempts_are_limited_per_name_and_per_address(tmp_path: Path, night_db: Path):
    path, config = make_env(
        tmp_path, night_db, console="login_attempts = 3\nlogin_attempts_per_address = 5"
    )
    with client_for(config, path) as client:

        def attempt(name: str, password: str) -> Any:
            page = client.get("/login")
            return client.post(
                "/login",
                data={"csrf": form_token(page.text), "name": name, "password": password},
                follow_redirects=False,
            )

        for _ in range(3):
            assert attempt("ada", "wrong password").status_code == 401
        blocked = attempt("ada", PASSWORD)  # the right password, but too late
        assert blocked.status_code == 429
        assert int(blocked.headers["retry-after"]) > 0
        assert attempt("vera", "wrong password").status_code == 401
        assert attempt("otto", "wrong password").status_code == 401
        # Five failures from this address: even another name with its right password waits.
        assert attempt("edda", PASSWORD).status_code == 429


# -- the night view and escaping -----------------------------------------------------------------


def test_night_view_shows_the_night(app: TestClient, store: Store):
    import time

    now = time.time()
    health = {
        "started_at": now - 600,
        "last_poll": now - 5,
        "last_good": now - 400,
        "failures": 9,
        "last_outcome": "down",
        "last_error": "connection refused by the feed",
    }
    State(store).set_feed_health(health)
    login(app, "vera")
    page = app.get("/").text
    assert "9 polls in a row: connection refused by the feed" in page
    assert 'class="problems degraded"' in page  # what degrades /healthz, at the top
    assert "REHEARSAL database" in page
    assert "14-0200.json" in page  # the last snapshot
    for account in ("facebook-demo", "youtube-demo", "tiktok-demo", "x-demo"):
        assert account in page
    assert "posts held by the plausibility gates" in page
    assert f'href="/posts/{gated_post(store).id}"' in page
    assert 'data-sse="/events"' in page


def test_night_view_shows_the_live_channels_destinations(app: TestClient, store: Store):
    import time

    report = {
        "updated_at": time.time(),
        "running": True,
        "destinations": {
            "yt-live": {"kind": "youtube", "state": "live", "bitrate": 3_000_000},
            "tiktok-live": {
                "kind": "rtmp",
                "state": "reconnecting",
                "reason": "connection refused",
                "dropped_frames": 42,
            },
        },
    }
    State(store).set_live_status(report)
    login(app, "vera")
    page = app.get("/").text
    assert "Live channel" in page
    assert "<td>yt-live</td>" in page
    assert "3.00 Mbit/s" in page
    assert "reconnecting (connection refused)" in page
    assert "<td>42</td>" in page


def test_feed_values_are_escaped_and_secrets_masked(app: TestClient, store: Store):
    hostile = '<script>alert("x")</script> \u202eevil <img src=x onerror=alert(1)>'
    post = gated_post(store)
    from sqlalchemy import update

    from broadcaster.outbox.store import posts

    with store.transaction() as conn:
        conn.execute(
            update(posts)
            .where(posts.c.id == post.id)
            .values(text=hostile + " tok-console-SECRET-77", hold_reason=hostile)
        )
    register_secret("tok-console-SECRET-77")  # learnt after it was stored: still never shown
    State(store).set_pause("x-demo", PauseRecord(hostile))
    login(app, "vera")
    for path in ("/", f"/posts/{post.id}", "/posts?state=held", "/accounts"):
        page = app.get(path).text
        assert "<script>alert" not in page, path
        assert "<img src=x" not in page, path
        assert "&lt;script&gt;" in page, path
        assert "\u202e" not in page, path
        assert "\\u202e" in page, path
        assert "tok-console-SECRET-77" not in page, path
    assert "[redacted]" in app.get(f"/posts/{post.id}").text


# -- posts ---------------------------------------------------------------------------------------


def test_timeline_filters_and_pages(app: TestClient, store: Store):
    login(app, "vera")
    page = app.get("/posts?platform=x&state=sent").text
    ids = [int(i) for i in re.findall(r'data-post="(\d+)"', page)]
    assert ids
    assert ids == sorted(ids, reverse=True)
    for post_id in ids:
        row = store.post_row(post_id)
        assert (row.platform, row.state) == ("x", "sent")
    assert "/ 280 weighted characters" in page  # X's own count
    every = app.get("/posts").text
    first = [int(i) for i in re.findall(r'data-post="(\d+)"', every)]
    assert len(first) == 50
    older = re.search(r'href="/posts\?([^"]+)" rel="next"', every)
    assert older
    second = app.get("/posts?" + older.group(1).replace("&amp;", "&")).text
    more = [int(i) for i in re.findall(r'data-post="(\d+)"', second)]
    assert more
    assert max(more) < min(first)
    kinds = app.get("/posts?kind=called&contest=cc-D01").text
    for post_id in re.findall(r'data-post="(\d+)"', kinds):
        row = store.post_row(int(post_id))
        assert (row.event_kind, row.contest_id) == ("called", "cc-D01")
    assert "No post matches." in app.get("/posts?contest=nothing-like-this").text


def test_gate_held_post_is_approved_only_with_its_finding_confirmed(app: TestClient, store: Store):
    post = gated_post(store)
    token = login(app, "otto")
    page = app.get(f"/posts/{post.id}").text
    assert GATED in page
    assert "I have checked this finding" in page
    finding = re.search(r'name="finding" value="([0-9a-f]+)"', page).group(1)
    refused = app.post(f"/posts/{post.id}/approve", data={"csrf": token}, follow_redirects=True)
    assert "held by a plausibility gate" in refused.text
    assert store.post_row(post.id).state == PostState.HELD
    stale = {"csrf": token, "confirm": "yes", "finding": "0" * 16}
    app.post(f"/posts/{post.id}/approve", data=stale)
    assert store.post_row(post.id).state == PostState.HELD
    ok = {"csrf": token, "confirm": "yes", "finding": finding}
    answer = app.post(f"/posts/{post.id}/approve", data=ok, follow_redirects=True)
    assert "approved" in answer.text
    assert store.post_row(post.id).state == PostState.PENDING
    trail = entries(store, limit=5, action="approve")
    assert trail[0].actor == "otto"
    assert trail[0].target == f"post #{post.id}"
    assert "otto" in app.get(f"/posts/{post.id}").text  # the post's history


def test_in_doubt_post_is_marked_sent_with_its_link_or_sent_again(app: TestClient, store: Store):
    sent = store.posts_in_state(PostState.SENT)
    first, second = sent[0], sent[1]
    for row in (first, second):
        store.mark_held(row.id, HoldKind.IN_DOUBT, "in doubt (timeout): the platform cannot look")
    token = login(app, "otto")
    page = app.get(f"/posts/{first.id}").text
    assert "In doubt" in page
    assert "Mark sent" in page
    assert "Send again" in page
    bad = app.post(
        f"/posts/{first.id}/mark-sent", data={"csrf": token, "url": "javascript:alert(1)"}
    )
    assert "http(s) address" in bad.text
    app.post(
        f"/posts/{first.id}/mark-sent",
        data={"csrf": token, "url": "https://x.example/post/1"},
    )
    row = store.post_row(first.id)
    assert row.state == PostState.SENT
    assert row.platform_url == "https://x.example/post/1"
    assert 'href="https://x.example/post/1"' in app.get(f"/posts/{first.id}").text
    app.post(f"/posts/{second.id}/approve", data={"csrf": token})
    assert store.post_row(second.id).state == PostState.PENDING


def test_hold_edit_cancel_and_retry(app: TestClient, store: Store):
    token = login(app, "otto")
    post = gated_post(store)
    new_text = "[TEST] D06 Westfield: figures corrected (checked by the desk)"
    app.post(f"/posts/{post.id}/edit", data={"csrf": token, "text": new_text})
    row = store.post_row(post.id)
    assert row.text == new_text
    assert row.state == PostState.HELD  # an edit never releases a post
    x_post = next(p for p in store.held(HoldKind.GATE) if p.platform == "x")
    long = app.post(
        f"/posts/{x_post.id}/edit",
        data={"csrf": token, "text": "word " * 100},
        follow_redirects=True,
    )
    assert "x takes 280" in long.text
    register_secret("tok-edit-SECRET-555")
    leak = app.post(
        f"/posts/{x_post.id}/edit",
        data={"csrf": token, "text": "oops tok-edit-SECRET-555"},
        follow_redirects=True,
    )
    assert "secret value" in leak.text
    assert "tok-edit-SECRET-555" not in (store.post_row(x_post.id).text or "")
    app.post(f"/posts/{post.id}/cancel", data={"csrf": token})
    assert store.post_row(post.id).state == PostState.CANCELLED
    failed = store.posts_in_state(PostState.SENT)[0]
    store.mark_failed(failed.id, "rejected: duplicate content")
    app.post(f"/posts/{failed.id}/retry", data={"csrf": token})
    assert store.post_row(failed.id).state == PostState.PENDING
    app.post(f"/posts/{failed.id}/hold", data={"csrf": token})
    assert store.post_row(failed.id).state == PostState.HELD
    wrong = app.post(f"/posts/{failed.id}/retry", data={"csrf": token}, follow_redirects=True)
    assert "only failed posts can be retried" in wrong.text
    actions = {e.action for e in entries(store, limit=20, actor="otto")}
    assert {"edit", "cancel", "retry", "hold"} <= actions


def test_post_card_is_drawn_for_its_page(env: tuple[Path, Any], night_db: Path):
    path, config = env
    config = config.with_overrides(cards=config.cards.model_copy(update={"enabled": True}))
    store = Store(config.database_url)
    post = next(p for p in store.held(HoldKind.GATE) if p.platform == "facebook")
    youtube = next(p for p in store.held(HoldKind.GATE) if p.platform == "youtube")
    from sqlalchemy import update

    from broadcaster.outbox.store import posts

    with store.transaction() as conn:  # the rehearsal ran without cards: this one wants one
        conn.execute(update(posts).where(posts.c.id == post.id).values(wants_card=True))
    store.close()
    with client_for(config, path) as client:
        login(client, "vera")
        card = client.get(f"/posts/{post.id}/card")
        assert card.status_code == 200
        assert card.headers["content-type"] == "image/png"
        assert card.content.startswith(b"\x89PNG")
        assert client.get(f"/posts/{youtube.id}/card").status_code == 404  # no images
        assert client.get("/posts/999999/card").status_code == 404
        assert client.get("/posts/999999").status_code == 404


# -- accounts, audit, users ----------------------------------------------------------------------


def test_pause_and_resume_an_account_and_a_platform(app: TestClient, store: Store):
    token = login(app, "otto")
    app.post("/accounts/pause", data={"csrf": token, "target": "x-demo", "reason": "X is slow"})
    assert State(store).pause("x-demo").reason == "X is slow"
    assert State(store).pause("x-demo").by == "otto"
    page = app.get("/accounts").text
    assert "X is slow" in page
    assert "Resume" in page
    app.post("/accounts/resume", data={"csrf": token, "target": "x-demo"})
    assert State(store).pause("x-demo") is None
    app.post("/accounts/pause", data={"csrf": token, "target": "tiktok", "reason": "platform"})
    assert State(store).pause("tiktok-demo").reason == "platform"
    unknown = app.post("/accounts/pause", data={"csrf": token, "target": "myspace"})
    assert unknown.status_code == 403
    audit_page = app.get("/audit").text
    assert "pause" in audit_page
    assert "account x-demo" in audit_page
    assert "otto" in audit_page
    only = app.get("/audit?action=resume").text
    assert "account x-demo" in only
    assert "account tiktok-demo" not in only


def test_a_viewer_sees_no_action_buttons(app: TestClient, store: Store):
    login(app, "vera")
    assert "Approve" not in app.get(f"/posts/{gated_post(store).id}").text
    assert "Pause" not in app.get("/accounts").text
    assert "cannot make announcements" in app.get("/announce").text


def test_admin_manages_users(app: TestClient, env: tuple[Path, Any], store: Store):
    token = login(app, "ada")
    users = UserStore(env[0].parent / "console-users.json", hasher=FAST_HASHER)
    app.post(
        "/users/add",
        data={
            "csrf": token,
            "name": "nia",
            "role": "operator",
            "password": PASSWORD,
            "again": PASSWORD,
        },
    )
    assert users.get("nia").role is Role.OPERATOR
    app.post("/users/role", data={"csrf": token, "name": "nia", "role": "editor"})
    assert users.get("nia").role is Role.EDITOR
    short = app.post(
        "/users/password",
        data={"csrf": token, "name": "nia", "password": "short", "again": "short"},
        follow_redirects=True,
    )
    assert "at least 10 characters" in short.text
    self_delete = app.post(
        "/users/delete", data={"csrf": token, "name": "ada"}, follow_redirects=True
    )
    assert "cannot remove yourself" in self_delete.text
    demote = app.post(
        "/users/role", data={"csrf": token, "name": "ada", "role": "viewer"}, follow_redirects=True
    )
    assert "only admin" in demote.text
    app.post("/users/delete", data={"csrf": token, "name": "nia"})
    assert users.get("nia") is None
    assert {"user-add", "user-role", "user-delete"} <= {e.action for e in entries(store, limit=10)}


def test_logins_are_in_the_audit_trail(app: TestClient, store: Store):
    login(app, "vera")
    trail = entries(store, limit=1, action="login")
    assert trail[0].actor == "vera"


# -- configuration ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("console", "expected"),
    [
        ('listen = "0.0.0.0:8765"', "allow_remote"),
        ('listen = "192.0.2.1:8765"\nallow_remote = true', "tls_cert"),
        ('tls_cert = "c.pem"', "go together"),
    ],
)
def test_console_listening_beyond_this_machine_needs_allow_remote_and_tls(
    tmp_path: Path, console: str, expected: str
):
    path = tmp_path / "c.toml"
    path.write_text(config_text(console=console))
    with pytest.raises(ConfigError, match=expected):
        load_config(path)


@pytest.mark.parametrize(
    "console",
    [
        'listen = "0.0.0.0:8765"\nallow_remote = true\ntls_cert = "c.pem"\ntls_key = "k.pem"',
        'listen = "0.0.0.0:8765"\nallow_remote = true\nreverse_proxy = "127.0.0.1"',
        'listen = "[::1]:8765"',
        'listen = "localhost:8765"',
    ],
)
def test_console_bindings_that_are_allowed(tmp_path: Path, console: str):
    path = tmp_path / "c.toml"
    path.write_text(config_text(console=console))
    config = load_config(path)
    assert config.console.port == 8765


def test_a_users_file_readable_by_others_stops_every_login(app: TestClient, env: Any):
    users_file = env[0].parent / "console-users.json"
    users_file.chmod(0o644)
    page = app.get("/login")
    assert page.status_code == 503
    assert "readable by others" in page.text
    answer = app.post(
        "/login",
        data={"csrf": form_token(page.text), "name": "ada", "password": PASSWORD},
        follow_redirects=False,
    )
    assert answer.status_code == 503
    assert app.get("/", follow_redirects=False).status_code == 303


def test_a_post_held_for_a_secret_or_unmarked_test_data_is_only_cancelled(
    app: TestClient, store: Store
):
    token = login(app, "otto")
    first, second = store.held(HoldKind.GATE)[:2]
    store.refuse(first.id, PostState.HELD, HoldKind.SECRET, "its text contains a secret value")
    store.refuse(second.id, PostState.HELD, HoldKind.TEST_DATA, "test data without the marker")
    for post in (first, second):
        page = app.get(f"/posts/{post.id}").text
        assert "form.approve" not in page
        assert f'action="/posts/{post.id}/approve"' not in page
        assert f'action="/posts/{post.id}/cancel"' in page
        refused = app.post(
            f"/posts/{post.id}/approve",
            data={"csrf": token, "confirm": "yes"},
            follow_redirects=True,
        )
        assert "cannot be approved" in refused.text
        assert store.post_row(post.id).state == PostState.HELD
