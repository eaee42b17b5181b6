"""The emulator's platform registry: a platform is one module (a `Platform` with its route table
and fault style) and one registry entry; nothing else in the emulator names it."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from broadcaster.rehearsal.emulator import (
    PLATFORMS,
    Emulator,
    EmulatorServer,
    FaultStyle,
    Limits,
    Platform,
    Request,
    Route,
    parse_faults,
)
from broadcaster.rehearsal.emulator.faults import COMMON_MIX

# -- a platform the emulator has never heard of, declared as a platform module would be --------


def _error(req: Request, status: int, code: str, message: str, headers: dict[str, str]) -> None:
    req.count(status)
    req.send(status, {"ok": False, "error_code": code, "description": message}, headers)


def _send(req: Request) -> None:
    fault = req.take_fault()
    if req.refuse(fault):
        return
    text = str(req.json().get("text", ""))
    message_id = req.emulator.next_id()
    req.record(req.params["chat"], message_id, text)
    req.accepted(fault)
    req.count(200)
    req.send(200, {"ok": True, "result": {"message_id": message_id, "text": text}})


def _inbox(req: Request) -> None:
    posts = [p.text for p in req.emulator.posts_of("pigeon") if p.target == req.params["chat"]]
    req.send(200, {"ok": True, "result": posts})


def _not_found(req: Request) -> None:
    _error(req, 404, "404", f"no such method {req.path}", {})


PIGEON = Platform(
    name="pigeon",
    claim=r"/pigeon/.*",
    routes=(
        Route("POST", r"/pigeon/(?P<chat>[^/]+)/send", _send),
        Route("GET", r"/pigeon/(?P<chat>[^/]+)/inbox", _inbox),
    ),
    not_found=_not_found,
    faults=FaultStyle(
        refusals={
            "429": (429, "429", "Too Many Requests: retry later"),
            "503": (503, "503", "Service Unavailable"),
            "500": (500, "500", "Internal Server Error"),
        },
        code_status=400,
        mix=COMMON_MIX,
    ),
    refused=_error,
)


@pytest.fixture
def served() -> Any:
    emulator = Emulator(Limits(hang_seconds=1), platforms=(*PLATFORMS, PIGEON))
    with EmulatorServer(emulator=emulator) as server:
        yield server


def test_a_platform_added_to_the_registry_is_served_with_faults(served: EmulatorServer) -> None:
    base = served.url
    sent = requests.post(f"{base}/pigeon/c1/send", json={"text": "one"}, timeout=5)
    assert sent.status_code == 200
    assert sent.json()["result"]["text"] == "one"
    assert requests.get(f"{base}/pigeon/c1/inbox", timeout=5).json()["result"] == ["one"]
    missing = requests.get(f"{base}/pigeon/c1/fly", timeout=5)
    assert (missing.status_code, missing.json()["error_code"]) == (404, "404")

    # Faults by the platform's name, answered in its own shape, with its wait.
    requests.post(f"{base}/_emulator/faults", json={"spec": "pigeon:429=7"}, timeout=5)
    refused = requests.post(f"{base}/pigeon/c1/send", json={"text": "two"}, timeout=5)
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "7"
    assert refused.json() == {
        "ok": False,
        "error_code": "429",
        "description": "Too Many Requests: retry later",
    }
    requests.post(f"{base}/_emulator/faults", json={"spec": "pigeon:close"}, timeout=5)
    with pytest.raises(requests.ConnectionError):
        requests.post(f"{base}/pigeon/c1/send", json={"text": "three"}, timeout=5)

    snapshot = requests.get(f"{base}/_emulator/posts", timeout=5).json()
    assert [(p["platform"], p["text"]) for p in snapshot["posts"]] == [
        ("pigeon", "one"),
        ("pigeon", "three"),  # accepted, then the connection closed
    ]
    assert snapshot["responses"] == {"pigeon 200": 1, "pigeon 404": 1, "pigeon 429": 1}
    assert snapshot["pending_faults"] == {}
    # The registered platforms are served beside it.
    me = requests.get(f"{base}/2/users/me", headers={"Authorization": "OAuth k"}, timeout=5)
    assert me.json()["data"]["username"] == "emulated_test"


def test_the_registry_decides_which_platforms_take_faults() -> None:
    with pytest.raises(ValueError, match="platform one of"):
        parse_faults("pigeon:429")
    assert parse_faults("pigeon:429", (*PLATFORMS, PIGEON))["pigeon"][0].kind == "429"
    with pytest.raises(ValueError, match="platform one of"):
        Emulator().add_faults("pigeon:429")


def test_a_platform_is_checked_when_the_emulator_is_made() -> None:
    with pytest.raises(ValueError, match="same name"):
        Emulator(platforms=(*PLATFORMS, PIGEON, PIGEON))
    broken = FaultStyle(refusals=PIGEON.faults.refusals, code_status=400, mix=("500", "explode"))
    with pytest.raises(ValueError, match="unknown kind 'explode'"):
        Emulator(
            platforms=(*PLATFORMS, Platform("bad", r"/bad/.*", (), _not_found, broken, _error))
        )


@pytest.mark.parametrize(
    ("path", "platform"),
    [
        ("/v25.0/100000000000001/feed", "facebook"),
        ("/v25.0/oauth/access_token", "facebook"),
        ("/youtube/v3/liveChat/messages", "youtube"),
        ("/youtube/v3/liveBroadcasts/bind", "youtube"),
        ("/token", "youtube"),
        ("/v2/post/publish/content/init/", "tiktok"),
        ("/v2/oauth/token/", "tiktok"),
        ("/2/tweets", "x"),
        ("/2/media/upload", "x"),
    ],
)
def test_each_adapter_path_is_claimed_by_exactly_its_platform(path: str, platform: str) -> None:
    assert [p.name for p in PLATFORMS if p.claims(path)] == [platform]


def test_a_path_no_platform_claims_is_not_found(served: EmulatorServer) -> None:
    answer = requests.get(f"{served.url}/nowhere", timeout=5)
    assert (answer.status_code, answer.json()) == (404, {"error": "no such endpoint: GET /nowhere"})
