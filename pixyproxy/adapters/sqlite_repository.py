"""The embedded default metadata store: SQLite through the standard library.

Statements run on the event loop's thread. Point reads and WAL-mode commits take microseconds, which
is cheaper than a hop to a worker thread; this adapter is for one process on one disk.
"""

import sqlite3
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID

from pixyproxy.adapters.rows import DETAIL_COLUMNS, detail_to_row, row_to_detail
from pixyproxy.domain.errors import IdempotencyConflict, MetadataUnavailable
from pixyproxy.domain.models import IdempotentResult, ImageDetail, ImagePage, PagePosition

SCHEMA_VERSION = 1
_COLUMNS = f"id, request_hash, {', '.join(DETAIL_COLUMNS)}"
_SELECT = f"SELECT {_COLUMNS} FROM images"  # noqa: S608 (a constant column list, no values)
_INSERT = (
    f"INSERT INTO images ({', '.join(DETAIL_COLUMNS)}, updated_at, idempotency_key, request_hash) "  # noqa: S608
    f"VALUES ({', '.join(':' + c for c in DETAIL_COLUMNS)}, :created_at, :idempotency_key, :request_hash)"
)
_RELEASE_KEY = (
    "UPDATE images SET idempotency_key = NULL, request_hash = NULL "
    "WHERE idempotency_key = :key AND created_at < :older_than"
)
_MIGRATIONS = {
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
}


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
                db.row_factory = sqlite3.Row
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=NORMAL")
                db.execute("PRAGMA busy_timeout=5000")
            except (sqlite3.Error, OSError) as exc:
                raise MetadataUnavailable(f"cannot open the SQLite database: {exc}") from exc
            self._db = db
        return self._db

    def _run(self, sql: str, params: dict | None = None) -> list[sqlite3.Row]:
        try:
            return self._connection().execute(sql, params or {}).fetchall()
        except sqlite3.IntegrityError:
            raise
        except sqlite3.Error as exc:
            raise MetadataUnavailable(f"the SQLite database failed: {exc}") from exc

    async def init(self) -> None:
        db = self._connection()
        version = db.execute("PRAGMA user_version").fetchone()[0]
        for target in sorted(v for v in _MIGRATIONS if v > version):
            db.executescript(f"BEGIN; {_MIGRATIONS[target]} PRAGMA user_version = {int(target)}; COMMIT;")

    async def add(
        self, detail: ImageDetail, idempotency_key: str | None = None, request_hash: str | None = None
    ) -> None:
        row = detail_to_row(detail)
        row["created_at"] = _stamp(row["created_at"])
        row.update(idempotency_key=idempotency_key, request_hash=request_hash)
        try:
            self._run(_INSERT, row)
        except sqlite3.IntegrityError as exc:
            if idempotency_key is not None and "idempotency_key" in str(exc):
                raise IdempotencyConflict() from exc
            raise MetadataUnavailable(f"the image could not be recorded: {exc}") from exc

    async def get(self, guid: UUID) -> ImageDetail | None:
        rows = self._run(f"{_SELECT} WHERE guid = :guid", {"guid": str(guid)})
        return self._detail(rows[0]) if rows else None

    async def get_by_idempotency_key(self, key: str) -> IdempotentResult | None:
        rows = self._run(f"{_SELECT} WHERE idempotency_key = :key", {"key": key})
        if not rows:
            return None
        return IdempotentResult(detail=self._detail(rows[0]), request_hash=rows[0]["request_hash"] or "")

    async def release_idempotency_key(self, key: str, older_than: datetime) -> None:
        self._run(_RELEASE_KEY, {"key": key, "older_than": _stamp(older_than)})

    async def list_page(self, limit: int, after: PagePosition | None = None) -> ImagePage:
        params: dict = {"limit": limit + 1}
        where = ""
        if after is not None:
            where = " WHERE (created_at, id) < (:created_at, :id)"
            params.update(created_at=_stamp(after.created_at), id=after.id)
        rows = self._run(f"{_SELECT}{where} ORDER BY created_at DESC, id DESC LIMIT :limit", params)
        items = [self._detail(r) for r in rows[:limit]]
        next_position = None
        if len(rows) > limit:
            last = rows[limit - 1]
            next_position = PagePosition(created_at=items[-1].created_at, id=last["id"])
        return ImagePage(items=items, next=next_position)

    async def existing(self, guids: Iterable[UUID]) -> set[UUID]:
        found: set[UUID] = set()
        wanted = [str(g) for g in guids]
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            params = {f"g{i}": g for i, g in enumerate(chunk)}
            marks = ", ".join(f":{name}" for name in params)
            rows = self._run(f"SELECT guid FROM images WHERE guid IN ({marks})", params)  # noqa: S608
            found.update(UUID(r["guid"]) for r in rows)
        return found

    async def ping(self) -> None:
        self._run("SELECT 1")

    async def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    @staticmethod
    def _detail(row: sqlite3.Row | dict) -> ImageDetail:
        row = dict(row)
        del row["id"], row["request_hash"]
        return row_to_detail(row)
