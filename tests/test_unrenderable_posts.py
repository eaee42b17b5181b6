"""One post whose text cannot be made never stops the others (issue 13's leftovers): a post of a
burst is rendered just before it is sent, and held posts again after a template fix. An error
the data causes (a stored event its templates cannot read, a text the database refuses) holds
that one post, named, and the rest go out; a database outage holds nothing and is tried again.
A release after a template fix is in the audit trail, which is how the dispatcher sees it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

from broadcaster.domain.posts import HoldKind, PostState
from broadcaster.outbox.audit import entries
from tests.test_deferred_render import Night, _account, write_template

CALLED = 'events = ["called"]\n'
X_CALLED = _account("x-main", "x", CALLED)
FB_CALLED_ONE_A_DAY = (
    '\n[[accounts]]\nname = "fb-main"\nplatform = "facebook"\ndry_run = true\n'
    'events = ["called"]\nquota = [{posts = 1, seconds = 86400}]\n'
)
GOOD = "{{ contest.name }}"
# Fails on real contests yet passes the check (which would keep the last good version).
BROKEN = "{{ contest.name }} {{ contest.nope }}"
FIXED = "Fixed: {{ contest.name }}"


def _night(tmp_path: Path, files: list[Path], template: str | None, accounts: str = X_CALLED):
    """A burst of calls, rendered when sent (with X's "called" template, where given)."""
    if template is not None:
        write_template(tmp_path / "tpl", "x", "called", template)
    night = Night(tmp_path, accounts)
    night.feed(files[:11])
    return night


def _sql(night: Night, statement: str, *params: object) -> None:
    with night.store.engine.begin() as conn:
        conn.exec_driver_sql(statement, params)


def _unreadable(night: Night, event_id: int) -> None:
    """The event's stored context lacks what every template reads (as one written by another
    version might): a template cannot be blamed, nor the database."""
    _sql(night, "UPDATE events SET context = '{}' WHERE id = ?", event_id)


def _held_by_a_broken_template(
    tmp_path: Path, files: list[Path], accounts: str = X_CALLED
) -> tuple[Night, list[Any]]:
    """A burst whose X posts a template breaks when they are sent: held, all of them."""
    night = _night(tmp_path, files, GOOD, accounts)
    _break(night, tmp_path)
    night.dispatcher.drain()
    held = night.rows(PostState.HELD)
    assert len(held) > 1
    assert {r.account for r in held} == {"x-main"}
    return night, held


@contextmanager
def _snapshots_gone(night: Night) -> Iterator[None]:
    """A database fault while it lasts: the table every render reads is not there."""
    _sql(night, "ALTER TABLE snapshots RENAME TO snapshots_away")
    try:
        yield
    finally:
        _sql(night, "ALTER TABLE snapshots_away RENAME TO snapshots")


def _refuse_text_of(night: Night, post_id: int) -> None:
    """The database refuses any text for one post, at every try (as PostgreSQL refuses a NUL
    in a text column): the data's fault, not an outage."""
    _sql(
        night,
        "CREATE TRIGGER refuse_text BEFORE UPDATE OF text ON posts"
        f" WHEN OLD.id = {int(post_id)} AND NEW.text IS NOT NULL"
        " BEGIN SELECT RAISE(ABORT, 'this text is refused'); END",
    )


def _break(night: Night, tmp_path: Path) -> None:
    """X's "called" template broken after the burst was read: its posts fail when sent."""
    write_template(tmp_path / "tpl", "x", "called", BROKEN)
    night.pipeline.composer.refresh()
    night.dispatcher.composer.refresh()


def _fix(night: Night, tmp_path: Path) -> None:
    write_template(tmp_path / "tpl", "x", "called", FIXED)


def test_a_stored_event_its_templates_cannot_read_holds_that_post_and_the_rest_go_out(
    tmp_path: Path, demo_files: list[Path]
) -> None:
    # Not a template error: the event's stored context lacks what every template is rendered
    # from (as one written by another version might). Before, the exception ended every
    # dispatch run at this same post: nothing more went out, on its account or those after.
    night = _night(tmp_path, demo_files, None, X_CALLED + _account("fb", "facebook", CALLED))
    pending = night.rows(PostState.PENDING)
    broken = min(pending, key=lambda r: r.id).event_id
    _unreadable(night, broken)

    night.dispatcher.drain()  # does not raise

    held = night.rows(PostState.HELD)
    assert {r.event_id for r in held} == {broken}
    assert {r.account for r in held} == {"x-main", "fb"}
    assert all(r.hold_kind == HoldKind.TEMPLATE for r in held)
    assert all("stored event" in r.hold_reason and "KeyError" in r.hold_reason for r in held)
    expected = {(r.account, r.idempotency_key) for r in pending if r.event_id != broken}
    assert {(p["account"], p["idempotency_key"]) for p in night.sent()} == expected


def test_a_text_the_database_always_refuses_holds_that_post_and_the_rest_go_out(
    tmp_path: Path, demo_files: list[Path]
) -> None:
    night = _night(tmp_path, demo_files, None)
    pending = night.rows(PostState.PENDING)
    first = min(r.id for r in pending)
    _refuse_text_of(night, first)
    night.dispatcher.drain()
    (held,) = night.rows(PostState.HELD)
    assert held.id == first
    assert "IntegrityError: this text is refused" in held.hold_reason
    assert "SELECT" not in held.hold_reason  # the driver's error, not the statement
    assert len(night.sent()) == len(pending) - 1


def test_a_database_fault_while_rendering_at_send_holds_nothing(
    tmp_path: Path, demo_files: list[Path]
) -> None:
    # The database, not the post: the step fails as before and the post is tried again, never
    # held for good on a fault that passes.
    night = _night(tmp_path, demo_files, None)
    pending = night.rows(PostState.PENDING)
    with _snapshots_gone(night), pytest.raises(OperationalError):
        night.dispatcher.drain()
    assert not night.rows(PostState.HELD)
    night.dispatcher.drain()
    assert len(night.sent()) == len(pending)


def test_a_template_fix_releases_the_other_held_posts_past_one_whose_event_is_unreadable(
    tmp_path: Path, demo_files: list[Path]
) -> None:
    night = _night(tmp_path, demo_files, GOOD)
    pending = night.rows(PostState.PENDING)
    broken = min(pending, key=lambda r: r.id).event_id
    _unreadable(night, broken)
    _break(night, tmp_path)
    night.dispatcher.drain()
    assert len(night.rows(PostState.HELD)) == len(pending)  # one unreadable, the rest BROKEN

    _fix(night, tmp_path)
    # The unreadable one comes first; it stays held, and does not stop the others' release.
    assert night.pipeline.maintain_templates() == len(pending) - 1
    night.dispatcher.drain()
    assert [r.event_id for r in night.rows(PostState.HELD)] == [broken]
    assert len(night.sent()) == len(pending) - 1


def test_a_release_the_database_always_refuses_leaves_the_feed_read_and_the_rest_released(
    tmp_path: Path, demo_files: list[Path]
) -> None:
    night, held = _held_by_a_broken_template(tmp_path, demo_files)
    _refuse_text_of(night, max(r.id for r in held))
    _fix(night, tmp_path)
    assert night.pipeline.maintain_templates() == len(held) - 1
    assert night.pipeline.maintain_templates() == 0  # the pass ended: nothing due again
    night.feed(demo_files[11:12])  # the feed is still read


def test_a_database_outage_while_releasing_after_a_fix_leaves_the_release_due(
    tmp_path: Path, demo_files: list[Path]
) -> None:
    night, held = _held_by_a_broken_template(tmp_path, demo_files)
    _fix(night, tmp_path)
    with _snapshots_gone(night), pytest.raises(OperationalError):
        night.pipeline.maintain_templates()  # the fix is read, the database fails
    # The templates do not change again, yet the next cycle releases them.
    assert night.pipeline.maintain_templates() == len(held)
    assert night.pipeline.maintain_templates() == 0


def test_posts_released_after_a_template_fix_go_out_when_others_are_held_meanwhile(
    tmp_path: Path, demo_files: list[Path]
) -> None:
    # The dispatcher learns that old posts are pending again from the outbox's held count and
    # its newest audit entry. Released posts (-k) and as many others held at the same moment
    # (+k, as an approval account's new posts are) leave the count as it was: the release is
    # in the audit trail, so the dispatcher still sees it.
    night, held = _held_by_a_broken_template(tmp_path, demo_files, X_CALLED + FB_CALLED_ONE_A_DAY)
    waiting = [r for r in night.rows(PostState.PENDING) if r.account == "fb-main"]
    assert len(waiting) >= len(held), "fb-main's posts wait for its budget"

    _fix(night, tmp_path)
    assert night.pipeline.maintain_templates() == len(held)
    for row in waiting[: len(held)]:
        night.store.mark_held(row.id, HoldKind.OPERATOR, "held meanwhile")
    night.dispatcher.drain()

    sent = {p["idempotency_key"] for p in night.sent() if p["account"] == "x-main"}
    assert sent == {r.idempotency_key for r in held}
    trail = entries(night.store, action="release")
    assert {e.target for e in trail} == {f"post #{r.id}" for r in held}
    assert {e.actor for e in trail} == {"broadcaster"}
