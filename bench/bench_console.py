"""The operator console with 100,000 posts in the outbox: how long each page takes, and how
soon a change reaches an open night view by server-sent events.

Builds a database (the bundled demo night, then synthetic events and posts through the Store's
own inserts up to the target), serves the console for real (uvicorn in a thread) and asks it
over HTTP like a browser would. Prints the median, 95th percentile and worst time per page,
and the delay from a change in the database to its arrival on the event stream.

    .venv/bin/python bench/bench_console.py [--posts 100000] [--rounds 20] [--changes 10]

The machine is shared: run it more than once and read the medians.
"""

from __future__ import annotations

import argparse
import re
import statistics
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx2 as httpx
from argon2 import PasswordHasher

from broadcaster.console.server import ConsoleServer
from broadcaster.console.users import Role, UserStore
from broadcaster.core.config import CardsConfig
from broadcaster.core.paths import DEMO_SNAPSHOTS
from broadcaster.domain.events import Event, EventKind
from broadcaster.domain.posts import NewPost, PostState
from broadcaster.outbox.operations import pause
from broadcaster.outbox.store import Store
from broadcaster.planning.planner import idempotency_key
from broadcaster.rehearsal.replay import rehearse
from broadcaster.runtime.configuration import load_config

ACCOUNTS = (
    ("facebook-demo", "facebook"),
    ("youtube-demo", "youtube"),
    ("tiktok-demo", "tiktok"),
    ("x-demo", "x"),
)
PASSWORD = "a long bench password"  # noqa: S105 - a throwaway user of a throwaway database


def build(folder: Path, target: int) -> Path:
    """A rehearsal database of the demo night, grown to `target` posts."""
    config = load_config(None).with_overrides(cards=CardsConfig(enabled=False))
    rehearse(config, DEMO_SNAPSHOTS, folder)
    store = Store(f"sqlite:///{folder / 'state.db'}")
    try:
        snapshot_id = store.last_snapshot_id()
        assert snapshot_id is not None
        have = store.count_posts()
        missing = max(0, target - sum(have.values()))
        events_needed = missing // len(ACCOUNTS)
        start = datetime(2030, 7, 29, 2, 0, tzinfo=UTC)
        kinds = (EventKind.PROGRESS, EventKind.CALLED, EventKind.LEADER, EventKind.TALLY)
        states = (
            [PostState.SENT] * 14 + [PostState.SUPERSEDED] * 4 + [PostState.PENDING, PostState.HELD]
        )
        chunk = 2500
        for first in range(0, events_needed, chunk):
            items = []
            rows = []
            for i in range(first, min(events_needed, first + chunk)):
                kind = kinds[i % len(kinds)]
                contest = None if kind is EventKind.TALLY else f"cc-B{i % 5000:04d}"
                event = Event(f"bench/{i}", kind, start + timedelta(seconds=i), contest, {})
                items.append((event, {}))
                for account, platform in ACCOUNTS:
                    state = states[(i + len(account)) % len(states)]
                    rows.append(
                        NewPost(
                            idempotency_key=idempotency_key(event.key, platform, account),
                            event_key=event.key,
                            account=account,
                            platform=platform,
                            text=f"[TEST] Bench post {i}: contest {contest} on {platform}",
                            media=(),
                            dry_run=True,
                            state=state,
                            hold_reason="held by an operator (bench)"
                            if state == PostState.HELD
                            else None,
                        )
                    )
            with store.transaction() as conn:
                ids = store.insert_events(conn, snapshot_id, items)
                store.insert_posts(conn, rows, ids, {e.key: e for e, _ in items}, test_data=True)
        store.ensure_indexes()
        return folder / "state.db"
    finally:
        store.close()


def config_file(folder: Path) -> Path:
    accounts = "".join(
        f'[[accounts]]\nname = "{name}"\nplatform = "{platform}"\ndry_run = true\n'
        for name, platform in ACCOUNTS
    )
    path = folder / "c.toml"
    path.write_text(
        f"""
[election]
timezone = "Asia/Bangkok"
[feed]
source = "snapshots"
is_test = true
[database]
url = "sqlite:///state.db"
[cards]
enabled = false
[console]
listen = "127.0.0.1:0"
{accounts}
"""
    )
    return path


def login(client: httpx.Client) -> str:
    page = client.get("/login")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    answer = client.post("/login", data={"csrf": token, "name": "bench", "password": PASSWORD})
    assert answer.status_code == 303, answer.text[:300]
    html = client.get("/accounts").text
    return re.search(r'name="csrf-token" content="([^"]+)"', html).group(1)  # type: ignore[union-attr]


def timed(client: httpx.Client, method: str, path: str, **kwargs: object) -> float:
    started = time.perf_counter()
    answer = client.request(method, path, **kwargs)  # type: ignore[arg-type]
    elapsed = time.perf_counter() - started
    assert answer.status_code == 200, (path, answer.status_code, answer.text[:300])
    return elapsed


def _newest(store: Store) -> int:
    from broadcaster.outbox.operations import PostFilter, find_posts

    return int(find_posts(store, PostFilter(), limit=1)[0].id)


def pages(client: httpx.Client, store: Store, token: str, rounds: int) -> None:
    some = store.posts_in_state(PostState.HELD, limit=1)[0].id
    middle = _newest(store) // 2  # a page from the middle of the outbox
    requests: list[tuple[str, str, dict[str, object]]] = [
        ("GET", "/", {}),
        ("GET", "/night", {}),
        ("GET", "/posts", {}),
        ("GET", "/posts?state=held", {}),
        ("GET", "/posts?platform=x", {}),
        ("GET", "/posts?platform=facebook&kind=called", {}),
        ("GET", "/posts?contest=cc-B0042", {}),
        ("GET", f"/posts?before={middle}", {}),
        ("GET", f"/posts/{some}", {}),
        ("GET", "/accounts", {}),
        ("GET", "/announce", {}),
        ("GET", "/audit", {}),
        ("GET", "/templates", {}),
        ("GET", "/templates/edit?name=en/x/called.j2&night=fictional-final", {}),
        (
            "POST",
            "/templates/preview",
            {
                "data": {
                    "name": "en/x/called.j2",
                    "source": "{{ contest.name }} wins",
                    "night": "fictional-final",
                },
                "headers": {"X-CSRF-Token": token},
            },
        ),
    ]
    print(f"{'page':<60} {'median':>8} {'p95':>8} {'worst':>8}  (ms)")
    worst_median = 0.0
    for method, path, kwargs in requests:
        timed(client, method, path, **kwargs)  # warm: templates compiled, caches filled
        times = sorted(timed(client, method, path, **kwargs) * 1000 for _ in range(rounds))
        median = statistics.median(times)
        worst_median = max(worst_median, median)
        p95 = times[min(len(times) - 1, int(0.95 * len(times)))]
        print(f"{method + ' ' + path:<60} {median:8.1f} {p95:8.1f} {times[-1]:8.1f}")
    print(f"slowest page median: {worst_median:.1f} ms (target: under 200 ms)")


def live_updates(client: httpx.Client, store: Store, changes: int) -> None:
    arrivals: list[tuple[float, str]] = []
    lock = threading.Lock()
    stop = threading.Event()

    def follow() -> None:
        try:
            with client.stream("GET", "/events", timeout=120) as response:
                data: list[str] = []
                for line in response.iter_lines():
                    if stop.is_set():
                        return
                    if line.startswith("data: "):
                        data.append(line[6:])
                    elif line == "" and data:
                        with lock:
                            arrivals.append((time.monotonic(), "\n".join(data)))
                        data = []
        except httpx.HTTPError:
            if not stop.is_set():
                raise

    reader = threading.Thread(target=follow, daemon=True)
    reader.start()
    deadline = time.monotonic() + 30
    while not arrivals and time.monotonic() < deadline:
        time.sleep(0.05)
    delays = []
    for i in range(changes):
        time.sleep(0.3 + (i % 4) * 0.17)  # land at different points of the watcher's cycle
        marker = f"bench change {i}"
        started = time.monotonic()
        pause(store, ["x-demo"], marker, actor="bench")
        seen = None
        while seen is None and time.monotonic() - started < 10:
            with lock:
                seen = next((at for at, data in arrivals if at >= started and marker in data), None)
            time.sleep(0.005)
        if seen is None:
            raise SystemExit(f"change {i} never reached the event stream")
        delays.append((seen - started) * 1000)
    stop.set()
    delays.sort()
    median = statistics.median(delays)
    print(
        f"change -> night view by SSE over {changes} changes: median {median:.0f} ms, "
        f"worst {delays[-1]:.0f} ms (target: within 1000 ms)"
    )
    started = time.perf_counter()
    for _ in range(50):
        store.change_marker()
    each = (time.perf_counter() - started) / 50 * 1000
    print(f"the watcher's 'anything changed?' check: {each:.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--posts", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--changes", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-console-") as tmp:
        folder = Path(tmp)
        started = time.perf_counter()
        build(folder, args.posts)
        config = load_config(config_file(folder))
        users = UserStore(folder / "console-users.json", hasher=PasswordHasher())
        users.add("bench", Role.ADMIN, PASSWORD)
        store = Store(config.database_url)
        total = sum(store.count_posts().values())
        print(f"database: {total:,} posts (built in {time.perf_counter() - started:.1f} s)")
        server = ConsoleServer(config, users=users).start()
        try:
            with httpx.Client(base_url=server.url, timeout=60) as client:
                token = login(client)
                pages(client, store, token, args.rounds)
                live_updates(client, store, args.changes)
        finally:
            server.stop()
            store.close()


if __name__ == "__main__":
    main()
