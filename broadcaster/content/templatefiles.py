"""Reading template files: only plain files inside the template folders, read once per version.

A template, and anything it includes, imports or extends, is looked up in the folders in order
(the account's, `[templates] dir`, the bundled defaults). The file must be a plain file reached
without following any symbolic link below the folder, so a link to the secrets file (or to
anything else) is refused, and so is a file that *is* the secrets file or the token store (a hard
link), a device, a pipe, a file too large, or one that is not UTF-8 text. A refused file is an
error, never a reason to fall back to the next folder: the operator meant to use it.

The loader remembers what every name resolved to (a file, a refusal, or nothing) and the text it
read, so everything rendered from it sees one consistent version of the folders; `changed()`
says when the folders no longer match (an edit, a new override, a removed file), and the caller
then starts a new loader and checks the templates again.
"""

from __future__ import annotations

import errno
import os
import stat
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from jinja2 import BaseLoader, Environment, TemplateError, TemplateNotFound
from jinja2.loaders import split_template_path

MAX_TEMPLATE_BYTES = 256 * 1024
MAX_NAMES = 2_000  # distinct names one version of the folders may look up

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


class TemplateRefused(TemplateError):
    """A template file that may not be used; the message names the file and why."""

    def __init__(self, path: str, why: str) -> None:
        super().__init__(f"{path}: refused: {why}")
        self.path = path
        self.why = why


@dataclass(frozen=True, slots=True)
class Forbidden:
    """A file no template may read, and what to call it in messages."""

    path: Path
    label: str


# What a name resolved to: the folder's index and the file's identity, or None (nowhere).
Identity = tuple[int, int, int, int, int, int] | None


@dataclass(frozen=True, slots=True)
class _Entry:
    identity: Identity
    filename: str | None = None
    source: str | None = None
    refused: TemplateRefused | None = None


class ConfinedLoader(BaseLoader):
    """A Jinja loader over a stack of folders that reads each name once (see the module)."""

    has_source_access = True

    def __init__(
        self,
        folders: Sequence[Path],
        *,
        forbidden: Sequence[Forbidden] = (),
        max_bytes: int = MAX_TEMPLATE_BYTES,
    ) -> None:
        self.folders = [Path(f) for f in folders]
        self.forbidden = list(forbidden)
        self.max_bytes = max_bytes
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()

    # -- Jinja's interface --

    def get_source(
        self, environment: Environment, template: str
    ) -> tuple[str, str | None, Callable[[], bool] | None]:
        entry = self.entry(template)
        if entry.refused is not None:
            raise entry.refused
        if entry.source is None:
            raise TemplateNotFound(template)
        # This loader's versions never change; a change makes a new loader instead.
        return entry.source, entry.filename, _always

    def list_templates(self) -> list[str]:
        return sorted(n for n, e in self._entries.items() if e.source is not None)

    # -- resolution --

    def entry(self, name: str) -> _Entry:
        """What `name` resolves to in this version of the folders (read on first use)."""
        with self._lock:
            found = self._entries.get(name)
        if found is not None:
            return found
        pieces = split_template_path(name)  # refuses `..`
        if len(self._entries) >= MAX_NAMES:
            raise TemplateRefused(name, f"more than {MAX_NAMES} template names looked up")
        entry = self._read(pieces)
        with self._lock:
            return self._entries.setdefault(name, entry)

    def resolve(self, name: str) -> tuple[Path, int] | None:
        """The file `name` comes from now (whatever this loader read), with its modification
        time in nanoseconds; None when no folder has it."""
        try:
            pieces = split_template_path(name)
        except TemplateNotFound:
            return None
        for folder in self.folders:
            path = folder.joinpath(*pieces)
            try:
                return path, os.lstat(path).st_mtime_ns
            except (OSError, ValueError):
                continue
        return None

    def identity(self, name: str) -> Identity:
        """The identity `name` resolved to when it was read, or None."""
        entry = self._entries.get(name)
        return entry.identity if entry is not None else None

    def changed(self) -> list[str]:
        """The names that no longer resolve as they did when read (edited, created, removed)."""
        with self._lock:
            entries = list(self._entries.items())
        return [name for name, entry in entries if self._identify(name) != entry.identity]

    def _identify(self, name: str) -> Identity:
        try:
            pieces = split_template_path(name)
        except TemplateNotFound:
            return None
        for index, folder in enumerate(self.folders):
            try:
                st = os.lstat(folder.joinpath(*pieces))
            except (OSError, ValueError):
                continue
            return (index, st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size, st.st_mode)
        return None

    def _read(self, pieces: list[str]) -> _Entry:
        identity = self._identify("/".join(pieces))  # before reading: an edit during it shows
        if identity is None:
            return _Entry(None)
        folder = self.folders[identity[0]]
        path = str(folder.joinpath(*pieces))
        try:
            source = self._open_inside(folder, pieces, path)
        except TemplateRefused as exc:
            return _Entry(identity, path, refused=exc)
        except FileNotFoundError:
            return _Entry(identity)  # removed while we looked: the next check sees it
        return _Entry(identity, path, source)

    def _open_inside(self, folder: Path, pieces: list[str], path: str) -> str:
        """The text of `folder/pieces`, reached one folder at a time without following any
        symbolic link, so what is read is inside `folder` whatever is swapped in meanwhile."""
        fd = os.open(folder, _DIR_FLAGS)
        try:
            for i, part in enumerate(pieces[:-1]):
                try:
                    inner = os.open(part, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=fd)
                except OSError as exc:
                    where = str(folder.joinpath(*pieces[: i + 1]))
                    if exc.errno in (errno.ELOOP, errno.ENOTDIR) and _is_link(part, fd):
                        raise TemplateRefused(
                            path,
                            f"{where} is a symbolic link; templates must be plain files "
                            "inside the template folders",
                        ) from None
                    raise _unreadable(path, exc) from None
                os.close(fd)
                fd = inner
            try:
                file_fd = os.open(pieces[-1], _FILE_FLAGS, dir_fd=fd)
            except OSError as exc:
                if exc.errno == errno.ELOOP or _is_link(pieces[-1], fd):
                    raise TemplateRefused(
                        path,
                        "it is a symbolic link; templates must be plain files inside the "
                        "template folders",
                    ) from None
                raise _unreadable(path, exc) from None
        finally:
            os.close(fd)
        try:
            st = os.fstat(file_fd)
            if not stat.S_ISREG(st.st_mode):
                raise TemplateRefused(path, "not a plain file")
            for item in self.forbidden:
                try:
                    secret = os.stat(item.path)
                except OSError:
                    continue
                if (secret.st_dev, secret.st_ino) == (st.st_dev, st.st_ino):
                    raise TemplateRefused(path, f"it is {item.label}")
            if st.st_size > self.max_bytes:
                raise TemplateRefused(path, f"larger than {self.max_bytes:,} bytes")
            chunks: list[bytes] = []
            size = 0
            while size <= self.max_bytes:
                chunk = os.read(file_fd, self.max_bytes + 1 - size)
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
            data = b"".join(chunks)
        finally:
            os.close(file_fd)
        if len(data) > self.max_bytes:
            raise TemplateRefused(path, f"larger than {self.max_bytes:,} bytes")
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise TemplateRefused(path, f"not UTF-8 text (byte {exc.start})") from None


def _always() -> bool:
    return True


def _is_link(name: str, dir_fd: int) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return False


def _unreadable(path: str, exc: OSError) -> Exception:
    if exc.errno in (errno.ENOENT, errno.ENOTDIR):
        return FileNotFoundError(path)
    return TemplateRefused(path, f"cannot be read ({exc.strerror})")
