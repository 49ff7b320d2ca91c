"""MySQLImageRepository: the ImageRepository port on MySQL 8 / MariaDB 10.6+, through aiomysql.

* aiomysql speaks PyMySQL's protocol under asyncio. Every statement is a constant string with
  %(name)s parameters; PyMySQL escapes each value (for this connection's charset and sql_mode) and
  nothing else is ever formatted into the text.
* A pool of connections (pool.py), no connect per request and no TLS attempt (a local or private-network
  server; a login without TLS takes ~0.4 ms here, PyMySQL's default TLS attempt ~20 ms). A pooled
  connection the server has closed is dropped at checkout, and a statement that loses its connection is
  retried once on a fresh one, so a MySQL restart is survived without restarting PixyProxy (and one
  that InnoDB rolled back as a deadlock's victim is run once more).
* An image's row and its words (word_index.py) are written in one transaction.
* connect_timeout_seconds bounds the TCP connect, read_timeout_seconds each statement's reply and
  (added to the connect timeout) the login, so an unreachable or hung server becomes
  MetadataUnavailable (503) within seconds. A timeout is not retried: a hung server would only double it.
* Nothing is cached: every read asks the database, so rows deleted behind our back stay deleted.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime
from typing import Any
from uuid import UUID

import orjson
from pymysql import err as my

from pixyproxy.adapters import word_postings
from pixyproxy.adapters.mysql import init as schema
from pixyproxy.adapters.mysql import word_index
from pixyproxy.adapters.mysql.config import DATABASE_NAME, MySQLConfig, parse_mysql_url
from pixyproxy.adapters.mysql.errors import (
    BAD_DATABASE,
    DEADLOCK,
    DUPLICATE_ENTRY,
    connection_lost,
    error_code,
)
from pixyproxy.adapters.mysql.pool import Pool, alive, connect_to, utc_naive
from pixyproxy.adapters.rows import (
    INSERT_COLUMNS,
    INSERT_LIST,
    SELECT_COLUMNS,
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
from pixyproxy.domain.errors import IdempotencyConflict, MetadataUnavailable
from pixyproxy.domain.models import IdempotentResult, ImageDetail, ImagePage, PagePosition
from pixyproxy.domain.search import ImageFilter
from pixyproxy.domain.usage import UsageEntry, UsageTotal

log = logging.getLogger(__name__)

# Only constant column lists are formatted into these; every value is a %(name)s parameter.
# An image row comes back as one JSON array rather than one column per field: PyMySQL parses every
# column's description again on every result, which was two thirds of a detail read's CPU.
SELECT = f"SELECT JSON_ARRAY({SELECT_LIST}) FROM images"  # noqa: S608
GET_BY_GUID = f"{SELECT} WHERE guid = %(guid)s"
GET_BY_IDEMPOTENCY_KEY = f"{SELECT} WHERE idempotency_key = %(idempotency_key)s"
# FORCE INDEX: on a small or freshly loaded table the optimiser may prefer a scan and a filesort.
LIST = f"{SELECT} FORCE INDEX (ix_images_created_at_id)"
NEWEST_FIRST = "ORDER BY created_at DESC, id DESC LIMIT %(limit)s"
LIST_FIRST = f"{LIST} {NEWEST_FIRST}"
# The keyset condition spelled out (not a row comparison), so both MySQL and MariaDB turn it into
# a range on ix_images_created_at_id: a deep page reads `limit` index entries, not the ones before it.
LIST_AFTER = (
    f"{LIST} WHERE created_at < %(created_at)s OR (created_at = %(created_at)s AND id < %(id)s) "
    f"{NEWEST_FIRST}"
)
INSERT = f"INSERT INTO images ({INSERT_LIST}) VALUES ({', '.join(f'%({c})s' for c in INSERT_COLUMNS)})"  # noqa: S608
# One statement, so checking the age and letting go of the key are atomic; safe to retry (a second run
# finds the key already gone, or a fresh row that another process stored under it, and changes nothing).
RELEASE_IDEMPOTENCY_KEY = (
    "UPDATE images SET idempotency_key = NULL, request_hash = NULL "
    "WHERE idempotency_key = %(idempotency_key)s AND created_at < %(older_than)s"
)
DELETE_BY_GUID = "DELETE FROM images WHERE guid = %(guid)s"
_USAGE_MARKS = ", ".join(f"%({c})s" for c in USAGE_COLUMNS)
INSERT_USAGE = f"INSERT INTO usage_events ({USAGE_INSERT_LIST}) VALUES ({_USAGE_MARKS})"  # noqa: S608
USAGE_IN_PERIOD = f"{USAGE_SELECT} WHERE created_at >= %(since)s AND created_at < %(until)s"
USAGE_TOTALS = f"{USAGE_IN_PERIOD} GROUP BY owner, model, provider"
USAGE_TOTALS_OF = f"{USAGE_IN_PERIOD} AND owner = %(owner)s GROUP BY owner, model, provider"
CREATED_BEFORE = f"{SELECT} WHERE created_at < %(cutoff)s ORDER BY created_at, id LIMIT %(limit)s"
# Filtered lists: each condition is its constant text or the constant TRUE, so the statement stays
# built from constants; values travel as parameters. Without words the created_at index (or the model's
# or owner's) gives the order, as for a plain list; words go through word_index.py's posting table.
MODEL_IS = "model = %(model)s"
CREATED_AFTER = "created_at > %(created_after)s"
CREATED_BEFORE_FILTER = "created_at < %(created_before)s"
OWNER_IS = "owner = %(owner)s"
KEYSET_AFTER = "(created_at < %(created_at)s OR (created_at = %(created_at)s AND id < %(id)s))"
TRUE = "TRUE"
_CREATED_AT = SELECT_COLUMNS.index("created_at")
_PROMPT = SELECT_COLUMNS.index("prompt")
# Followed by one %(gN)s marker per guid (PyMySQL no longer expands a tuple into a list).
EXISTING = "SELECT guid FROM images WHERE guid IN"
PING = "SELECT 1"
# (statement, takes the name): used by init() when the configured database does not exist yet.
CREATE_DATABASE = (
    (
        "SET @pixyproxy_ddl = CONCAT('CREATE DATABASE IF NOT EXISTS `', REPLACE(%(name)s, '`', '``'), "
        "'` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin')",
        True,
    ),
    ("PREPARE pixyproxy_create_database FROM @pixyproxy_ddl", False),
    ("EXECUTE pixyproxy_create_database", False),
    ("DEALLOCATE PREPARE pixyproxy_create_database", False),
)


class _DuplicateAfterRetry(Exception):
    """An INSERT hit a duplicate on its retry: the first attempt reached the server after all."""

    def __init__(self, error: my.IntegrityError) -> None:
        super().__init__(str(error))
        self.error = error


class MySQLImageRepository:
    """Pool size and timeouts come from settings (the container passes them; no defaults here)."""

    name = "mysql"

    def __init__(
        self,
        config: MySQLConfig | str,
        *,
        pool_min_size: int,
        pool_max_size: int,
        pool_recycle_seconds: float,
        connect_timeout_seconds: float,
        read_timeout_seconds: float,
        init_timeout_seconds: float,
    ) -> None:
        if not 0 <= pool_min_size <= pool_max_size:
            raise ValueError(f"the MySQL pool's minimum size {pool_min_size} is not 0..{pool_max_size}")
        self.config = parse_mysql_url(config) if isinstance(config, str) else config
        self.pool_min_size = pool_min_size
        self.connect_timeout_seconds = connect_timeout_seconds
        self.read_timeout_seconds = read_timeout_seconds
        self.init_timeout_seconds = init_timeout_seconds
        self.pool_max_size = pool_max_size
        self.pool_recycle_seconds = pool_recycle_seconds
        self._pool = self._new_pool()

    def _new_pool(self) -> Pool:
        return Pool(self._connect, max_size=self.pool_max_size, recycle_seconds=self.pool_recycle_seconds)

    @classmethod
    def from_url(cls, url: str, **options: Any) -> "MySQLImageRepository":
        return cls(parse_mysql_url(url), **options)

    # -- connections ----------------------------------------------------------------------------

    async def _connect(self, read_timeout: float | None = None, with_database: bool = True):
        read = read_timeout or self.read_timeout_seconds
        return await connect_to(self.config, self.connect_timeout_seconds, read, with_database=with_database)

    async def _image_rows(self, sql: str, params: dict[str, Any] | None = None) -> list[list]:
        """The rows of a SELECT of image rows, each in SELECT_COLUMNS order (created_at naive UTC)."""
        rows = []
        for (packed,) in await self._execute(sql, params):
            row = orjson.loads(packed)
            row[_CREATED_AT] = datetime.fromisoformat(row[_CREATED_AT])
            rows.append(row)
        return rows

    async def _execute(
        self, sql: str, params: dict[str, Any] | None = None, *, count: bool = False
    ) -> list[tuple] | int:
        """Run one statement on a pooled connection; retry once if the connection was dead.
        Returns the rows, or with `count` the number of rows the statement changed."""

        async def one_statement(cursor) -> list[tuple] | int:
            changed = await cursor.execute(sql, params)
            return changed if count else list(await cursor.fetchall())

        return await self._with_cursor(one_statement)

    async def _with_cursor(self, work: Callable[[Any], Awaitable[Any]], transaction: bool = False) -> Any:
        """`work(cursor)` on a pooled connection (in one transaction if asked; rolled back on failure),
        run once more if the connection was dead (on a fresh one) or a deadlock rolled it back."""
        for attempt in (1, 2):
            try:
                async with (
                    self._pool.connection() as connection,
                    asyncio.timeout(self.read_timeout_seconds),  # the statement's reply, not the checkout
                    connection.cursor() as cursor,
                ):
                    if not transaction:
                        return await work(cursor)
                    await connection.begin()
                    try:
                        result = await work(cursor)
                    except my.MySQLError:
                        if alive(connection):
                            await connection.rollback()  # the connection goes back to the pool clean
                        raise
                    await connection.commit()
                    return result
            except my.IntegrityError as exc:
                if attempt == 2:
                    raise _DuplicateAfterRetry(exc) from exc
                raise
            except (my.MySQLError, OSError, TimeoutError) as exc:
                if attempt == 1 and connection_lost(exc):
                    log.info("MySQL connection lost (%s); retrying once on a fresh connection", exc)
                    continue
                if attempt == 1 and error_code(exc) == DEADLOCK:
                    log.info("MySQL rolled back a deadlocked transaction (%s); running it again", exc)
                    continue
                raise MetadataUnavailable(
                    f"the MySQL database at {self.config.host}:{self.config.port} failed: "
                    f"{'no answer in time' if isinstance(exc, TimeoutError) else exc}"
                ) from exc
        raise AssertionError("unreachable")

    # -- the port -------------------------------------------------------------------------------

    async def init(self) -> None:
        """Create the database if it is missing, create or migrate the schema, and warm the pool."""
        try:
            try:
                connection = await self._connect(self.init_timeout_seconds)
            except my.OperationalError as exc:
                if error_code(exc) != BAD_DATABASE:
                    raise
                await self._create_database()
                connection = await self._connect(self.init_timeout_seconds)
            try:
                async with asyncio.timeout(self.init_timeout_seconds):
                    version = await schema.migrate(connection)
            finally:
                connection.close()
            await self._pool.fill(self.pool_min_size)
        except MetadataUnavailable:
            raise
        except (my.MySQLError, OSError, TimeoutError) as exc:
            reason = "no answer in time" if isinstance(exc, TimeoutError) else exc
            where = self.config.safe_url()
            raise MetadataUnavailable(f"cannot initialise MySQL at {where}: {reason}") from exc
        log.info("MySQL schema ready at version %d (%s)", version, self.config.safe_url())

    async def _create_database(self) -> None:
        # An identifier cannot be a bound parameter, so the server quotes the name itself: the name
        # travels as a value into a prepared CREATE DATABASE (and DATABASE_NAME already vetted it).
        name = self.config.database
        if not DATABASE_NAME.match(name):
            raise MetadataUnavailable(f"refusing to create a database named {name!r}")
        connection = await self._connect(self.init_timeout_seconds, with_database=False)
        try:
            async with asyncio.timeout(self.init_timeout_seconds), connection.cursor() as cursor:
                for statement, params in CREATE_DATABASE:
                    await cursor.execute(statement, {"name": name} if params else None)
            log.info("created MySQL database %s", name)
        finally:
            connection.close()

    async def add(
        self, detail: ImageDetail, idempotency_key: str | None = None, request_hash: str | None = None
    ) -> None:
        row = detail_to_row(detail, idempotency_key, request_hash)
        row["created_at"] = row["updated_at"] = utc_naive(row["created_at"])

        async def image_and_its_words(cursor) -> None:
            await cursor.execute(INSERT, row)
            words = word_postings.posting_rows(cursor.lastrowid, row["created_at"], row["prompt"])
            if words:
                await cursor.executemany(word_index.INSERT_POSTING, words)

        try:
            await self._with_cursor(image_and_its_words, transaction=True)
        except _DuplicateAfterRetry as exc:
            # The first attempt lost its connection, the retry hit a duplicate: if the row with our
            # guid is there, the first attempt was committed before the connection died. Done.
            if await self._execute(GET_BY_GUID, {"guid": row["guid"]}):
                return
            self._raise_integrity(exc.error, idempotency_key)
        except my.IntegrityError as exc:
            self._raise_integrity(exc, idempotency_key)

    @staticmethod
    def _raise_integrity(exc: my.IntegrityError, idempotency_key: str | None) -> None:
        if (
            idempotency_key is not None
            and error_code(exc) == DUPLICATE_ENTRY
            and "uq_images_idempotency_key" in str(exc)
        ):
            raise IdempotencyConflict() from exc
        raise MetadataUnavailable(f"the image could not be recorded: {exc}") from exc

    async def get(self, guid: UUID) -> ImageDetail | None:
        rows = await self._image_rows(GET_BY_GUID, {"guid": str(guid)})
        return stored_image(rows[0]).detail if rows else None

    async def get_by_idempotency_key(self, key: str) -> IdempotentResult | None:
        rows = await self._image_rows(GET_BY_IDEMPOTENCY_KEY, {"idempotency_key": key})
        if not rows:
            return None
        stored = stored_image(rows[0])
        return IdempotentResult(detail=stored.detail, request_hash=stored.request_hash or "")

    async def release_idempotency_key(self, key: str, older_than: datetime) -> None:
        params = {"idempotency_key": key, "older_than": utc_naive(older_than)}
        await self._execute(RELEASE_IDEMPOTENCY_KEY, params)

    async def list_page(
        self, limit: int, after: PagePosition | None = None, filters: ImageFilter | None = None
    ) -> ImagePage:
        if filters is not None and not filters.empty:
            return await self._filtered_page(limit, after, filters)
        if after is None:
            rows = await self._image_rows(LIST_FIRST, {"limit": limit + 1})
        else:
            params = {"limit": limit + 1, "created_at": utc_naive(after.created_at), "id": after.id}
            rows = await self._image_rows(LIST_AFTER, params)
        return page_from_rows(rows, limit)

    async def _filtered_page(self, limit: int, after: PagePosition | None, filters: ImageFilter) -> ImagePage:
        if filters.words:
            return await self._word_page(limit, after, filters)
        return await self._indexed_page(limit, after, filters)

    async def _word_page(self, limit: int, after: PagePosition | None, filters: ImageFilter) -> ImagePage:
        """Words: off the posting table (adapters/word_postings.py)."""

        async def probe(sql: str, params: dict[str, Any]) -> tuple:
            return (await self._execute(sql, params))[0]

        def position_of(row) -> PagePosition:
            return PagePosition(created_at=row[_CREATED_AT], id=row[0])

        rows = await word_postings.word_page_rows(
            "mysql",
            limit,
            after,
            filters,
            params=lambda size, position: self._filter_params(size, position, filters),
            probe=probe,
            page=self._image_rows,
            position_of=position_of,
        )
        return page_from_rows(rows, limit)

    def _filter_params(self, limit: int, after: PagePosition | None, f: ImageFilter) -> dict[str, Any]:
        params: dict[str, Any] = {"limit": limit, "model": f.model}
        params["owner"] = f.owner
        params["created_after"] = utc_naive(f.created_after) if f.created_after else None
        params["created_before"] = utc_naive(f.created_before) if f.created_before else None
        params["created_at"] = utc_naive(after.created_at) if after else None
        params["id"] = after.id if after else None
        return params

    async def _indexed_page(self, limit: int, after: PagePosition | None, filters: ImageFilter) -> ImagePage:
        f = filters
        sql = (
            f"{LIST if not (f.model or f.owner) else SELECT} "
            f"WHERE {MODEL_IS if f.model else TRUE} AND {CREATED_AFTER if f.created_after else TRUE} "
            f"AND {CREATED_BEFORE_FILTER if f.created_before else TRUE} "
            f"AND {OWNER_IS if f.owner else TRUE} "
            f"AND {KEYSET_AFTER if after else TRUE} {NEWEST_FIRST}"
        )
        return page_from_rows(await self._image_rows(sql, self._filter_params(limit + 1, after, f)), limit)

    async def delete(self, guid: UUID) -> bool:
        # A retry after a lost connection may find the row already gone: then the first attempt took it.
        return bool(await self._execute(DELETE_BY_GUID, {"guid": str(guid)}, count=True))

    async def created_before(self, cutoff: datetime, limit: int) -> list[ImageDetail]:
        rows = await self._image_rows(CREATED_BEFORE, {"cutoff": utc_naive(cutoff), "limit": limit})
        return [stored_image(row).detail for row in rows]

    async def record_usage(self, entry: UsageEntry) -> None:
        row = usage_to_row(entry)
        row["created_at"] = utc_naive(row["created_at"])
        await self._execute(INSERT_USAGE, row)

    async def usage_totals(
        self, since: datetime, until: datetime, owner: str | None = None
    ) -> list[UsageTotal]:
        params = {"since": utc_naive(since), "until": utc_naive(until)}
        if owner is None:
            return usage_totals(await self._execute(USAGE_TOTALS, params))
        return usage_totals(await self._execute(USAGE_TOTALS_OF, {**params, "owner": owner}))

    async def reindex_words(self) -> int:
        # A connection of its own, each statement under the migration timeout: this reads every row.
        try:
            connection = await self._connect(self.init_timeout_seconds)
            try:
                async with connection.cursor() as cursor:
                    return await word_index.backfill(cursor, from_start=True)
            finally:
                connection.close()
        except (my.MySQLError, OSError, TimeoutError) as exc:
            raise MetadataUnavailable(f"re-indexing the words on MySQL failed: {exc}") from exc

    async def existing(self, guids: Iterable[UUID]) -> set[UUID]:
        found: set[UUID] = set()
        for chunk in chunks([str(g) for g in guids]):
            params = {f"g{i}": g for i, g in enumerate(chunk)}
            marks = ", ".join(f"%({name})s" for name in params)
            rows = await self._execute(f"{EXISTING} ({marks})", params)
            found.update(UUID(r[0]) for r in rows)
        return found

    async def ping(self) -> None:
        await self._execute(PING)

    async def close(self) -> None:
        # A fresh (unused) pool takes its place, so a closed repository can be used again.
        pool, self._pool = self._pool, self._new_pool()
        await pool.close()
