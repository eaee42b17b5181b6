"""Errors met while using the database: whether one is an outage (try the same thing again
later) or the data's fault (it would fail the same way at every try), and how to name one."""

from __future__ import annotations

from sqlalchemy import exc as sa_exc

from broadcaster.core.logs import redact


def database_outage(exc: BaseException) -> bool:
    """The database (or the disk under it) cannot be used right now: connection lost, locked,
    timed out, disk full. A reason to try the same write or read again, unlike an error the
    data caused (DataError, IntegrityError, a value no column takes, a bug a value triggers),
    which would fail the same way forever."""
    if isinstance(
        exc,
        OSError
        | sa_exc.OperationalError
        | sa_exc.InterfaceError
        | sa_exc.InternalError
        | sa_exc.TimeoutError
        | sa_exc.DisconnectionError,
    ):
        return True
    return isinstance(exc, sa_exc.DBAPIError) and bool(exc.connection_invalidated)


MAX_ERROR = 300  # characters of an unexpected error's message kept with a rejection


def describe_error(exc: BaseException) -> str:
    """`Type: message` of an unexpected error, short, one line, registered secrets masked. A
    database error names the driver's error, not the statement and its parameters."""
    inner = exc.orig if isinstance(exc, sa_exc.DBAPIError) and exc.orig is not None else exc
    message = " ".join(str(inner).split())
    if len(message) > MAX_ERROR:
        message = message[: MAX_ERROR - 1] + "…"
    return redact(f"{type(inner).__name__}: {message}" if message else type(inner).__name__)
