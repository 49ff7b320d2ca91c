"""What a driver's error means, decided once for both dialects (after oslo.db's exception filters):
a deadlock, a lost connection, a busy SQLite file, a duplicate key (and which constraint), or other."""

import enum
import re
import sqlite3
from dataclasses import dataclass
from typing import Any

from sqlalchemy import exc as sa

# MySQL client and server codes meaning "this connection is dead" (a fresh one may work).
_MYSQL_CONNECTION_LOST = {
    2006,  # server has gone away
    2013,  # lost connection during query
    2055,  # lost connection at reading/sending
    1053,  # server shutdown in progress
    1927,  # MariaDB: connection was killed
    4031,  # MySQL 8: disconnected by the server because of inactivity
    2003,  # can't connect (server down or restarting)
}
_MYSQL_DUPLICATE = 1062
_MYSQL_DEADLOCK = 1213
_MYSQL_LOCK_WAIT_TIMEOUT = 1205
# MySQL: "Duplicate entry 'x' for key 'images.uq_images_guid'" (MariaDB: no table prefix).
_MYSQL_KEY = re.compile(r"for key '(?:[^'.]+\.)?([^']+)'")
# SQLite: "UNIQUE constraint failed: jobs.owner, jobs.idempotency_key"
_SQLITE_UNIQUE = re.compile(r"UNIQUE constraint failed: (.+)$")
# SQLite names its unique constraints by their columns; these are the names MySQL gives the same keys.
SQLITE_UNIQUE_NAMES = {
    "images.guid": "uq_images_guid",
    "images.idempotency_key": "uq_images_idempotency_key",
    "jobs.job_id": "uq_jobs_job_id",
    "jobs.owner, jobs.idempotency_key": "uq_jobs_owner_key",
    "webhook_deliveries.delivery_id": "uq_webhook_deliveries_delivery_id",
    "webhook_deliveries.job_id": "uq_webhook_deliveries_job_id",
}


def is_database_error(error: BaseException) -> bool:
    """A failure of the database or its driver (SQLAlchemy's wrapper, or the driver's own error raised
    through it), not of the unit of work's own code."""
    if isinstance(error, (sa.SQLAlchemyError, sqlite3.Error, OSError, TimeoutError)):
        return True
    return type(error).__module__.startswith("pymysql")


class Kind(enum.Enum):
    DEADLOCK = "deadlock"  # the transaction was rolled back: running it again is safe
    CONNECTION_LOST = "connection lost"
    TIMEOUT = "no answer in time"
    BUSY = "busy"  # SQLite's write lock stayed taken past the busy timeout
    DUPLICATE = "duplicate key"
    OTHER = "other"


@dataclass(frozen=True)
class Failure:
    kind: Kind
    constraint: str | None = None  # DUPLICATE: the unique key's name (MySQL's spelling on both)


def classify(error: BaseException) -> Failure:
    if isinstance(error, TimeoutError):
        return Failure(Kind.TIMEOUT)
    if isinstance(error, sa.DBAPIError) and error.connection_invalidated:
        return Failure(Kind.CONNECTION_LOST)
    original = error.orig if isinstance(error, sa.DBAPIError) and error.orig is not None else error
    if isinstance(original, sqlite3.Error):
        return _sqlite(original)
    return _mysql(original)


def _sqlite(error: sqlite3.Error) -> Failure:
    text = str(error)
    if isinstance(error, sqlite3.IntegrityError):
        match = _SQLITE_UNIQUE.search(text)
        if match:
            columns = match.group(1).strip()
            return Failure(Kind.DUPLICATE, SQLITE_UNIQUE_NAMES.get(columns, columns))
    if "database is locked" in text or "database is busy" in text:
        return Failure(Kind.BUSY)
    return Failure(Kind.OTHER)


def _mysql(error: BaseException) -> Failure:
    args: tuple[Any, ...] = getattr(error, "args", ())
    code = args[0] if args and isinstance(args[0], int) else None
    if code == _MYSQL_DUPLICATE:
        match = _MYSQL_KEY.search(str(args[1]) if len(args) > 1 else str(error))
        return Failure(Kind.DUPLICATE, match.group(1) if match else None)
    if code == _MYSQL_DEADLOCK:
        return Failure(Kind.DEADLOCK)
    if code == _MYSQL_LOCK_WAIT_TIMEOUT:
        return Failure(Kind.BUSY)
    if code in _MYSQL_CONNECTION_LOST or type(error).__name__ == "InterfaceError":
        return Failure(Kind.CONNECTION_LOST)
    if isinstance(error, (ConnectionError, OSError)) and not isinstance(error, TimeoutError):
        return Failure(Kind.CONNECTION_LOST)
    if "timeout" in str(error).lower():
        return Failure(Kind.TIMEOUT)
    return Failure(Kind.OTHER)


class Duplicate(Exception):
    """A unique key refused a row; the store decides what that means (IdempotencyConflict, a no-op)."""

    def __init__(self, constraint: str | None, error: BaseException) -> None:
        super().__init__(f"duplicate key {constraint}: {error}")
        self.constraint = constraint
