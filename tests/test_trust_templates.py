"""Issue 10, the template paths: an operator's template folder can neither publish a secret (4),
nor freeze or kill the daemon (5), and a new or included file is picked up, checked, on the next
cycle (13). The attacks are the issue's own.

Attack templates that would hang or exhaust memory without the bounds are rendered in a forked
child with an address-space limit and a deadline, so a regression fails the test instead of
freezing the suite or waking the kernel's OOM killer on a shared machine.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import resource
import shutil
import signal
import sqlite3
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from broadcaster.content.render import Budget, Renderer, RenderError
from broadcaster.content.samples import sample_vars
from broadcaster.core.clock import FeedClock
from broadcaster.core.config import ConfigError
from broadcaster.delivery.dispatcher import Dispatcher
from broadcaster.domain.events import EventKind
from broadcaster.domain.posts import PostState
from broadcaster.ingest.parsers import parse
from broadcaster.ingest.sources import make_fetched
from broadcaster.outbox.store import Store
from broadcaster.publishers import PublisherEnv
from broadcaster.publishers.dryrun import read_posts
from broadcaster.runtime.configuration import load_config
from broadcaster.runtime.cycle import Pipeline
from tests.conftest import DEMO, broadcaster_cmd, wait_for, write_config
from tests.local_servers import free_port

SECRET = "xsec-7f3a9c21e8b4d605"
SECRETS_TOML = f'X_API_SECRET = "{SECRET}"\nFB_APP_SECRET = "fbsec-0c1d2e3f4a5b6c7d"\n'
X_ONLY = (
    '[[accounts]]\nname = "x-main"\nplatform = "x"\nevents = ["called"]\n'
    "quota = [{posts = 10000, seconds = 86400}]\n"
)
POWER = "{{ (((((10**64)**64)**64)**64)**64) > 0 }}"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    stamp = time.time_ns() + 1_000_000  # visible to a modification-time check at once
    os.utime(path, ns=(stamp, stamp))
    return path


class Night:
    """A real pipeline and dry-run dispatcher over the demo night, with an operator's folder."""

    def __init__(self, tmp_path: Path, *, accounts: str = X_ONLY, extra: str = "") -> None:
        self.tmp = tmp_path
        config = write_config(
            tmp_path / "c.toml",
            source="f",
            accounts=accounts,
            extra=f'[templates]\ndir = "tpl"\n[secrets]\nfile = "secrets.toml"\n{extra}',
        )
        self.config = load_config(config)
        self.store = Store(self.config.database_url)
        clock = FeedClock()
        self.pipeline = Pipeline(self.config, self.store, clock=clock, dry_run=True)
        env = PublisherEnv(clock=clock, posts_path=tmp_path / "posts.jsonl")
        self.dispatcher = Dispatcher(self.config, self.store, clock=clock, env=env, dry_run=True)

    def feed(self, files: list[Path]) -> None:
        for p in files:
            result = self.pipeline.ingest(make_fetched(p.read_bytes(), p.name), "t")
            assert result.outcome == "accepted"
        self.dispatcher.drain()

    def texts(self) -> list[str]:
        return [r["text"] for r in read_posts(self.tmp / "posts.jsonl")]

    def problems(self) -> list[str]:
        return list(self.store.get_state("template_problems", []))

    def held(self) -> list[Any]:
        return self.store.posts_in_state(PostState.HELD)


@pytest.fixture
def secrets_file(tmp_path: Path) -> Path:
    path = tmp_path / "secrets.toml"
    path.write_text(SECRETS_TOML, encoding="utf-8")
    path.chmod(0o600)
    return path


# -- path 4: templates cannot read the secrets -------------------------------------------------


def _include_link(tpl: Path, secrets: Path) -> str:
    (tpl / "en" / "x").mkdir(parents=True)
    (tpl / "en" / "x" / "s.j2").symlink_to(secrets)
    write(tpl / "en" / "x" / "called.j2", '{% include "en/x/s.j2" %} {{ contest.name }}')
    return "s.j2: refused: it is a symbolic link"


def _template_is_link(tpl: Path, secrets: Path) -> str:
    (tpl / "en" / "x").mkdir(parents=True)
    (tpl / "en" / "x" / "called.j2").symlink_to(secrets)
    return "called.j2: refused: it is a symbolic link"


def _extends_link(tpl: Path, secrets: Path) -> str:
    (tpl / "en" / "x").mkdir(parents=True)
    (tpl / "en" / "x" / "base.j2").symlink_to(secrets)
    write(tpl / "en" / "x" / "called.j2", '{% extends "en/x/base.j2" %}')
    return "base.j2: refused: it is a symbolic link"


def _import_link(tpl: Path, secrets: Path) -> str:
    (tpl / "en" / "x").mkdir(parents=True)
    (tpl / "en" / "x" / "lib.j2").symlink_to(secrets)
    write(tpl / "en" / "x" / "called.j2", '{% import "en/x/lib.j2" as lib %}{{ lib }}')
    return "lib.j2: refused: it is a symbolic link"


def _folder_link(tpl: Path, secrets: Path) -> str:
    (tpl / "en" / "x").mkdir(parents=True)
    (tpl / "en" / "x" / "keys").symlink_to(secrets.parent, target_is_directory=True)
    write(tpl / "en" / "x" / "called.j2", '{% include "en/x/keys/secrets.toml" %}')
    return "keys is a symbolic link"


def _hard_link(tpl: Path, secrets: Path) -> str:
    (tpl / "en" / "x").mkdir(parents=True)
    os.link(secrets, tpl / "en" / "x" / "s.j2")
    write(tpl / "en" / "x" / "called.j2", '{% include "en/x/s.j2" %} {{ contest.name }}')
    return "s.j2: refused: it is the secrets file (secrets.file)"


@pytest.mark.parametrize(
    "attack",
    [_include_link, _template_is_link, _extends_link, _import_link, _folder_link, _hard_link],
    ids=["include", "template", "extends", "import", "folder", "hardlink"],
)
def test_path4_symlink_to_the_secrets_file_is_refused(
    tmp_path: Path, secrets_file: Path, demo_files, attack
):
    reason = attack(tmp_path / "tpl", secrets_file)
    night = Night(tmp_path)
    night.feed(demo_files[:11])
    held = night.held()
    assert held, "the called posts wait for the template to be fixed"
    everything = [
        *night.texts(),
        *(r.hold_reason for r in held),
        *night.problems(),
        (tmp_path / "posts.jsonl").read_text() if (tmp_path / "posts.jsonl").exists() else "",
    ]
    assert not any(SECRET in text for text in everything)
    assert not night.texts(), "nothing is posted from a refused template"
    assert all(reason in r.hold_reason for r in held), held[0].hold_reason
    assert any(reason in p for p in night.problems())
    night.store.close()


def test_path4_a_refused_file_is_reported_with_its_line_not_a_crash(
    tmp_path: Path, secrets_file: Path
):
    tpl = tmp_path / "tpl"
    _include_link(tpl, secrets_file)
    write(tpl / "en" / "x" / "called.j2", 'Result\n{% include "en/x/s.j2" %}\n')
    snapshot = parse(sorted(DEMO.glob("*.json"))[-1].read_bytes())
    _, variables = sample_vars(snapshot, EventKind.CALLED)
    with pytest.raises(RenderError) as info:
        Renderer([tpl]).render("x", "called", variables)
    assert info.value.where == f"{tpl / 'en' / 'x' / 'called.j2'}:2"
    assert "s.j2: refused: it is a symbolic link" in info.value.message
    assert SECRET not in str(info.value)


@pytest.mark.parametrize(
    ("settings", "key", "what"),
    [
        (
            '[templates]\ndir = "private"\n[secrets]\nfile = "private/keys/secrets.toml"\n',
            "templates.dir",
            "the secrets file (secrets.file)",
        ),
        (
            '[templates]\ndir = "private"\n[secrets]\ntokens = "private/tokens.json"\n',
            "templates.dir",
            "the token store (secrets.tokens)",
        ),
        ("", "accounts[0] (x-main).templates", "the token store (secrets.tokens)"),
        ('[templates]\ndir = "linked"\n', "templates.dir", "the token store (secrets.tokens)"),
    ],
    ids=["secrets-in-subfolder", "tokens", "account-folder", "folder-is-a-link"],
)
def test_path4_a_template_folder_holding_secrets_is_a_configuration_error(
    tmp_path: Path, settings: str, key: str, what: str
):
    (tmp_path / "private" / "keys").mkdir(parents=True)
    (tmp_path / "linked").symlink_to(tmp_path, target_is_directory=True)
    accounts = X_ONLY + ('templates = "."\n' if "account" in key else "")
    cfg = write_config(tmp_path / "c.toml", source="f", accounts=accounts, extra=settings)
    with pytest.raises(ConfigError) as info:
        load_config(cfg)
    assert f"{key}: the template folder" in str(info.value)
    assert what in str(info.value)


def test_path4_run_refuses_a_template_folder_holding_secrets_exit_2(tmp_path: Path):
    (tmp_path / "feed").mkdir()
    cfg = write_config(
        tmp_path / "c.toml",
        source="feed",
        accounts=X_ONLY,
        extra='[templates]\ndir = "private"\n[secrets]\nfile = "private/deep/secrets.toml"\n',
    )
    with running_daemon(tmp_path, cfg) as proc:
        code = proc.wait(timeout=60)
    assert code == 2
    stderr = (tmp_path / "daemon.log").read_text()
    assert "templates.dir: the template folder" in stderr
    assert "holds the secrets file (secrets.file)" in " ".join(stderr.split())


# -- path 5: no template can freeze or kill the daemon -------------------------------------------

DOUBLING = (
    "{% set ns = namespace(s='xx') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}"
    "{% endfor %}{{ ns.s|length }}"
)
DOUBLING_NO_LOOP = "{% set s = 'xxxxxxxx' %}" + "{% set s = s ~ s %}" * 40 + "{{ s|length }}"

ATTACKS = [
    (POWER, "stopped: power too large"),
    ("{{ 10 ** 400 * 10 ** 400 }}", "stopped: power too large"),
    ("{{ 2 ** 100000000 }}", "stopped: power too large"),
    (DOUBLING, "stopped: the joined text would be"),
    (DOUBLING_NO_LOOP, "stopped: the joined text would be"),
    ("{{ ' '.center(2000000000) }}", "stopped: width 2,000,000,000 is over the limit"),
    ("{{ ' '|center(2000000000) }}", "stopped: width 2,000,000,000 is over the limit"),
    ("{{ '%02000000000d'|format(1) }}", "stopped: format width"),
    ("{{ '%.2000000000f'|format(1.0) }}", "stopped: format width"),
    ("{{ '{:>2000000000}'.format(1) }}", "stopped: format width"),
    ("{{ '{0:{1}}'.format(1, 2000000000) }}", "stopped: format width"),
    ("{{ 'x'.ljust(2000000000) }}", "stopped: width"),
    ("{{ 'x'.rjust(2000000000) }}", "stopped: width"),
    ("{{ 'x'.zfill(2000000000) }}", "stopped: width"),
    ("{{ ('a\\tb' * 1000).expandtabs(2000000) }}", "stopped: the expanded text would be"),
    ("{{ ('x' * 100000).replace('', 'y' * 100000) }}", "stopped: the replaced text would be"),
    ("{{ ('x' * 10000)|replace('x', 'y' * 100000) }}", "stopped: the replaced text would be"),
    ("{{ ','.join(['x' * 100000] * 100000) }}", "stopped: the joined text would be"),
    ("{{ (['x' * 100000] * 100000)|join }}", "stopped: the joined text would be"),
    ("{{ 'a\\nb'|indent(2000000000) }}", "stopped: indent 2,000,000,000 is over the limit"),
    ("{{ (' ' * 100000)|wordwrap(1, wrapstring='y' * 100000) }}", "stopped: the wrapped text"),
    ("{{ [1]|batch(2000000000, 0)|list }}", "stopped: batch size"),
    ("{{ [1, 2]|slice(2000000000)|list }}", "stopped: number of slices"),
    ("{{ ('x' * 100000)|tojson(2000000000) }}", "stopped: tojson indent"),
    ("{{ (5).to_bytes(2000000000, 'big') }}", "stopped: length 2,000,000,000"),
    ("{{ ([['x' * 100000]] * 100000)|sum(start=[]) }}", "not allowed: sum adds numbers only"),
    ("{% set l = ['x' * 100000] * 100000 %}{{ l }}", "stopped: the printed value would be"),
    ("{{ (['x' * 100000] * 100000)|map('upper')|list|length }}", "stopped: made more than"),
    ("{{ ('{0}' * 30000).format('x' * 100000)|length }}", "stopped: made more than"),
    (
        "{% set s %}{% for i in range(10000) %}{{ 'x' * 100000 }}{% endfor %}{% endset %}"
        "{{ s|length }}",
        "stopped: made more than",
    ),
    (
        "{% set l = [1] * 100000 %}{% for a in l %}{% for b in l %}{% endfor %}{% endfor %}",
        "stopped: took longer than 1 s",
    ),
    (
        "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}"
        "{{ f(40) }}",
        "stopped: took longer than 1 s",
    ),
    (
        "{% autoescape ' '|center(2000000000) %}x{% endautoescape %}",
        "syntax error: autoescape takes true or false",
    ),
    ("{{ " + "9" * 5000 + " }}", "cannot be used: ValueError"),
]


def _render_in_child(folder: str, budget: float, conn: Any) -> None:
    """In the forked child: no more than about 1.5 GB of address space, then one render."""
    with open("/proc/self/status") as status:
        vm = next(int(line.split()[1]) for line in status if line.startswith("VmSize:"))
    limit = vm * 1024 + 1_500_000_000
    resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))
    snapshot = parse(sorted(DEMO.glob("*.json"))[-1].read_bytes())
    _, variables = sample_vars(snapshot, EventKind.CALLED)
    started = time.monotonic()
    try:
        text = Renderer([Path(folder)], budget=Budget(seconds=budget)).render(
            "x", "called", variables
        )
        outcome = ("rendered", text[:200])
    except RenderError as exc:
        outcome = ("RenderError", str(exc))
    except BaseException as exc:  # reported to the parent, whatever it is
        outcome = (type(exc).__name__, str(exc)[:200])
    conn.send((*outcome, time.monotonic() - started))


def render_isolated(folder: Path, budget: float = 1.0, deadline: float = 30) -> tuple[str, ...]:
    """(outcome, message, seconds) of rendering x/called from `folder` in a forked child."""
    ctx = multiprocessing.get_context("fork")
    receive, send = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_render_in_child, args=(str(folder), budget, send))
    child.start()
    try:
        if not receive.poll(deadline):
            return ("no answer", f"still running after {deadline} s", deadline)
        return tuple(receive.recv())
    except EOFError:
        return ("died", f"exit code {child.exitcode}", 0.0)
    finally:
        if child.is_alive():
            child.kill()
        child.join(10)


@pytest.mark.parametrize(("source", "reason"), ATTACKS, ids=[f"a{i}" for i in range(len(ATTACKS))])
def test_path5_each_attack_is_stopped_with_its_reason_well_within_the_budget(
    tmp_path: Path, source: str, reason: str
):
    path = write(tmp_path / "en" / "x" / "called.j2", source)
    outcome, message, seconds = render_isolated(tmp_path)
    assert outcome == "RenderError", (outcome, message)
    assert reason in message
    assert message.startswith(str(path)), message
    assert float(seconds) < 10  # the budget is 1 s: a bound missed would show as minutes


def test_path5_legitimate_templates_still_work(tmp_path: Path):
    write(
        tmp_path / "en" / "x" / "called.j2",
        "{{ contest.selections|join(', ', attribute='name') }} | {{ '%s: %d (%.1f%%)'|format("
        "contest.name, contest.seats, 52.25) }} | {{ '{} {:,}'.format(contest.id, 1234567) }} | "
        "{{ contest.name|center(30)|trim }} | {{ ('-' * 5) ~ '>' }} | {{ 2 ** 10 }} | "
        "{% set ns = namespace(n=0) %}{% for s in contest.selections %}{% set ns.n = ns.n + "
        "s.votes %}{% endfor %}{{ ns.n|number }} | {{ contest.selections|map(attribute='votes')"
        "|sum }} | {{ contest.name|replace(' ', '_') }} | {{ 'a\\tb'.expandtabs(4) }}",
    )
    outcome, text, _ = render_isolated(tmp_path)
    assert outcome == "rendered", text
    assert text == (
        "Alya Rahman, Boran Seng, Chea Dara | D01 Northbay: 1 (52.2%) | cc-D01 1,234,567 | "
        "D01 Northbay | -----> | 1024 | 21,155 | 21155 | D01_Northbay | a   b"
    )


def test_path5_a_template_that_cannot_even_load_is_broken_not_a_crash(
    tmp_path: Path, secrets_file: Path, demo_files
):
    tpl = tmp_path / "tpl" / "en" / "x"
    tpl.mkdir(parents=True)
    (tpl / "called.j2").write_bytes(b"Result \xff\xfe {{ contest.name }}")  # not UTF-8
    write(tpl / "progress.j2", "{{ " + "9" * 5000 + " }}")  # Python refuses the literal
    accounts = X_ONLY.replace('["called"]', '["called", "progress"]')
    night = Night(tmp_path, accounts=accounts)  # the start-up check: must not raise
    problems = night.problems()
    assert any("called.j2: refused: not UTF-8 text" in p for p in problems), problems
    assert any("progress.j2: cannot be used: ValueError" in p for p in problems), problems
    night.feed(demo_files[:11])
    held = night.held()
    assert {r.event_kind for r in held} == {"called", "progress"}
    assert not night.texts()
    night.store.close()


@contextlib.contextmanager
def running_daemon(tmp_path: Path, cfg: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`broadcaster run --dry-run` in its own process group, killed with it whatever happens."""
    with (tmp_path / "daemon.log").open("w") as log:
        proc = subprocess.Popen(
            [*broadcaster_cmd(), "run", "--config", str(cfg), "--dry-run"],
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=log,
            start_new_session=True,
        )
        try:
            yield proc
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)


def healthz(port: int) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=3) as resp:
            return dict(json.loads(resp.read()))
    except urllib.error.HTTPError as exc:
        return dict(json.loads(exc.read()))
    except OSError:
        return None


def held_reasons(db: Path) -> list[str]:
    if not db.exists():
        return []
    conn = sqlite3.connect(db, timeout=10)
    try:
        rows = conn.execute("select hold_reason from posts where state = 'held'").fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        conn.close()
    return [r[0] for r in rows]


def test_path5_the_daemon_stays_responsive_while_templates_attack_it(tmp_path: Path):
    files = sorted(DEMO.glob("*.json"))
    replay = tmp_path / "feed"
    replay.mkdir()
    for p in files[:8]:
        shutil.copy(p, replay)
    tpl = tmp_path / "tpl" / "en" / "x"
    write(tpl / "called.j2", POWER)  # broken from the start: the start-up check meets it
    write(tpl / "progress.j2", "P1 {{ contest.name }} {{ event.threshold }}%")
    port = free_port()
    accounts = X_ONLY.replace('["called"]', '["called", "progress"]')
    cfg = write_config(
        tmp_path / "c.toml",
        source="feed",
        accounts=accounts,
        extra=f'[templates]\ndir = "tpl"\n[service]\nlisten = "127.0.0.1:{port}"\n',
    )
    with running_daemon(tmp_path, cfg) as proc:
        wait_for(lambda: (healthz(port) or {}).get("template_problems"))
        assert any("power too large" in p for p in healthz(port)["template_problems"])

        # While it runs, the operator's folder gets the attack in a template in use, too.
        write(tpl / "progress.j2", DOUBLING)
        wait_for(lambda: any("progress.j2" in p for p in healthz(port)["template_problems"]))

        # It keeps polling: the next snapshot (seats called) is read, its posts held with
        # the reason, and the health endpoint answers all along.
        shutil.copy(files[8], replay)
        shutil.copy(files[9], replay)
        wait_for(lambda: any("power too large" in r for r in held_reasons(tmp_path / "state.db")))
        assert all(
            "called.j2:1: stopped: power too large" in r
            for r in held_reasons(tmp_path / "state.db")
        )
        health = healthz(port)
        assert health is not None
        assert health["status"] == "ok"
        assert health["last_snapshot"]["name"] == files[9].name
        assert proc.poll() is None

        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=20)
    assert code == 0, (tmp_path / "daemon.log").read_text()[-3000:]


def test_paths_4_5_templates_lint_reports_each_attack_with_file_and_line(
    tmp_path: Path, secrets_file: Path, cli
):
    tpl = tmp_path / "tpl" / "en" / "x"
    write(tpl / "called.j2", "Called\n" + POWER)
    write(tpl / "progress.j2", '{% include "en/x/s.j2" %}')
    (tpl / "s.j2").symlink_to(secrets_file)
    accounts = X_ONLY.replace('["called"]', '["called", "progress"]')
    cfg = write_config(
        tmp_path / "c.toml",
        source="f",
        accounts=accounts,
        extra='[templates]\ndir = "tpl"\n[secrets]\nfile = "secrets.toml"\n',
    )
    result = cli("templates", "lint", "--config", str(cfg))
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"{tpl / 'called.j2'}:2: stopped: power too large" in result.stdout
    assert f"{tpl / 'progress.j2'}:1: {tpl / 's.j2'}: refused: it is a symbolic link" in (
        result.stdout
    )
    assert SECRET not in result.stdout + result.stderr


# -- path 13: new and included files are picked up, checked ------------------------------------


def test_path13_a_new_override_file_takes_effect_on_the_next_cycle(tmp_path: Path, demo_files):
    (tmp_path / "tpl").mkdir()
    night = Night(tmp_path)
    night.feed(demo_files[:10])
    first = night.texts()
    assert first
    assert not any(t.startswith("[TEST] OURS ") for t in first)  # the bundled template

    write(tmp_path / "tpl" / "en" / "x" / "called.j2", "OURS {{ contest.name }}")
    night.pipeline.maintain_templates()
    night.feed(demo_files[10:11])
    newer = night.texts()[len(first) :]
    assert newer
    assert all(t.startswith("[TEST] OURS ") for t in newer)
    night.store.close()


def test_path13_a_broken_new_override_keeps_the_bundled_one_until_fixed(tmp_path: Path, demo_files):
    (tmp_path / "tpl").mkdir()
    night = Night(tmp_path)
    night.feed(demo_files[:10])
    first = night.texts()
    path = write(tmp_path / "tpl" / "en" / "x" / "called.j2", "OURS {{ contest.nmae }}")
    night.pipeline.maintain_templates()
    assert [p.split(": unknown variable")[0] for p in night.problems()] == [f"{path}:1"]
    night.feed(demo_files[10:11])
    during = night.texts()[len(first) :]
    assert during
    assert not any("OURS" in t for t in during)
    assert not night.held()

    write(path, "OURS {{ contest.name }}")
    night.pipeline.maintain_templates()
    assert night.problems() == []
    night.feed(demo_files[11:12])
    after = night.texts()[len(first) + len(during) :]
    assert after
    assert all(t.startswith("[TEST] OURS ") for t in after)
    night.store.close()


def test_path13_an_edited_include_is_checked_and_reloaded(tmp_path: Path, demo_files):
    folder = tmp_path / "tpl" / "en" / "x"
    write(folder / "called.j2", '{% include "en/x/head.j2" %} {{ contest.name }}')
    head = write(folder / "head.j2", "H1")
    night = Night(tmp_path)
    night.feed(demo_files[:10])
    first = night.texts()
    assert first
    assert all(t.startswith("[TEST] H1 ") for t in first)

    write(head, "H2 {{ contest.nmae }}")  # a broken include: the last good version stays
    night.pipeline.maintain_templates()
    problems = night.problems()
    assert len(problems) == 1
    assert problems[0].startswith(f"{head}:1: unknown variable"), problems
    night.feed(demo_files[10:11])
    during = night.texts()[len(first) :]
    assert during
    assert all(t.startswith("[TEST] H1 ") for t in during)
    assert not night.held()

    write(head, "H3")
    night.pipeline.maintain_templates()
    assert night.problems() == []
    night.feed(demo_files[11:12])
    after = night.texts()[len(first) + len(during) :]
    assert after
    assert all(t.startswith("[TEST] H3 ") for t in after)
    night.store.close()


@pytest.fixture(autouse=True)
def _no_leftover_children() -> Iterator[None]:
    yield
    for child in multiprocessing.active_children():
        child.kill()
