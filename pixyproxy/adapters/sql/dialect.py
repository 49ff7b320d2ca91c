"""Where SQLite and MySQL differ, in one place: how a time is stored, how a claim locks its rows, how an
insert that may meet its own earlier copy is spelled, the list order's index hint and keyset spelling.

Statements are otherwise written once, with :name parameters (SQLAlchemy binds them for either driver).
The SQL pieces are constants keyed by the dialect's name, so every statement stays built from constants.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

# Session settings on every new MySQL connection: UTC for server-side time functions, and a known
# sql_mode (strict; without NO_BACKSLASH_ESCAPES, which PyMySQL's escaping relies on).
MYSQL_INIT_COMMAND = (
    "SET time_zone = '+00:00', sql_mode = 'STRICT_TRANS_TABLES,NO_ZERO_IN_DATE,NO_ZERO_DATE,"
    "ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION'"
)

# A condition that always holds.
TRUE = {"sqlite": "1", "mysql": "TRUE"}
# Appended to the SELECT that picks the rows a claim takes: MySQL locks them and skips the ones another
# claim holds; SQLite's write transaction (BEGIN IMMEDIATE) already excludes every other writer.
LOCK_PICKED = {"sqlite": "", "mysql": " FOR UPDATE SKIP LOCKED"}
# Appended to a read that must wait for any write in flight on its rows (MySQL: a shared lock waits for
# the writer's; SQLite: the read runs in a write transaction, after every other writer).
LOCK_SHARED = {"sqlite": "", "mysql": " LOCK IN SHARE MODE"}
# Ends an INSERT that does nothing when a unique key already holds the row (unlike MySQL's INSERT
# IGNORE, raising no warning and hiding no other error).
KEEP_EXISTING = {"sqlite": " ON CONFLICT DO NOTHING", "mysql": " ON DUPLICATE KEY UPDATE id = id"}
# The list order's index, named where MySQL's optimiser may otherwise pick a scan and a filesort on a
# small or freshly loaded table.
NEWEST_FIRST_INDEX = {"sqlite": "", "mysql": " FORCE INDEX (ix_images_created_at_id)"}
# Strictly after the (:created_at, :id) position in newest-first order, spelled so each server reads it
# as a range of the index (SQLite: a row value; MySQL and MariaDB: the OR form).
KEYSET_AFTER = {
    "sqlite": "(created_at, id) < (:created_at, :id)",
    "mysql": "(created_at < :created_at OR (created_at = :created_at AND id < :id))",
}


# How a SELECT returns an image's many columns: MySQL packs them into one JSON array (PyMySQL parses every
# column's description again on every result: most of a detail read's CPU); SQLite returns them as they are.
PACK_ROW = {"sqlite": "", "mysql": "JSON_ARRAY("}
END_PACK = {"sqlite": "", "mysql": ")"}


@dataclass(frozen=True)
class Dialect:
    name: str  # "sqlite" or "mysql"

    def stamp(self, value: datetime) -> Any:
        """A time as this store keeps it: SQLite fixed-width UTC text (text order is time order), MySQL
        a naive UTC DATETIME(6) (the session's time zone is UTC)."""
        value = value.astimezone(UTC) if value.tzinfo is not None else value
        if self.name == "sqlite":
            return value.replace(tzinfo=UTC).isoformat(timespec="microseconds")
        return value.replace(tzinfo=None)

    def image_rows(self, rows: Sequence[Sequence[Any]]) -> Sequence[Sequence[Any]]:
        """The rows of a SELECT whose columns sit between PACK_ROW and END_PACK, as plain sequences of
        the columns (on MySQL a time comes as text: parse() and the row mapping read either)."""
        if self.name == "sqlite":
            return rows
        return [orjson.loads(packed) for (packed,) in rows]

    @staticmethod
    def parse(value: Any) -> datetime:
        """A stored time back as an aware UTC datetime."""
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        return value if value.tzinfo else value.replace(tzinfo=UTC)


DIALECTS = {"sqlite": Dialect("sqlite"), "mysql": Dialect("mysql")}
