"""The embedded default metadata store: SQLite through the standard library.

Statements run on the event loop's thread. Point reads and WAL-mode commits take microseconds, which
is cheaper than a hop to a worker thread; this adapter is for one process on one disk.
"""

import sqlite3
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID

from pixyproxy.adapters.rows import (
    INSERT_COLUMNS,
    INSERT_LIST,
    SELECT_LIST,
    chunks,
    detail_to_row,
    page_from_rows,
    stored_image,
)
from pixyproxy.domain.errors import IdempotencyConflict, MetadataUnavailable
from pixyproxy.domain.models import IdempotentResult, ImageDetail, ImagePage, PagePosition

# Values travel as :name parameters; only the constant column lists are formatted into the text.
SELECT = f"SELECT {SELECT_LIST} FROM images"  # noqa: S608
GET_BY_GUID = f"{SELECT} WHERE guid = :guid"
GET_BY_IDEMPOTENCY_KEY = f"{SELECT} WHERE idempotency_key = :key"
NEWEST_FIRST = "ORDER BY created_at DESC, id DESC LIMIT :limit"
LIST_FIRST = f"{SELECT} {NEWEST_FIRST}"
LIST_AFTER = f"{SELECT} WHERE (created_at, id) < (:created_at, :id) {NEWEST_FIRST}"
INSERT = f"INSERT INTO images ({INSERT_LIST}) VALUES ({', '.join(':' + c for c in INSERT_COLUMNS)})"  # noqa: S608
RELEASE_IDEMPOTENCY_KEY = (
    "UPDATE images SET idempotency_key = NULL, request_hash = NULL "
    "WHERE idempotency_key = :key AND created_at < :older_than"
)

# version -> script. Append new versions; never edit an applied one.
MIGRATIONS = {
    1: """
    CREATE TABLE IF NOT EXISTS images (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        guid TEXT NOT NULL UNIQUE,
        filename TEXT NOT NULL,
        prompt TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        content_type TEXT NOT NULL,
        size_bytes INTEGER NOT NULL,
        width INTEGER NOT NULL,
        height INTEGER NOT NULL,
        model TEXT NOT NULL,
        size TEXT,
        quality TEXT,
        revised_prompt TEXT,
        usage_json TEXT,
        sha256 TEXT NOT NULL,
        idempotency_key TEXT UNIQUE,
        request_hash TEXT
    );
    CREATE INDEX IF NOT EXISTS images_created_at_id ON images (created_at DESC, id DESC);
    """,
    # Image options and edit lineage; each migration runs in one transaction with its version stamp.
    2: """
    ALTER TABLE images ADD COLUMN background TEXT;
    ALTER TABLE images ADD COLUMN output_format TEXT;
    ALTER TABLE images ADD COLUMN output_compression INTEGER;
    ALTER TABLE images ADD COLUMN moderation TEXT;
    ALTER TABLE images ADD COLUMN safety_identifier TEXT;
    ALTER TABLE images ADD COLUMN parent_guid TEXT;
    ALTER TABLE images ADD COLUMN mask_guid TEXT;
    ALTER TABLE images ADD COLUMN reference_guids_json TEXT;
    CREATE INDEX IF NOT EXISTS images_parent_guid ON images (parent_guid);
    """,
}


SCHEMA_VERSION = max(MIGRATIONS)


def _stamp(value: datetime) -> str:
    # A fixed-width UTC form, so text order is time order.
    return value.astimezone(UTC).isoformat(timespec="microseconds")


class SQLiteImageRepository:
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

    def _run(self, sql: str, params: dict | None = None) -> list[tuple]:
        try:
            return self._connection().execute(sql, params or {}).fetchall()
        except sqlite3.IntegrityError:
            raise
        except sqlite3.Error as exc:
            raise MetadataUnavailable(f"the SQLite database failed: {exc}") from exc

    async def init(self) -> None:
        db = self._connection()
        version = db.execute("PRAGMA user_version").fetchone()[0]
        for target in sorted(v for v in MIGRATIONS if v > version):
            db.executescript(f"BEGIN; {MIGRATIONS[target]} PRAGMA user_version = {int(target)}; COMMIT;")

    async def add(
        self, detail: ImageDetail, idempotency_key: str | None = None, request_hash: str | None = None
    ) -> None:
        row = detail_to_row(detail, idempotency_key, request_hash)
        row["created_at"] = row["updated_at"] = _stamp(row["created_at"])
        try:
            self._run(INSERT, row)
        except sqlite3.IntegrityError as exc:
            if idempotency_key is not None and "idempotency_key" in str(exc):
                raise IdempotencyConflict() from exc
            raise MetadataUnavailable(f"the image could not be recorded: {exc}") from exc

    async def get(self, guid: UUID) -> ImageDetail | None:
        rows = self._run(GET_BY_GUID, {"guid": str(guid)})
        return stored_image(rows[0]).detail if rows else None

    async def get_by_idempotency_key(self, key: str) -> IdempotentResult | None:
        rows = self._run(GET_BY_IDEMPOTENCY_KEY, {"key": key})
        if not rows:
            return None
        stored = stored_image(rows[0])
        return IdempotentResult(detail=stored.detail, request_hash=stored.request_hash or "")

    async def release_idempotency_key(self, key: str, older_than: datetime) -> None:
        self._run(RELEASE_IDEMPOTENCY_KEY, {"key": key, "older_than": _stamp(older_than)})

    async def list_page(self, limit: int, after: PagePosition | None = None) -> ImagePage:
        if after is None:
            rows = self._run(LIST_FIRST, {"limit": limit + 1})
        else:
            params = {"limit": limit + 1, "created_at": _stamp(after.created_at), "id": after.id}
            rows = self._run(LIST_AFTER, params)
        return page_from_rows(rows, limit)

    async def existing(self, guids: Iterable[UUID]) -> set[UUID]:
        found: set[UUID] = set()
        for chunk in chunks([str(g) for g in guids]):
            params = {f"g{i}": g for i, g in enumerate(chunk)}
            marks = ", ".join(f":{name}" for name in params)
            rows = self._run(f"SELECT guid FROM images WHERE guid IN ({marks})", params)  # noqa: S608
            found.update(UUID(r[0]) for r in rows)
        return found

    async def ping(self) -> None:
        self._run("SELECT 1")

    async def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
