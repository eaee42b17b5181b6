"""Templates: every template of a language and where it comes from, an editor with a live
preview as each platform would post it, saving after lint, and earlier versions to restore."""

from __future__ import annotations

from collections import OrderedDict
from threading import Lock
from urllib.parse import urlencode

from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from broadcaster.console import template_files as tf
from broadcaster.console.app import Ctx, page
from broadcaster.console.users import Role
from broadcaster.content.cards.draw import CardStyle, render_card
from broadcaster.content.compose import locale_for
from broadcaster.core.config import LANGUAGES, AccountConfig
from broadcaster.publishers import capabilities_for
from broadcaster.publishers.base import CardSpec


def _name(ctx: Ctx) -> tf.Name:
    return tf.Name.parse(ctx.field("name"))


@page(Role.VIEWER)
def templates_list(ctx: Ctx) -> Response:
    """The templates of one language, and which folder provides each."""
    language = ctx.field("lang") or ctx.config.templates.language
    if language not in LANGUAGES:
        language = ctx.config.templates.language
    target: tf.Folder | None
    problem: str | None
    try:
        target = tf.save_folder(ctx.config, None)
    except tf.TemplateFileError as exc:
        target, problem = None, str(exc)
    else:
        problem = None
    return ctx.render(
        "templates.html",
        language=language,
        languages=LANGUAGES,
        rows=tf.listing(ctx.config, language),
        target=target,
        problem=problem,
    )


def _contests(ctx: Ctx, night: str) -> list[tuple[str, str]]:
    try:
        snapshot = tf.snapshot_for(ctx.config, ctx.store, night)
    except tf.TemplateFileError:
        return []
    return [(c.id, c.name) for c in snapshot.contests[:300]]


@page(Role.VIEWER)
def template_editor(ctx: Ctx) -> Response:
    """One template: its text, a live preview per platform, its saved versions."""
    try:
        name = _name(ctx)
        folder_key = ctx.field("folder") or None
        source, origin = tf.source_of(ctx.config, name, folder_key)
    except tf.TemplateFileError as exc:
        return ctx.render("refused.html", status=404, message=str(exc))
    target: tf.Folder | None
    problem: str | None
    try:
        target = tf.save_folder(ctx.config, origin.key if origin.writable else folder_key)
    except tf.TemplateFileError as exc:
        target, problem = None, str(exc)
    else:
        problem = None
    night = ctx.field("night") or ("last" if ctx.store.last_snapshot_id() else "fictional-mid")
    version = ctx.field("version")
    if version and target is not None:
        try:
            source = tf.read_version(target, name, version)
        except tf.TemplateFileError as exc:
            ctx.flash("error", str(exc))
            version = ""
    return ctx.render(
        "template_edit.html",
        name=name,
        source=source,
        origin=origin,
        target=target,
        problem=problem,
        versions=tf.versions(target, name) if target is not None else [],
        shown_version=version,
        night=night,
        nights=tf.NIGHTS,
        contest=ctx.field("contest"),
        contests=_contests(ctx, night),
        platforms=tf.users_of(ctx.config, name),
        preview=_preview(ctx, name, source, night, ctx.field("contest")),
    )


def _preview(ctx: Ctx, name: tf.Name, source: str, night: str, contest: str) -> dict[str, object]:
    try:
        items = tf.preview_draft(
            ctx.config, ctx.store, name, source, night=night, contest=contest or None
        )
    except tf.TemplateFileError as exc:
        return {"items": [], "error": str(exc)}
    return {"items": items, "error": None}


@page(Role.EDITOR, fragment=True)
def template_preview(ctx: Ctx) -> Response:
    """The draft as each platform would post it (the editor asks as it is typed)."""
    try:
        name = _name(ctx)
    except tf.TemplateFileError as exc:
        failed = {"items": [], "error": str(exc)}
        return ctx.fragment(
            "template_preview.html", name=None, preview=failed, night="", contest=""
        )
    night = ctx.field("night") or "fictional-mid"
    contest = ctx.field("contest")
    return ctx.fragment(
        "template_preview.html",
        name=name,
        preview=_preview(ctx, name, ctx.field("source"), night, contest),
        night=night,
        contest=contest,
    )


_CARDS: OrderedDict[tuple[str, ...], bytes] = OrderedDict()
_CARDS_LOCK = Lock()


@page(Role.VIEWER)
def template_card(ctx: Ctx) -> Response:
    """The result card that goes with a preview (cards are drawn from the results, not from
    the template text)."""
    platform = ctx.field("platform")
    kind = ctx.field("kind")
    lang = ctx.field("lang")
    night = ctx.field("night") or "fictional-mid"
    contest = ctx.field("contest")
    if platform not in tf.PLATFORMS or lang not in LANGUAGES:
        return PlainTextResponse("no such card", status_code=404)
    spec = capabilities_for(platform).card
    if spec is None:
        return PlainTextResponse(f"{platform} takes no card", status_code=404)
    key = (platform, kind, lang, night, contest, str(ctx.store.last_snapshot_id()))
    with _CARDS_LOCK:
        cached = _CARDS.get(key)
    if cached is None:
        try:
            snapshot = tf.snapshot_for(ctx.config, ctx.store, night)
            _, variables = tf.variables_for(ctx.config, snapshot, kind, contest, platform, lang)
        except tf.TemplateFileError as exc:
            return PlainTextResponse(str(exc), status_code=404)
        account = AccountConfig(
            name="card",
            platform=platform,
            language=lang,  # type: ignore[arg-type]
        )
        out = ctx.console.scratch / f"preview-{abs(hash(key))}.{_ext(spec)}"
        render_card(
            variables,
            spec,
            locale_for(ctx.config, account),
            CardStyle.from_config(ctx.config.cards, ctx.config.base_dir),
            out,
        )
        cached = out.read_bytes()
        out.unlink(missing_ok=True)
        with _CARDS_LOCK:
            _CARDS[key] = cached
            while len(_CARDS) > 32:
                _CARDS.popitem(last=False)
    media = "image/jpeg" if spec.format.upper() == "JPEG" else "image/png"
    return Response(cached, media_type=media)


def _ext(spec: CardSpec) -> str:
    return "jpg" if spec.format.upper() == "JPEG" else "png"


@page(Role.EDITOR)
def template_save(ctx: Ctx) -> Response:
    """Lint the text, then write it into an operator's folder, keeping the version."""
    try:
        name = _name(ctx)
        folder_key = ctx.field("folder") or None
        source = ctx.field("source")
        restoring = ctx.field("restore")
        if restoring:
            source = tf.read_version(tf.save_folder(ctx.config, folder_key), name, restoring)
        saved = tf.save(ctx.config, name, source, user=ctx.user.name, folder_key=folder_key)
    except tf.TemplateFileError as exc:
        ctx.flash("error", str(exc))
        return ctx.back("/templates")
    query = {"name": str(name), **({"folder": folder_key} if folder_key else {})}
    back = "/templates/edit?" + urlencode(query)
    if not saved.ok:
        ctx.flash("error", "not saved, lint found: " + " | ".join(saved.problems))
        if not restoring:
            # Keep the operator's draft on screen: show the editor again with it.
            return _editor_with(ctx, name, source, folder_key)
        return ctx.back(back)
    what = f"restored version {restoring}" if restoring else "saved"
    ctx.console.record(ctx.user.name, "template-save", str(saved.path), what)
    ctx.flash("ok", f"{name} {what} to {saved.path}; the daemon picks it up on its next cycle")
    return ctx.back(back)


def _editor_with(ctx: Ctx, name: tf.Name, source: str, folder_key: str | None) -> Response:
    _, origin = tf.source_of(ctx.config, name, folder_key)
    target = tf.save_folder(ctx.config, origin.key if origin.writable else folder_key)
    night = ctx.field("night") or "fictional-mid"
    return ctx.render(
        "template_edit.html",
        status=422,
        name=name,
        source=source,
        origin=origin,
        target=target,
        problem=None,
        versions=tf.versions(target, name),
        shown_version="",
        night=night,
        nights=tf.NIGHTS,
        contest=ctx.field("contest"),
        contests=_contests(ctx, night),
        platforms=tf.users_of(ctx.config, name),
        preview=_preview(ctx, name, source, night, ctx.field("contest")),
    )


def routes() -> list[BaseRoute]:
    return [
        Route("/templates", templates_list, methods=["GET"]),
        Route("/templates/edit", template_editor, methods=["GET"]),
        Route("/templates/preview", template_preview, methods=["POST"]),
        Route("/templates/card", template_card, methods=["GET"]),
        Route("/templates/save", template_save, methods=["POST"]),
    ]
