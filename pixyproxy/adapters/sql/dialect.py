"""Where SQLite and MySQL differ, in one place: how a time is stored, how a claim locks its rows, how an
insert that may meet its own earlier copy is spelled, and how each engine is opened.

Statements are otherwise written once, with :name parameters (SQLAlchemy binds them for either driver).
"""

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any


@dataclass(frozen=True)
class Dialect:
    name: str  # "sqlite" or "mysql"
    true: str  # a condition that always holds
    # Appended to the SELECT that picks the rows a claim takes: MySQL locks them and skips the ones
    # another claim holds; SQLite's write transaction (BEGIN IMMEDIATE) already excludes every other writer.
    lock_picked: str
    # An INSERT that does nothing when a unique key already holds the row (a job announcing its end twice).
    insert_or_keep: str
    insert_or_keep_end: str
    # The list order's index, named where MySQL's optimiser may otherwise pick a scan and a filesort on
    # a small or freshly loaded table.
    newest_first_index: str

    def keyset_after(self, created_at: str = "created_at", row_id: str = "id") -> str:
        """Strictly after the (:created_at, :id) position in newest-first order, spelled so each server
        reads it as a range of the index (SQLite: a row value; MySQL and MariaDB: the OR form)."""
        if self.name == "sqlite":
            return f"({created_at}, {row_id}) < (:created_at, :id)"
        return f"({created_at} < :created_at OR ({created_at} = :created_at AND {row_id} < :id))"

    def stamp(self, value: datetime) -> Any:
        """A time as this store keeps it: SQLite fixed-width UTC text (text order is time order), MySQL
        a naive UTC DATETIME(6) (the session's time zone is UTC)."""
        value = value.astimezone(UTC) if value.tzinfo is not None else value
        if self.name == "sqlite":
            return value.replace(tzinfo=UTC).isoformat(timespec="microseconds")
        return value.replace(tzinfo=None)

    @staticmethod
    def parse(value: Any) -> datetime:
        """A stored time back as an aware UTC datetime."""
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        return value if value.tzinfo else value.replace(tzinfo=UTC)


SQLITE = Dialect(
    name="sqlite",
    true="1",
    lock_picked="",
    insert_or_keep="INSERT INTO",
    insert_or_keep_end=" ON CONFLICT DO NOTHING",
    newest_first_index="",
)
MYSQL = Dialect(
    name="mysql",
    true="TRUE",
    lock_picked=" FOR UPDATE SKIP LOCKED",
    insert_or_keep="INSERT INTO",
    # Unlike INSERT IGNORE, raises no warning and hides no other error.
    insert_or_keep_end=" ON DUPLICATE KEY UPDATE id = id",
    newest_first_index=" FORCE INDEX (ix_images_created_at_id)",
)
DIALECTS = {"sqlite": SQLITE, "mysql": MYSQL}
