"""The ImageRepository port on the SQL layer, for SQLite and MySQL alike: the `images` table with its
word postings (adapters/word_postings.py) and `usage_events`.

Every statement is a constant with :name parameters; only constant column lists and the dialect's
constant pieces (dialect.py) are formatted into the text. An image's row and its words are written in
one unit of work. Nothing is cached: every read asks the database.
"""

import asyncio
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import UUID

from pixyproxy.adapters.sql import schema, word_postings
from pixyproxy.adapters.sql.database import Database, Tx
from pixyproxy.adapters.sql.dialect import (
    END_PACK,
    KEYSET_AFTER,
    LOCK_SHARED,
    NEWEST_FIRST_INDEX,
    PACK_ROW,
    TRUE,
)
from pixyproxy.adapters.sql.disk_reserve import DiskReserve, is_disk_full
from pixyproxy.adapters.sql.errors import Duplicate
from pixyproxy.adapters.sql.image_rows import (
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
from pixyproxy.domain.errors import IdempotencyConflict, MetadataOutcomeUnknown, MetadataUnavailable
from pixyproxy.domain.models import IdempotentResult, ImageDetail, ImagePage, PagePosition
from pixyproxy.domain.search import ImageFilter
from pixyproxy.domain.usage import UsageEntry, UsageTotal

# The image SELECTs as SQLite sends them; each dialect's own (dialect.PACK_ROW) is SELECTS[name] + the tail.
SELECT = f"SELECT {SELECT_LIST} FROM images"  # noqa: S608
SELECTS = {d: f"SELECT {PACK_ROW[d]}{SELECT_LIST}{END_PACK[d]} FROM images" for d in ("sqlite", "mysql")}  # noqa: S608
BY_GUID = " WHERE guid = :guid"
# A user key's lookup carries its owner in the query: another tenant's guid costs what an unknown one does.
BY_GUID_OF = " WHERE guid = :guid AND owner = :owner"
BY_IDEMPOTENCY_KEY = " WHERE idempotency_key = :key"
BY_AGE = " WHERE created_at < :cutoff ORDER BY created_at, id LIMIT :limit"
GET_BY_GUID = f"{SELECT}{BY_GUID}"
GET_BY_GUID_OF = f"{SELECT}{BY_GUID_OF}"
GET_BY_IDEMPOTENCY_KEY = f"{SELECT}{BY_IDEMPOTENCY_KEY}"
NEWEST_FIRST = "ORDER BY created_at DESC, id DESC LIMIT :limit"
INSERT = f"INSERT INTO images ({INSERT_LIST}) VALUES ({', '.join(':' + c for c in INSERT_COLUMNS)})"  # noqa: S608
INSERT_POSTING = (
    "INSERT INTO image_words (word, image_created_at, image_id) VALUES (:word, :created_at, :image_id)"
)
# One statement, so checking the age and letting go of the key are atomic (and safe to run twice).
RELEASE_IDEMPOTENCY_KEY = (
    "UPDATE images SET idempotency_key = NULL, request_hash = NULL "
    "WHERE idempotency_key = :key AND created_at < :older_than"
)
# SQLite's postings go with their image by trigger, MySQL's by ON DELETE CASCADE.
DELETE_BY_GUID = "DELETE FROM images WHERE guid = :guid"
INSERT_USAGE = (
    f"INSERT INTO usage_events ({USAGE_INSERT_LIST}) VALUES ({', '.join(':' + c for c in USAGE_COLUMNS)})"  # noqa: S608
)
USAGE_IN_PERIOD = f"{USAGE_SELECT} WHERE created_at >= :since AND created_at < :until"
USAGE_TOTALS = f"{USAGE_IN_PERIOD} GROUP BY owner, model, provider"
USAGE_TOTALS_OF = f"{USAGE_IN_PERIOD} AND owner = :owner GROUP BY owner, model, provider"
CREATED_BEFORE = f"{SELECT}{BY_AGE}"
# Filters: each condition is its constant text or the dialect's constant TRUE.
MODEL_IS = "model = :model"
CREATED_AFTER = "created_at > :created_after"
CREATED_BEFORE_FILTER = "created_at < :created_before"
OWNER_IS = "owner = :owner"
EXISTING = "SELECT guid FROM images WHERE guid IN"  # followed by one :gN marker per guid


class SQLImageRepository:
    def __init__(self, database: Database) -> None:
        self.db = database
        self.name = database.name
        self._reserve: DiskReserve | None = None  # SQLite's room for deletes on a full disk
        self._get_by_guid = f"{SELECTS[self.name]}{BY_GUID}"
        self._get_by_guid_of = f"{SELECTS[self.name]}{BY_GUID_OF}"
        self._get_by_idempotency_key = f"{SELECTS[self.name]}{BY_IDEMPOTENCY_KEY}"
        self._created_before = f"{SELECTS[self.name]}{BY_AGE}"
        self._list_first = f"{SELECTS[self.name]}{NEWEST_FIRST_INDEX[self.name]} {NEWEST_FIRST}"
        d = self.name
        self._list_after = f"{SELECTS[d]}{NEWEST_FIRST_INDEX[d]} WHERE {KEYSET_AFTER[d]} {NEWEST_FIRST}"

    async def _image_rows(
        self, sql: str, params: dict[str, Any], *, by_key: bool = False
    ) -> Sequence[Sequence[Any]]:
        return self.db.dialect.image_rows(await self.db.rows(sql, params, by_key=by_key))

    async def init(self) -> None:
        await self.db.init()
        if self.name == "sqlite" and self.db.url.database not in (None, "", ":memory:"):
            self._reserve = DiskReserve(Path(self.db.url.database))
            await asyncio.to_thread(self._reserve.ensure)

    async def add(
        self, detail: ImageDetail, idempotency_key: str | None = None, request_hash: str | None = None
    ) -> None:
        row = detail_to_row(detail, idempotency_key, request_hash)
        row["created_at"] = row["updated_at"] = self.db.dialect.stamp(row["created_at"])

        async def image_and_its_words(tx: Tx) -> None:
            image_id = await tx.insert(INSERT, row)
            await tx.executemany(
                INSERT_POSTING, word_postings.posting_rows(image_id, row["created_at"], row["prompt"])
            )

        try:
            await self.db.run(image_and_its_words)
        except MetadataOutcomeUnknown as unknown:
            await self._settle(row, unknown)
        except Duplicate as exc:
            if idempotency_key is not None and exc.constraint == "uq_images_idempotency_key":
                raise IdempotencyConflict() from exc
            if exc.constraint == "uq_images_guid" and await self._stored(row):
                return  # a retry after a lost connection: the first attempt was committed after all
            raise MetadataUnavailable(f"the image could not be recorded: {exc}") from exc

    async def _settle(self, row: dict[str, Any], unknown: MetadataOutcomeUnknown) -> None:
        """The COMMIT went unanswered: our own row (its guid and bytes' hash) says it was kept."""
        try:
            kept = await self._stored(row)
        except MetadataUnavailable:
            raise unknown from None
        if not kept:
            raise MetadataUnavailable(f"the image was not recorded: {unknown}") from unknown

    async def _stored(self, row: dict[str, Any]) -> bool:
        detail = await self.settled(UUID(row["guid"]))
        return detail is not None and detail.sha256 == row["sha256"]

    async def settled(self, guid: UUID) -> ImageDetail | None:
        """A locking read: a write in flight on the row (its COMMIT unanswered) ends before it answers."""
        locking = GET_BY_GUID + LOCK_SHARED[self.name]

        async def read(tx: Tx) -> Sequence[Any]:
            return await tx.rows(locking, {"guid": str(guid)})

        rows = await self.db.run(read, write=True, idempotent=True)
        return stored_image(rows[0]).detail if rows else None

    async def get(self, guid: UUID, owner: str | None = None) -> ImageDetail | None:
        """The image; with `owner`, only if it is that owner's."""
        if owner is None:
            rows = await self._image_rows(self._get_by_guid, {"guid": str(guid)}, by_key=True)
        else:
            params = {"guid": str(guid), "owner": owner}
            rows = await self._image_rows(self._get_by_guid_of, params, by_key=True)
        return stored_image(rows[0]).detail if rows else None

    async def get_by_idempotency_key(self, key: str) -> IdempotentResult | None:
        rows = await self._image_rows(self._get_by_idempotency_key, {"key": key}, by_key=True)
        if not rows:
            return None
        stored = stored_image(rows[0])
        return IdempotentResult(detail=stored.detail, request_hash=stored.request_hash or "")

    async def release_idempotency_key(self, key: str, older_than: datetime) -> None:
        params = {"key": key, "older_than": self.db.dialect.stamp(older_than)}
        await self.db.execute(RELEASE_IDEMPOTENCY_KEY, params, idempotent=True)

    async def list_page(
        self, limit: int, after: PagePosition | None = None, filters: ImageFilter | None = None
    ) -> ImagePage:
        if filters is not None and not filters.empty:
            if filters.words:
                return await self._word_page(limit, after, filters)
            return await self._filtered_page(limit, after, filters)
        if after is None:
            rows = await self._image_rows(self._list_first, {"limit": limit + 1})
        else:
            params = {
                "limit": limit + 1,
                "created_at": self.db.dialect.stamp(after.created_at),
                "id": after.id,
            }
            rows = await self._image_rows(self._list_after, params)
        return page_from_rows(rows, limit)

    async def _filtered_page(self, limit: int, after: PagePosition | None, f: ImageFilter) -> ImagePage:
        d = self.name
        sql = (
            f"{SELECTS[d]}{NEWEST_FIRST_INDEX[d] if not (f.model or f.owner) else ''} "
            f"WHERE {MODEL_IS if f.model else TRUE[d]} AND {CREATED_AFTER if f.created_after else TRUE[d]} "
            f"AND {CREATED_BEFORE_FILTER if f.created_before else TRUE[d]} "
            f"AND {OWNER_IS if f.owner else TRUE[d]} "
            f"AND {KEYSET_AFTER[d] if after else TRUE[d]} {NEWEST_FIRST}"
        )
        return page_from_rows(await self._image_rows(sql, self._filter_params(limit + 1, after, f)), limit)

    async def _word_page(self, limit: int, after: PagePosition | None, filters: ImageFilter) -> ImagePage:
        """Words: off the posting table (adapters/word_postings.py)."""

        async def probe(sql: str, params: dict[str, Any]) -> Sequence[Any]:
            return (await self.db.rows(sql, params))[0]

        async def page(sql: str, params: dict[str, Any]) -> list[Sequence[Any]]:
            return list(await self._image_rows(sql, params))

        def position_of(row: Sequence[Any]) -> PagePosition:
            stored = stored_image(row)
            return PagePosition(created_at=stored.detail.created_at, id=stored.id)

        rows = await word_postings.word_page_rows(
            self.name,
            limit,
            after,
            filters,
            params=lambda size, position: self._filter_params(size, position, filters),
            probe=probe,
            page=page,
            position_of=position_of,
        )
        return page_from_rows(rows, limit)

    def _filter_params(self, limit: int, after: PagePosition | None, f: ImageFilter) -> dict[str, Any]:
        stamp = self.db.dialect.stamp
        return {
            "limit": limit,
            "model": f.model,
            "owner": f.owner,
            "created_after": stamp(f.created_after) if f.created_after else None,
            "created_before": stamp(f.created_before) if f.created_before else None,
            "created_at": stamp(after.created_at) if after else None,
            "id": after.id if after else None,
        }

    async def delete(self, guid: UUID) -> bool:
        # Not run again after a COMMIT went unanswered: a second run would find the row gone and say
        # "none" for a delete that happened. MetadataOutcomeUnknown lets the caller read what is true.
        try:
            deleted = bool(await self.db.execute(DELETE_BY_GUID, {"guid": str(guid)}))
        except MetadataOutcomeUnknown:
            raise
        except MetadataUnavailable as exc:
            if not (self._reserve and is_disk_full(exc) and self._reserve.release()):
                raise
            deleted = bool(await self.db.execute(DELETE_BY_GUID, {"guid": str(guid)}))
        if self._reserve is not None:
            await asyncio.to_thread(self._reserve.ensure)
        return deleted

    async def created_before(self, cutoff: datetime, limit: int) -> list[ImageDetail]:
        params = {"cutoff": self.db.dialect.stamp(cutoff), "limit": limit}
        rows = await self._image_rows(self._created_before, params)
        return [stored_image(row).detail for row in rows]

    async def record_usage(self, entry: UsageEntry) -> None:
        row = usage_to_row(entry)
        row["created_at"] = self.db.dialect.stamp(row["created_at"])
        await self.db.execute(INSERT_USAGE, row)

    async def usage_totals(
        self, since: datetime, until: datetime, owner: str | None = None
    ) -> list[UsageTotal]:
        stamp = self.db.dialect.stamp
        params = {"since": stamp(since), "until": stamp(until)}
        if owner is None:
            return usage_totals(await self.db.rows(USAGE_TOTALS, params))
        return usage_totals(await self.db.rows(USAGE_TOTALS_OF, {**params, "owner": owner}))

    async def reindex_words(self) -> int:
        # Reads every row: the sync driver on a thread of its own, under the migration's timeout.
        await self.db.init()
        try:
            return await asyncio.to_thread(schema.reindex_words, self.db.url, self.db.migration_options())
        except MetadataUnavailable:
            raise
        except Exception as exc:
            raise MetadataUnavailable(f"re-indexing the words failed: {exc}") from exc

    async def existing(self, guids: Iterable[UUID]) -> set[UUID]:
        found: set[UUID] = set()
        for chunk in chunks([str(g) for g in guids]):
            params = {f"g{i}": g for i, g in enumerate(chunk)}
            marks = ", ".join(f":{name}" for name in params)
            rows = await self.db.rows(f"{EXISTING} ({marks})", params)
            found.update(UUID(r[0]) for r in rows)
        return found

    async def ping(self) -> None:
        await self.db.ping()

    async def close(self) -> None:
        await self.db.close()
