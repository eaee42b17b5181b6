"""A snapshot's bytes as the parsers read them: in memory when small, in a private temporary
file when large.

A 42 MB report (20,000 seats) held as one `bytes` object is 42 MB of the process's peak while
it is read, and `b"".join` of the received chunks held it twice for a moment. Collected here
instead, a body over `SPOOL_AT` goes to an anonymous temporary file as it arrives (hashed on
the way), and the parser that can read a document piece by piece (NIST JSON) reads it from
there; the others take it whole (`whole`).

The file has no name (it is created unlinked where the platform allows, and only this process
holds it), so what is read from it later is exactly what was hashed: a feed file rewritten
while it is parsed cannot change the snapshot under its fingerprint. It lives in the system's
temporary folder (`TMPDIR`).
"""

from __future__ import annotations

import hashlib
import logging
import sys
import tempfile
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import IO, overload

log = logging.getLogger(__name__)

SPOOL_AT = 4 << 20  # bodies larger than this go to a temporary file
CHUNK = 1 << 20  # bytes read from a file at a time


class SpooledBytes:
    """The bytes of a private temporary file, read on demand: `len`, an index and a slice
    (step 1) answer as they would on the same `bytes`."""

    __slots__ = ("__weakref__", "_file", "_size")

    def __init__(self, file: IO[bytes], size: int) -> None:
        self._file = file
        self._size = size
        # Closed (and so freed) when the last reference goes, without a ResourceWarning.
        weakref.finalize(self, file.close)

    def __len__(self) -> int:
        return self._size

    @overload
    def __getitem__(self, key: int) -> int: ...

    @overload
    def __getitem__(self, key: slice) -> bytes: ...

    def __getitem__(self, key: int | slice) -> int | bytes:
        if isinstance(key, slice):
            start, stop, step = key.indices(self._size)
            if step != 1:
                raise ValueError("SpooledBytes slices take no step")
            return self._read(start, stop - start) if stop > start else b""
        index = key + self._size if key < 0 else key
        if not 0 <= index < self._size:
            raise IndexError("SpooledBytes index out of range")
        return self._read(index, 1)[0]

    def __bytes__(self) -> bytes:
        return self._read(0, self._size)

    def _read(self, start: int, length: int) -> bytes:
        return _read_exactly(self._file, start, length)


Payload = bytes | SpooledBytes


def whole(payload: Payload) -> bytes:
    """The payload as one `bytes` (for the parsers that read a document whole)."""
    return payload if isinstance(payload, bytes) else bytes(payload)


class Collector:
    """A body taken chunk by chunk: hashed as it comes, kept in memory up to `spool_at` bytes
    and in a temporary file beyond. Where the file cannot be written (a full temporary
    folder), the body is held in memory after all: that must not stop the results."""

    def __init__(self, spool_at: int | None = None) -> None:
        self.spool_at = SPOOL_AT if spool_at is None else spool_at
        self.size = 0
        self._hash = hashlib.sha256()
        self._chunks: list[bytes] = []  # the body so far, while it is not in a file
        self._file: IO[bytes] | None = None  # the body so far, once it is

    def add(self, chunk: bytes) -> None:
        self._hash.update(chunk)
        self.size += len(chunk)
        if self._file is None:
            self._chunks.append(chunk)
            if self.size > self.spool_at:
                self._spill(b"".join(self._chunks))
        else:
            self._spill(chunk)

    def _spill(self, data: bytes) -> None:
        """Write `data` (what is not in the file yet) to the file, opening it first."""
        view, done = memoryview(data), 0
        try:
            if self._file is None:
                # Unbuffered, so what reached the file is known exactly if a write fails.
                # Kept open past this call (SpooledBytes closes it): no `with`.
                self._file = tempfile.TemporaryFile(  # noqa: SIM115
                    prefix="broadcaster-snapshot-", buffering=0
                )
            while done < len(data):
                wrote = self._file.write(view[done:])
                if not wrote:  # a regular file never does this; never loop on it
                    raise OSError("the temporary file took no bytes")
                done += wrote
        except OSError as exc:
            # Not tempfile.gettempdir(): where no folder was usable it raises this again.
            log.warning(
                "cannot write a large snapshot to a temporary file in %s (%s); holding it in "
                "memory instead",
                tempfile.tempdir or "the temporary folder (TMPDIR)",
                exc.strerror or exc,
            )
            # Everything before `data`, and `done` bytes of it, reached the file.
            self._chunks = [self._take_back(self.size - len(data) + done), data[done:]]
            self.spool_at = sys.maxsize  # not again for this body
            return
        self._chunks.clear()

    def _take_back(self, written: int) -> bytes:
        """The `written` bytes the file holds, the file closed (SpoolUnreadable where even
        that fails)."""
        file, self._file = self._file, None
        if file is None:
            return b""
        try:
            return _read_exactly(file, 0, written)
        finally:
            file.close()

    def done(self) -> tuple[Payload, str]:
        """The body and its sha256 (hex)."""
        if self._file is None:
            return b"".join(self._chunks), self._hash.hexdigest()
        return SpooledBytes(self._file, self.size), self._hash.hexdigest()

    def discard(self) -> None:
        """Let a body that will not be used go (its temporary file at once)."""
        self._chunks.clear()
        if self._file is not None:
            self._file.close()
            self._file = None


class SpoolUnreadable(Exception):
    """A snapshot could not be read back from its temporary file (the local disk failing, not
    the feed): the snapshot is to be read again, never rejected for it."""


def _read_exactly(file: IO[bytes], start: int, length: int) -> bytes:
    parts, got = [], 0
    try:
        file.seek(start)
        while got < length:
            part = file.read(length - got)
            if not part:
                # Nothing else can write to the file: a short read is the disk failing.
                raise SpoolUnreadable(
                    f"its temporary file gave {got} of {length} bytes; it will be read again"
                )
            parts.append(part)
            got += len(part)
    except OSError as exc:
        raise SpoolUnreadable(
            f"cannot read the snapshot back from its temporary file ({exc.strerror or exc}); "
            "it will be read again"
        ) from None
    return b"".join(parts)


class TooLarge(Exception):
    """The file holds more than the limit (it grew after it was measured)."""


def _chunks(path: Path, limit: int) -> Iterator[bytes]:
    """A file's bytes a chunk at a time; TooLarge past `limit` bytes."""
    size = 0
    with path.open("rb") as file:
        while chunk := file.read(min(CHUNK, limit + 1 - size)):
            size += len(chunk)
            if size > limit:
                raise TooLarge
            yield chunk


def read_path(path: Path, limit: int, spool_at: int | None = None) -> tuple[Payload, str]:
    """A file's bytes and their sha256, collected a chunk at a time; TooLarge past `limit`
    bytes, OSError as `open` and `read` raise it."""
    collector = Collector(spool_at)
    try:
        for chunk in _chunks(path, limit):
            collector.add(chunk)
    except BaseException:
        collector.discard()
        raise
    return collector.done()


def digest_path(path: Path, limit: int) -> str:
    """A file's sha256 alone, read a chunk at a time and kept nowhere (errors as `read_path`):
    whether a large file rewritten with the same bytes needs collecting at all."""
    digest = hashlib.sha256()
    for chunk in _chunks(path, limit):
        digest.update(chunk)
    return digest.hexdigest()
