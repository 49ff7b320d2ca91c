"""What every SQLite adapter (images, jobs, the webhook outbox) shares: one file opened the same way,
statements run on the event loop's thread (a lookup takes microseconds; a thread hop would cost more),
errors mapped to MetadataUnavailable, and timestamps as fixed-width UTC text."""

import contextlib
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from pixyproxy.domain.errors import MetadataUnavailable


def stamp(value: datetime) -> str:
    """Fixed-width UTC text, so text order is time order."""
    return value.astimezone(UTC).isoformat(timespec="microseconds")


class SQLiteFile:
    """A base for the SQLite adapters: the connection (opened on first use), `_run`, `ping`, `close`."""

    name = "sqlite"

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._db: sqlite3.Connection | None = None

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            try:
                if self.path != ":memory:":
                    Path(self.path).parent.mkdir(parents=True, exist_ok=True)
                db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=NORMAL")
                db.execute("PRAGMA busy_timeout=5000")
            except (sqlite3.Error, OSError) as exc:
                raise MetadataUnavailable(f"cannot open the SQLite database: {exc}") from exc
            self._db = db
        return self._db

    @contextlib.contextmanager
    def _write_transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE (the write lock from the first statement on) ... COMMIT; rolled back on any
        failure, so the connection is never left inside a transaction."""
        db = self._connection()
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def _run(self, sql: str, params: dict | None = None) -> list[tuple]:
        """One statement's rows; IntegrityError passes through for the caller to interpret."""
        return self._run_counted(sql, params)[0]

    def _run_counted(self, sql: str, params: dict | None = None) -> tuple[list[tuple], int]:
        """One statement's rows and the number of rows it changed."""
        try:
            cursor = self._connection().execute(sql, params or {})
            return cursor.fetchall(), cursor.rowcount
        except sqlite3.IntegrityError:
            raise
        except sqlite3.Error as exc:
            raise MetadataUnavailable(f"the SQLite database failed: {exc}") from exc

    async def ping(self) -> None:
        self._run("SELECT 1")

    async def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
