"""Template files as the console edits them: where each one lives, a preview of a draft as each
platform would post it, lint before saving, atomic writes, and every saved version kept.

A template is named `<language>/<platform or default>/<event kind>.j2`, and only such names are
accepted, so no request can name another file. Edits are written to an operator's folder (the
`[templates] dir`, or an account's own folder), never to the bundled defaults: saving a bundled
template creates its override. Nothing is written through a symbolic link or outside the folder.
Each save keeps the text in `<folder>/.versions/<name>/<time>--<user>.j2`, from which any earlier
version can be restored (which saves it again, after lint, as a new version).
"""

from __future__ import annotations

import os
import re
import stat
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import TemplateError, TemplateSyntaxError

from broadcaster.content.compose import Composer
from broadcaster.content.lint import demo_snapshots
from broadcaster.content.render import FALLBACK, RenderError
from broadcaster.content.samples import SampleError, display_from, sample_vars
from broadcaster.core.config import LANGUAGES, AccountConfig, Config
from broadcaster.core.paths import DEFAULT_TEMPLATES
from broadcaster.domain.events import TEMPLATED_KINDS, Event, EventKind
from broadcaster.domain.model import Snapshot
from broadcaster.ingest.differ import rules_from
from broadcaster.publishers import capabilities_for, real_platforms, text_limits

PLATFORMS = real_platforms()  # the registry's: a new platform's templates are editable too
KINDS = tuple(k.value for k in TEMPLATED_KINDS)
NAME = re.compile(
    rf"^({'|'.join(LANGUAGES)})/({'|'.join((*PLATFORMS, 'dryrun', FALLBACK))})/"
    rf"({'|'.join(KINDS)})\.j2$"
)
VERSION = re.compile(r"^\d{8}T\d{12}Z--[A-Za-z0-9_.-]{1,64}\.j2$")
VERSIONS = ".versions"
MAX_SOURCE = 100_000
NIGHTS = {
    "last": "the last snapshot received",
    "fictional-mid": "the fictional night, half counted",
    "fictional-final": "the fictional night, all counted",
}
_UNIT = {"chars": "characters", "utf16": "UTF-16 units", "x-weighted": "weighted characters"}


class TemplateFileError(ValueError):
    """The template cannot be read, previewed or saved; the message says why."""


@dataclass(frozen=True, slots=True)
class Name:
    language: str
    platform: str  # a platform, or "default"
    kind: str

    @classmethod
    def parse(cls, name: str) -> Name:
        match = NAME.match(name or "")
        if not match:
            raise TemplateFileError(
                f"{name!r} is not a template name such as en/x/called.j2 (language, platform "
                "or default, event kind)"
            )
        return cls(*match.groups())

    def __str__(self) -> str:
        return f"{self.language}/{self.platform}/{self.kind}.j2"


@dataclass(frozen=True, slots=True)
class Folder:
    key: str  # "dir", "account:NAME" or "bundled"
    label: str
    path: Path
    writable: bool


def folders(config: Config) -> list[Folder]:
    """Where templates come from, most specific first: accounts' own folders, the
    `[templates] dir`, the bundled defaults."""
    out: list[Folder] = []
    seen: set[Path] = set()
    for account in config.accounts:
        path = config.path(account.templates)
        if path is not None and path not in seen:
            seen.add(path)
            out.append(Folder(f"account:{account.name}", f"{account.name}'s folder", path, True))
    own = config.path(config.templates.dir)
    if own is not None and own not in seen:
        out.append(Folder("dir", "your templates folder", own, True))
    out.append(Folder("bundled", "bundled default", DEFAULT_TEMPLATES, False))
    return out


def folder_for(config: Config, key: str) -> Folder:
    for folder in folders(config):
        if folder.key == key:
            return folder
    raise TemplateFileError(f"no template folder {key!r} in this configuration")


def save_folder(config: Config, key: str | None) -> Folder:
    """Where a save goes: the folder named (an operator's), else `[templates] dir`."""
    if key and key != "bundled":
        return folder_for(config, key)
    own = [f for f in folders(config) if f.key == "dir"]
    if not own:
        raise TemplateFileError(
            "set [templates] dir in the configuration to a folder of your own: the console "
            "saves edited templates there and never changes the bundled defaults"
        )
    return own[0]


def _inside(root: Path, name: str) -> Path:
    """`root/name`, refusing a symbolic link anywhere below `root`, a path leaving it, and the
    bundled defaults."""
    real_root = root.resolve()
    bundled = DEFAULT_TEMPLATES.resolve()
    if real_root == bundled or bundled in real_root.parents:
        raise TemplateFileError(f"{root} holds the bundled defaults, which are never edited")
    path = real_root / name
    current = real_root
    for part in Path(name).parts:
        current = current / part
        try:
            mode = os.lstat(current).st_mode
        except FileNotFoundError:
            break
        if stat.S_ISLNK(mode):
            raise TemplateFileError(f"{current} is a symbolic link; it is not followed")
    if real_root not in path.parents:
        raise TemplateFileError(f"{name} leaves {root}")
    return path


def source_of(config: Config, name: Name, folder_key: str | None = None) -> tuple[str, Folder]:
    """The text of a template: from the named folder if it has the file, else from the first
    folder that does (accounts' folders only when named)."""
    order = folders(config)
    if folder_key:
        start = [f.key for f in order].index(folder_for(config, folder_key).key)
        order = order[start:]
    order = [f for f in order if f.key == folder_key or not f.key.startswith("account:")]
    for folder in order:
        path = folder.path / str(name)
        if path.is_symlink():
            continue
        try:
            return path.read_text(encoding="utf-8"), folder
        except FileNotFoundError:
            continue
        except (OSError, UnicodeDecodeError) as exc:
            raise TemplateFileError(f"{path}: cannot read it ({exc})") from None
    raise TemplateFileError(f"no file {name} in any template folder")


def listing(config: Config, language: str) -> list[tuple[Name, list[Folder]]]:
    """Every template name of a language with the folders that have a file for it."""
    rows = []
    for platform in (FALLBACK, *PLATFORMS):
        for kind in KINDS:
            name = Name(language, platform, kind)
            found = [f for f in folders(config) if (f.path / str(name)).is_file()]
            rows.append((name, found))
    return rows


def users_of(config: Config, name: Name) -> list[str]:
    """The platforms whose posts this file writes: its own, or, for a default file, those
    without a file of their own in the language."""
    if name.platform != FALLBACK:
        return [name.platform]
    using = []
    for platform in PLATFORMS:
        own = Name(name.language, platform, name.kind)
        if not any((f.path / str(own)).is_file() for f in folders(config)):
            using.append(platform)
    return using


# -- drafts: lint and preview ------------------------------------------------------------------


def _draft_account(name: Name, platform: str, draft_dir: Path) -> AccountConfig:
    """A stand-in account whose own folder holds the draft, so it overrides every other file
    and the rest of the stack (includes, other kinds) is the configuration's."""
    return AccountConfig(
        name=f"draft-{platform}",
        platform=platform,
        language=name.language,  # type: ignore[arg-type]
        templates=str(draft_dir),
    )


def _write_draft(draft_dir: Path, name: Name, source: str) -> None:
    path = draft_dir / str(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(source, encoding="utf-8")


def _check_size(source: str) -> None:
    if len(source) > MAX_SOURCE:
        raise TemplateFileError(f"the template is {len(source)} characters; {MAX_SOURCE} at most")


def lint_draft(config: Config, name: Name, source: str) -> list[str]:
    """Problems with a draft, as `name:line: message`, checked as the daemon checks an edited
    template before using it: compiled in the sandbox and rendered against the fictional
    night's contexts within each platform's limit."""
    _check_size(source)
    problems: dict[str, None] = {}
    with tempfile.TemporaryDirectory(prefix="broadcaster-draft-") as tmp:
        draft_dir = Path(tmp)
        _write_draft(draft_dir, name, source)
        composer = Composer(config, dry_run=True)
        for platform in users_of(config, name) or ["dryrun"]:
            renderer = composer.renderer(_draft_account(name, platform, draft_dir))
            try:
                template = renderer.env.get_template(str(name))
                composer.lint(renderer, template, platform, name.kind)
            except TemplateSyntaxError as exc:
                problems[f"{name}:{exc.lineno}: syntax error: {exc.message}"] = None
            except TemplateError as exc:
                problems[f"{name}: {exc}"] = None
            except RenderError as exc:
                problems[_relative(str(exc), draft_dir) + f" (on {platform})"] = None
            except (SyntaxError, RecursionError, MemoryError) as exc:
                problems[f"{name}: template too complex: {type(exc).__name__}"] = None
    return list(problems)


def _relative(text: str, draft_dir: Path) -> str:
    return text.replace(str(draft_dir) + os.sep, "")


@cache
def fictional_night() -> tuple[Snapshot, Snapshot]:

    night = demo_snapshots()
    return night[len(night) // 2], night[-1]


def snapshot_for(config: Config, store: Any, night: str) -> Snapshot:
    if night == "last":
        last = store.last_accepted()
        if last is None:
            raise TemplateFileError("no snapshot has been received yet: use the fictional night")
        snapshot = last[0]
    elif night in ("fictional-mid", "fictional-final"):
        mid, final = fictional_night()
        snapshot = mid if night == "fictional-mid" else final
    else:
        raise TemplateFileError(f"unknown night {night!r}")
    if config.feed.is_test and not snapshot.is_test:
        snapshot = replace(snapshot, is_test=True)
    return snapshot


def variables_for(
    config: Config, snapshot: Snapshot, kind: str, contest: str | None, platform: str, lang: str
) -> tuple[Event, dict[str, Any]]:
    """The template variables of an example event of `kind`, as `broadcaster preview` makes."""
    if kind not in KINDS:
        raise TemplateFileError(f"unknown event kind {kind!r}")
    try:
        return sample_vars(
            snapshot,
            EventKind(kind),
            contest_id=contest or None,
            timezone=config.election.timezone,
            account={"name": f"{platform} account", "platform": platform, "language": lang},
            rules=rules_from(config),
            election_name=config.election.name,
            issuer=config.election.issuer,
            display=display_from(config),
        )
    except SampleError as exc:
        raise TemplateFileError(str(exc)) from None


@dataclass(frozen=True, slots=True)
class Preview:
    platform: str
    parts: list[str]
    title: str | None
    count: int  # of the first part (or of the whole text when it does not fit)
    limit: int
    unit: str
    problem: str | None = None

    @property
    def card(self) -> bool:
        return capabilities_for(self.platform).card is not None


def preview_draft(
    config: Config, store: Any, name: Name, source: str, *, night: str, contest: str | None
) -> list[Preview]:
    """The draft rendered for each platform that uses it, as the platform would get it."""
    _check_size(source)
    snapshot = snapshot_for(config, store, night)
    out = []
    with tempfile.TemporaryDirectory(prefix="broadcaster-draft-") as tmp:
        draft_dir = Path(tmp)
        _write_draft(draft_dir, name, source)
        composer = Composer(config, dry_run=True)
        for platform in users_of(config, name) or ["dryrun"]:
            account = _draft_account(name, platform, draft_dir)
            limit, _ = text_limits(platform, config.limits)
            unit = _UNIT[limit.counter]
            event, variables = variables_for(
                config, snapshot, name.kind, contest, platform, name.language
            )
            try:
                parts = composer.compose_text(event, account, variables)
            except RenderError as exc:
                raw = _raw(composer, account, name, variables)
                out.append(
                    Preview(
                        platform,
                        [raw] if raw else [],
                        None,
                        limit.count(raw) if raw else 0,
                        limit.limit,
                        unit,
                        _relative(str(exc), draft_dir),
                    )
                )
                continue
            out.append(
                Preview(
                    platform,
                    [p.text for p in parts],
                    parts[0].title,
                    limit.count(parts[0].text),
                    limit.limit,
                    unit,
                )
            )
    return out


def _raw(composer: Composer, account: AccountConfig, name: Name, variables: dict[str, Any]) -> str:
    """The draft's text before the platform's limit is applied (to show what is too long)."""
    try:
        return composer.renderer(account).render(account.platform, name.kind, variables)
    except RenderError:
        return ""


# -- saving and versions -----------------------------------------------------------------------


def _stamp(now: datetime) -> str:
    return now.astimezone(UTC).strftime("%Y%m%dT%H%M%S%fZ")


def _atomic_write(path: Path, text: str) -> None:
    """Write beside the file, fsync, rename over it: the daemon never reads half a template."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, 0o644)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


@dataclass(frozen=True, slots=True)
class Version:
    id: str  # its file name
    at: datetime
    by: str


def _versions_dir(folder: Folder, name: Name) -> Path:
    return _inside(folder.path, f"{VERSIONS}/{name.language}/{name.platform}/{name.kind}")


def versions(folder: Folder, name: Name) -> list[Version]:
    """The saved versions of a file, newest first."""
    try:
        where = _versions_dir(folder, name)
        files = [p.name for p in where.iterdir() if VERSION.match(p.name) and p.is_file()]
    except (FileNotFoundError, TemplateFileError):
        return []
    out = []
    for file_name in sorted(files, reverse=True):
        stamp, _, by = file_name.removesuffix(".j2").partition("--")
        at = datetime.strptime(stamp, "%Y%m%dT%H%M%S%fZ").replace(tzinfo=UTC)
        out.append(Version(file_name, at, by))
    return out


def read_version(folder: Folder, name: Name, version: str) -> str:
    if not VERSION.match(version):
        raise TemplateFileError(f"{version!r} is not a version of {name}")
    path = _inside(folder.path, f"{VERSIONS}/{name.language}/{name.platform}/{name.kind}/{version}")
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TemplateFileError(f"no version {version} of {name}") from None


def _keep_version(folder: Folder, name: Name, text: str, by: str, now: datetime) -> None:
    where = _versions_dir(folder, name)
    where.mkdir(parents=True, exist_ok=True)
    _inside(folder.path, f"{VERSIONS}/{name.language}/{name.platform}/{name.kind}")  # no links
    _atomic_write(where / f"{_stamp(now)}--{by}.j2", text)


@dataclass(frozen=True, slots=True)
class Saved:
    path: Path
    problems: Sequence[str]  # when not empty, nothing was written

    @property
    def ok(self) -> bool:
        return not self.problems


def save(
    config: Config, name: Name, source: str, *, user: str, folder_key: str | None = None
) -> Saved:
    """Lint the text, then write it atomically into an operator's folder and keep it as a new
    version (the file as it was is kept first, if no version has it yet)."""
    _check_size(source)
    source = source.replace("\r\n", "\n")
    folder = save_folder(config, folder_key)
    path = _inside(folder.path, str(name))
    problems = lint_draft(config, name, source)
    if problems:
        return Saved(path, problems)
    now = datetime.now(UTC)
    known = versions(folder, name)
    try:
        before = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        before = None
    if before is not None and (not known or read_version(folder, name, known[0].id) != before):
        _keep_version(folder, name, before, "as-it-was", now.replace(microsecond=0))
    _inside(folder.path, str(name))  # checked again just before writing
    _atomic_write(path, source)
    _keep_version(folder, name, source, user, now)
    return Saved(path, [])
