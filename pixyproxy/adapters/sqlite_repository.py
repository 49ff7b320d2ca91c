"""The embedded default metadata store: SQLite through the standard library.

Statements run on the event loop's thread. Point reads and WAL-mode commits take microseconds, which
is cheaper than a hop to a worker thread; this adapter is for one process on one disk.
"""

import sqlite3
from collections.abc import Iterable
from datetime import datetime
from uuid import UUID

from pixyproxy.adapters import sqlite_word_index, word_postings
from pixyproxy.adapters.rows import (
    INSERT_COLUMNS,
    INSERT_LIST,
    SELECT_LIST,
    USAGE_COLUMNS,
    USAGE_INSERT_LIST,
    USAGE_SELECT,
    chunks,
    detail_to_row,
    page_from_rows,
    stored_image,
    usage_to_row,
    usage_totals,
)
from pixyproxy.adapters.sqlite_file import SQLiteFile, stamp
from pixyproxy.domain.errors import IdempotencyConflict, MetadataUnavailable
from pixyproxy.domain.models import IdempotentResult, ImageDetail, ImagePage, PagePosition
from pixyproxy.domain.search import ImageFilter
from pixyproxy.domain.usage import UsageEntry, UsageTotal

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
DELETE_BY_GUID = "DELETE FROM images WHERE guid = :guid"
_USAGE_MARKS = ", ".join(":" + c for c in USAGE_COLUMNS)
INSERT_USAGE = f"INSERT INTO usage_events ({USAGE_INSERT_LIST}) VALUES ({_USAGE_MARKS})"  # noqa: S608
USAGE_IN_PERIOD = f"{USAGE_SELECT} WHERE created_at >= :since AND created_at < :until"
USAGE_TOTALS = f"{USAGE_IN_PERIOD} GROUP BY owner, model, provider"
USAGE_TOTALS_OF = f"{USAGE_IN_PERIOD} AND owner = :owner GROUP BY owner, model, provider"
CREATED_BEFORE = f"{SELECT} WHERE created_at < :cutoff ORDER BY created_at, id LIMIT :limit"
# Filtered lists: each condition is its constant text or the constant TRUE, so the statement stays
# built from constants; the values travel as parameters. Words go through word_postings.py's table.
MODEL_IS = "model = :model"
CREATED_AFTER = "created_at > :created_after"
CREATED_BEFORE_FILTER = "created_at < :created_before"
OWNER_IS = "owner = :owner"
KEYSET_AFTER = "(created_at, id) < (:created_at, :id)"
TRUE = "1"

# version -> script; MIGRATION_STEPS holds the versions that are work SQL alone cannot do (splitting
# prompts into words). Append new versions; never edit an applied one.
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
    # Word search: an FTS5 index of the prompts (kept by triggers; prompts never change, images are
    # deleted), filled from the rows already there; and an index for the model filter.
    3: """
    CREATE VIRTUAL TABLE IF NOT EXISTS images_fts USING fts5(
        prompt, content='images', content_rowid='id', tokenize='unicode61 remove_diacritics 2'
    );
    CREATE TRIGGER IF NOT EXISTS images_fts_insert AFTER INSERT ON images BEGIN
        INSERT INTO images_fts (rowid, prompt) VALUES (new.id, new.prompt);
    END;
    CREATE TRIGGER IF NOT EXISTS images_fts_delete AFTER DELETE ON images BEGIN
        INSERT INTO images_fts (images_fts, rowid, prompt) VALUES ('delete', old.id, old.prompt);
    END;
    CREATE TRIGGER IF NOT EXISTS images_fts_update AFTER UPDATE OF prompt ON images BEGIN
        INSERT INTO images_fts (images_fts, rowid, prompt) VALUES ('delete', old.id, old.prompt);
        INSERT INTO images_fts (rowid, prompt) VALUES (new.id, new.prompt);
    END;
    INSERT INTO images_fts (images_fts) VALUES ('rebuild');
    CREATE INDEX IF NOT EXISTS images_model_created_at_id ON images (model, created_at DESC, id DESC);
    """,
    # Tenancy: each image's owner (an API key's name) and estimated cost, and a usage row per provider
    # call that outlives the images it made.
    4: """
    ALTER TABLE images ADD COLUMN owner TEXT;
    ALTER TABLE images ADD COLUMN estimated_cost_usd REAL;
    CREATE INDEX IF NOT EXISTS images_owner_created_at_id ON images (owner, created_at DESC, id DESC);
    CREATE TABLE IF NOT EXISTS usage_events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        created_at TEXT NOT NULL,
        owner TEXT,
        model TEXT NOT NULL,
        operation TEXT NOT NULL,
        images INTEGER NOT NULL,
        input_tokens INTEGER NOT NULL,
        output_tokens INTEGER NOT NULL,
        estimated_cost_usd REAL
    );
    CREATE INDEX IF NOT EXISTS usage_events_created_at ON usage_events (created_at);
    """,
    # The model catalogue: which provider and deployment made each image, after how many attempts; the
    # provider of each usage row.
    6: """
    ALTER TABLE images ADD COLUMN provider TEXT;
    ALTER TABLE images ADD COLUMN deployment TEXT;
    ALTER TABLE images ADD COLUMN attempts INTEGER;
    ALTER TABLE usage_events ADD COLUMN provider TEXT;
    """,
}
# version -> a function of the connection, run in one transaction with its version stamp.
MIGRATION_STEPS = {
    # Word search off a posting table of our own, filled from the stored prompts; FTS5 retired.
    5: sqlite_word_index.migrate,
}
SCHEMA_VERSION = max(*MIGRATIONS, *MIGRATION_STEPS)


def statements_of(script: str) -> list[str]:
    """A migration script's statements, a trigger's BEGIN ... END kept whole (SQLite's own test of
    where a statement ends)."""
    statements, current = [], ""
    for line in script.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            statements.append(current.strip())
            current = ""
    return statements


class SQLiteImageRepository(SQLiteFile):
    async def init(self) -> None:
        """Each migration in a transaction of its own that holds the write lock from the version check
        on, so processes starting at once (`serve --workers N`) apply it once."""
        db = self._connection()
        if db.execute("PRAGMA user_version").fetchone()[0] >= SCHEMA_VERSION:
            return
        for target in sorted({*MIGRATIONS, *MIGRATION_STEPS}):
            with self._write_transaction():
                if db.execute("PRAGMA user_version").fetchone()[0] < target:
                    self._migrate_to(db, target)
                    db.execute(f"PRAGMA user_version = {int(target)}")

    @staticmethod
    def _migrate_to(db: sqlite3.Connection, target: int) -> None:
        if target in MIGRATION_STEPS:
            MIGRATION_STEPS[target](db)
            return
        for statement in statements_of(MIGRATIONS[target]):
            db.execute(statement)

    async def add(
        self, detail: ImageDetail, idempotency_key: str | None = None, request_hash: str | None = None
    ) -> None:
        row = detail_to_row(detail, idempotency_key, request_hash)
        row["created_at"] = row["updated_at"] = stamp(row["created_at"])
        try:
            self._add_with_words(row)
        except sqlite3.IntegrityError as exc:
            if idempotency_key is not None and "idempotency_key" in str(exc):
                raise IdempotencyConflict() from exc
            raise MetadataUnavailable(f"the image could not be recorded: {exc}") from exc

    def _add_with_words(self, row: dict) -> None:
        """The image's row and its words, in one transaction."""
        try:
            with self._write_transaction() as db:
                image_id = db.execute(INSERT, row).lastrowid
                db.executemany(
                    sqlite_word_index.INSERT_POSTING,
                    word_postings.posting_rows(image_id, row["created_at"], row["prompt"]),
                )
        except sqlite3.IntegrityError:
            raise
        except sqlite3.Error as exc:
            raise MetadataUnavailable(f"the SQLite database failed: {exc}") from exc

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
        self._run(RELEASE_IDEMPOTENCY_KEY, {"key": key, "older_than": stamp(older_than)})

    async def list_page(
        self, limit: int, after: PagePosition | None = None, filters: ImageFilter | None = None
    ) -> ImagePage:
        if filters is not None and not filters.empty:
            return await self._filtered_page(limit, after, filters)
        if after is None:
            rows = self._run(LIST_FIRST, {"limit": limit + 1})
        else:
            params = {"limit": limit + 1, "created_at": stamp(after.created_at), "id": after.id}
            rows = self._run(LIST_AFTER, params)
        return page_from_rows(rows, limit)

    async def _filtered_page(self, limit: int, after: PagePosition | None, filters: ImageFilter) -> ImagePage:
        if filters.words:
            return await self._word_page(limit, after, filters)
        f = filters
        sql = (
            f"{SELECT} WHERE {MODEL_IS if f.model else TRUE} "
            f"AND {CREATED_AFTER if f.created_after else TRUE} "
            f"AND {CREATED_BEFORE_FILTER if f.created_before else TRUE} "
            f"AND {OWNER_IS if f.owner else TRUE} "
            f"AND {KEYSET_AFTER if after else TRUE} {NEWEST_FIRST}"
        )
        return page_from_rows(self._run(sql, self._filter_params(limit + 1, after, f)), limit)

    async def _word_page(self, limit: int, after: PagePosition | None, filters: ImageFilter) -> ImagePage:
        """Words: off the posting table (adapters/word_postings.py)."""

        async def probe(sql: str, params: dict) -> tuple:
            return self._run(sql, params)[0]

        async def page(sql: str, params: dict) -> list[tuple]:
            return self._run(sql, params)

        def position_of(row) -> PagePosition:
            stored = stored_image(row)
            return PagePosition(created_at=stored.detail.created_at, id=stored.id)

        rows = await word_postings.word_page_rows(
            "sqlite",
            limit,
            after,
            filters,
            params=lambda size, position: self._filter_params(size, position, filters),
            probe=probe,
            page=page,
            position_of=position_of,
        )
        return page_from_rows(rows, limit)

    @staticmethod
    def _filter_params(limit: int, after: PagePosition | None, f: ImageFilter) -> dict:
        params: dict = {"limit": limit, "model": f.model, "owner": f.owner}
        params["created_after"] = stamp(f.created_after) if f.created_after else None
        params["created_before"] = stamp(f.created_before) if f.created_before else None
        params["created_at"] = stamp(after.created_at) if after else None
        params["id"] = after.id if after else None
        return params

    async def delete(self, guid: UUID) -> bool:
        return bool(self._run_count(DELETE_BY_GUID, {"guid": str(guid)}))

    def _run_count(self, sql: str, params: dict) -> int:
        try:
            return self._connection().execute(sql, params).rowcount
        except sqlite3.Error as exc:
            raise MetadataUnavailable(f"the SQLite database failed: {exc}") from exc

    async def created_before(self, cutoff: datetime, limit: int) -> list[ImageDetail]:
        rows = self._run(CREATED_BEFORE, {"cutoff": stamp(cutoff), "limit": limit})
        return [stored_image(row).detail for row in rows]

    async def record_usage(self, entry: UsageEntry) -> None:
        row = usage_to_row(entry)
        row["created_at"] = stamp(row["created_at"])
        self._run(INSERT_USAGE, row)

    async def usage_totals(
        self, since: datetime, until: datetime, owner: str | None = None
    ) -> list[UsageTotal]:
        params = {"since": stamp(since), "until": stamp(until)}
        if owner is None:
            return usage_totals(self._run(USAGE_TOTALS, params))
        return usage_totals(self._run(USAGE_TOTALS_OF, {**params, "owner": owner}))

    async def reindex_words(self) -> int:
        try:
            with self._write_transaction() as db:
                return sqlite_word_index.index_stored(db)
        except sqlite3.Error as exc:
            raise MetadataUnavailable(f"re-indexing the words on SQLite failed: {exc}") from exc

    async def existing(self, guids: Iterable[UUID]) -> set[UUID]:
        found: set[UUID] = set()
        for chunk in chunks([str(g) for g in guids]):
            params = {f"g{i}": g for i, g in enumerate(chunk)}
            marks = ", ".join(f":{name}" for name in params)
            rows = self._run(f"SELECT guid FROM images WHERE guid IN ({marks})", params)  # noqa: S608
            found.update(UUID(r[0]) for r in rows)
        return found
