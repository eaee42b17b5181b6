"""Editing templates in the console: the live preview before saving, lint on save, atomic
writes into the operator's folder only, kept versions and restoring them, and no way out of
the folder."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from broadcaster.console import template_files as tf
from broadcaster.console.app import create_app
from broadcaster.console.users import UserStore
from broadcaster.core.paths import DEFAULT_TEMPLATES
from broadcaster.outbox.audit import entries
from broadcaster.outbox.store import Store
from tests.console_support import FAST_HASHER, demo_night, login, make_env

NAME = "en/x/called.j2"


@pytest.fixture(scope="module")
def night_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return demo_night(tmp_path_factory.mktemp("night"))


@pytest.fixture
def env(tmp_path: Path, night_db: Path) -> tuple[Path, Any]:
    return make_env(tmp_path, night_db, templates=f'dir = "{tmp_path / "mine"}"')


@pytest.fixture
def app(env: tuple[Path, Any]) -> Iterator[TestClient]:
    path, config = env
    users = UserStore(path.parent / "console-users.json", hasher=FAST_HASHER)
    with TestClient(create_app(config, users=users), base_url="http://127.0.0.1") as client:
        yield client


def bundled(name: str = NAME) -> str:
    return (DEFAULT_TEMPLATES / name).read_text(encoding="utf-8")


def preview(app: TestClient, token: str, source: str, **fields: str) -> str:
    answer = app.post(
        "/templates/preview",
        data={"name": NAME, "source": source, "night": "fictional-final", **fields},
        headers={"X-CSRF-Token": token},
    )
    assert answer.status_code == 200, answer.text[:300]
    return answer.text


def test_list_and_editor_show_where_each_template_comes_from(app: TestClient):
    login(app, "vera")
    listing = app.get("/templates?lang=en").text
    assert "en/default/called.j2" in listing
    assert "bundled default" in listing
    page = app.get(f"/templates/edit?name={NAME}").text
    assert "Shown from bundled default" in page
    assert "Seats declared" in page  # the bundled text, in the editor
    assert "/ 280 weighted characters" in page  # the preview, counted X's way
    assert "readonly" in page  # a viewer reads, never edits
    assert app.get("/templates/edit?name=../../etc/passwd").status_code == 404


def test_preview_follows_the_draft_before_anything_is_saved(app: TestClient, env: Any):
    token = login(app, "edda")
    draft = "BREAKING {{ contest.name }} for the preview"
    html = preview(app, token, draft, contest="cc-D01")
    assert "BREAKING D01 Northbay for the preview" in html
    assert "[TEST] BREAKING" in html  # the test marker, as the pipeline adds it
    count = int(re.search(r"(\d+) / 280 weighted characters", html).group(1))
    assert count == len("[TEST] BREAKING D01 Northbay for the preview")
    assert "/templates/card?" in html  # X takes a card
    assert not (env[0].parent / "mine" / NAME).exists()  # nothing written by a preview
    too_long = preview(app, token, "{{ contest.name }} " + "x" * 300)
    assert "over the platform limit" in too_long
    broken = preview(app, token, "{{ contest.nme }}")
    assert "unknown variable" in broken
    syntax = preview(app, token, "{% if %}")
    assert "syntax" in syntax.lower() or "unexpected" in syntax.lower()


def test_preview_against_the_last_snapshot_and_other_kinds(app: TestClient):
    token = login(app, "edda")
    answer = app.post(
        "/templates/preview",
        data={
            "name": "en/default/tally.j2",
            "source": "Seats {{ tally.declared_seats }}",
            "night": "last",
        },
        headers={"X-CSRF-Token": token},
    ).text
    # The default tally file is used by the platforms without a tally file of their own.
    platforms = set(re.findall(r'data-preview-platform="([a-z]+)"', answer))
    assert platforms == set(
        tf.users_of(app.app.state.console.config, tf.Name.parse("en/default/tally.j2"))
    )
    assert "Seats 24" in answer


def test_preview_card_is_an_image(app: TestClient):
    login(app, "vera")
    card = app.get("/templates/card?platform=x&kind=called&lang=en&night=fictional-final")
    assert card.status_code == 200
    assert card.content.startswith(b"\x89PNG")
    tiktok = app.get("/templates/card?platform=tiktok&kind=tally&lang=km&night=fictional-mid")
    assert tiktok.headers["content-type"] == "image/jpeg"
    assert app.get("/templates/card?platform=youtube&kind=called&lang=en").status_code == 404


def test_save_lints_writes_the_override_and_keeps_every_version(app: TestClient, env: Any):
    path, config = env
    mine = path.parent / "mine"
    token = login(app, "edda")
    first = "{{ contest.name }}: called (v1)"
    answer = app.post(
        "/templates/save",
        data={"csrf": token, "name": NAME, "folder": "dir", "source": first},
        follow_redirects=True,
    )
    assert "saved" in answer.text
    target = mine / NAME
    assert target.read_text() == first
    assert bundled() != first  # the bundled default is untouched
    app.post(
        "/templates/save",
        data={"csrf": token, "name": NAME, "folder": "dir", "source": "{{ contest.name }} (v2)"},
    )
    assert target.read_text() == "{{ contest.name }} (v2)"
    versions = tf.versions(tf.folder_for(config, "dir"), tf.Name.parse(NAME))
    assert [v.by for v in versions] == ["edda", "edda"]
    # A draft that fails lint is not written; the editor shows it again with the problem.
    bad = app.post(
        "/templates/save",
        data={"csrf": token, "name": NAME, "folder": "dir", "source": "{{ contest.nme }}"},
    )
    assert bad.status_code == 422
    assert "not saved" in bad.text
    assert "contest.nme" in bad.text
    assert target.read_text() == "{{ contest.name }} (v2)"
    # Restoring the first version saves it again, as a new version.
    oldest = versions[-1].id
    app.post(
        "/templates/save",
        data={"csrf": token, "name": NAME, "folder": "dir", "restore": oldest},
    )
    assert target.read_text() == first
    assert len(tf.versions(tf.folder_for(config, "dir"), tf.Name.parse(NAME))) == 3
    store = Store(config.database_url)
    try:
        saves = entries(store, limit=5, action="template-save")
    finally:
        store.close()
    assert saves[0].actor == "edda"
    assert "restored" in (saves[0].detail or "")
    assert (
        f"version {oldest}"
        in app.get(f"/templates/edit?name={NAME}&folder=dir&version={oldest}").text
    )


def test_an_existing_file_is_kept_as_a_version_before_the_first_save(app: TestClient, env: Any):
    path, config = env
    target = path.parent / "mine" / NAME
    target.parent.mkdir(parents=True)
    target.write_text("{{ contest.name }} hand-written")
    token = login(app, "edda")
    app.post(
        "/templates/save",
        data={"csrf": token, "name": NAME, "folder": "dir", "source": "{{ contest.name }} new"},
    )
    versions = tf.versions(tf.folder_for(config, "dir"), tf.Name.parse(NAME))
    assert [v.by for v in versions] == ["edda", "as-it-was"]
    kept = tf.read_version(tf.folder_for(config, "dir"), tf.Name.parse(NAME), versions[1].id)
    assert kept == "{{ contest.name }} hand-written"


def test_saving_refuses_symbolic_links_and_the_bundled_defaults(tmp_path: Path, env: Any):
    path, config = env
    mine = path.parent / "mine"
    outside = tmp_path / "outside"
    (outside / "x").mkdir(parents=True)
    mine.mkdir()
    os.symlink(outside, mine / "en")
    name = tf.Name.parse(NAME)
    with pytest.raises(tf.TemplateFileError, match="symbolic link"):
        tf.save(config, name, "{{ contest.name }}", user="edda", folder_key="dir")
    assert not (outside / "x" / "called.j2").exists()
    os.unlink(mine / "en")
    (mine / "en" / "x").mkdir(parents=True)
    os.symlink(outside / "target.j2", mine / NAME)
    with pytest.raises(tf.TemplateFileError, match="symbolic link"):
        tf.save(config, name, "{{ contest.name }}", user="edda", folder_key="dir")
    assert not (outside / "target.j2").exists()
    before = bundled()
    pointed = config.with_overrides(
        templates=config.templates.model_copy(update={"dir": str(DEFAULT_TEMPLATES)})
    )
    with pytest.raises(tf.TemplateFileError, match="bundled defaults"):
        tf.save(pointed, name, "{{ contest.name }}", user="edda", folder_key="dir")
    assert bundled() == before


@pytest.mark.parametrize(
    "name",
    [
        "../x/called.j2",
        "en/x/../../called.j2",
        "en/x/called.txt",
        "fr/x/called.j2",
        "en/x/Called.j2",
    ],
)
def test_only_template_names_are_accepted(name: str):
    with pytest.raises(tf.TemplateFileError):
        tf.Name.parse(name)


def test_without_a_templates_folder_saving_is_refused(tmp_path: Path, night_db: Path):
    path, config = make_env(tmp_path, night_db)
    with pytest.raises(tf.TemplateFileError, match=r"\[templates\] dir"):
        tf.save(config, tf.Name.parse(NAME), "{{ contest.name }}", user="edda")
    users = UserStore(path.parent / "console-users.json", hasher=FAST_HASHER)
    with TestClient(create_app(config, users=users), base_url="http://127.0.0.1") as client:
        login(client, "edda")
        assert "set [templates] dir" in client.get("/templates").text


def test_a_saved_template_is_what_the_daemon_renders(env: Any):
    from broadcaster.content.compose import Composer
    from broadcaster.content.samples import sample_vars

    _path, config = env
    tf.save(config, tf.Name.parse(NAME), "SAVED {{ contest.name }}", user="edda")
    final = tf.fictional_night()[1]
    event, variables = sample_vars(final, tf.EventKind.CALLED, contest_id="cc-D01")
    account = next(a for a in config.accounts if a.platform == "x")
    parts = Composer(config, dry_run=True).compose_text(event, account, variables)
    assert parts[0].text == "[TEST] SAVED D01 Northbay"


def test_an_accounts_own_folder_is_edited_in_place(env: Any, tmp_path: Path):
    _, config = env
    own = tmp_path / "x-only"
    (own / "en" / "x").mkdir(parents=True)
    (own / NAME).write_text("{{ contest.name }} (x's own)")
    accounts = [
        a.model_copy(update={"templates": str(own)}) if a.platform == "x" else a
        for a in config.accounts
    ]
    config = config.with_overrides(accounts=accounts)
    name = tf.Name.parse(NAME)
    source, origin = tf.source_of(config, name, "account:x-demo")
    assert source == "{{ contest.name }} (x's own)"
    assert origin.key == "account:x-demo"
    assert tf.source_of(config, name)[1].key == "bundled"  # not named: the shared stack
    listed = dict(tf.listing(config, "en"))
    assert [f.key for f in listed[name]] == ["account:x-demo", "bundled"]
    saved = tf.save(
        config, name, "{{ contest.name }} (x, edited)", user="edda", folder_key="account:x-demo"
    )
    assert saved.ok
    assert (own / NAME).read_text() == "{{ contest.name }} (x, edited)"
    assert not (tmp_path / "mine" / NAME).exists()
