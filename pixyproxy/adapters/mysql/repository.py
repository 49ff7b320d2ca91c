"""MySQLImageRepository: the ImageRepository port on MySQL 8 / MariaDB 10.6+, through an asyncmy pool.

* Every statement is a constant string with %(name)s parameters; asyncmy escapes the values.
* A pool of connections (no connect per request). A pooled connection the server has closed is
  dropped at checkout, and a statement that loses its connection is retried once on a fresh one,
  so a MySQL restart is survived without restarting PixyProxy.
* connect_timeout bounds the TCP connect, read_timeout every reply (the handshake included), so an
  unreachable or hung server becomes MetadataUnavailable (503) within seconds.
* Nothing is cached: every read asks the database, so rows deleted behind our back stay deleted.
"""

import asyncio
import logging
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import asyncmy
from asyncmy import errors as my

from pixyproxy.adapters.mysql import init as schema
from pixyproxy.adapters.mysql.config import DATABASE_NAME, MySQLConfig, parse_mysql_url
from pixyproxy.adapters.rows import DETAIL_COLUMNS, detail_to_row, row_to_detail
from pixyproxy.domain.errors import IdempotencyConflict, MetadataUnavailable
from pixyproxy.domain.models import IdempotentResult, ImageDetail, ImagePage, PagePosition

log = logging.getLogger(__name__)

# Session settings on every new connection: UTC for any server-side time function, and a known
# sql_mode (strict; and without NO_BACKSLASH_ESCAPES, which the client-side escaping relies on).
INIT_COMMAND = (
    "SET time_zone = '+00:00', sql_mode = 'STRICT_TRANS_TABLES,NO_ZERO_IN_DATE,NO_ZERO_DATE,"
    "ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION'"
)

# The columns every SELECT returns, in this order (checked against rows.DETAIL_COLUMNS by a test).
SELECT_COLUMNS = ("id", "request_hash", *DETAIL_COLUMNS)

GET_BY_GUID = (
    "SELECT id, request_hash, guid, filename, prompt, created_at, content_type, size_bytes, width, "
    "height, model, size, quality, revised_prompt, usage_json, sha256 "
    "FROM images WHERE guid = %(guid)s"
)
GET_BY_IDEMPOTENCY_KEY = (
    "SELECT id, request_hash, guid, filename, prompt, created_at, content_type, size_bytes, width, "
    "height, model, size, quality, revised_prompt, usage_json, sha256 "
    "FROM images WHERE idempotency_key = %(idempotency_key)s"
)
LIST_FIRST = (
    "SELECT id, request_hash, guid, filename, prompt, created_at, content_type, size_bytes, width, "
    "height, model, size, quality, revised_prompt, usage_json, sha256 "
    "FROM images FORCE INDEX (ix_images_created_at_id) ORDER BY created_at DESC, id DESC LIMIT %(limit)s"
)
# The keyset condition spelled out (not a row comparison), so both MySQL and MariaDB turn it into
# a range on ix_images_created_at_id: a deep page reads `limit` index entries, not the ones before it.
LIST_AFTER = (
    "SELECT id, request_hash, guid, filename, prompt, created_at, content_type, size_bytes, width, "
    "height, model, size, quality, revised_prompt, usage_json, sha256 "
    "FROM images FORCE INDEX (ix_images_created_at_id) "
    "WHERE created_at < %(created_at)s OR (created_at = %(created_at)s AND id < %(id)s) "
    "ORDER BY created_at DESC, id DESC LIMIT %(limit)s"
)
INSERT = (
    "INSERT INTO images (guid, filename, prompt, created_at, updated_at, content_type, size_bytes, "
    "width, height, model, size, quality, revised_prompt, usage_json, sha256, idempotency_key, "
    "request_hash) VALUES (%(guid)s, %(filename)s, %(prompt)s, %(created_at)s, %(updated_at)s, "
    "%(content_type)s, %(size_bytes)s, %(width)s, %(height)s, %(model)s, %(size)s, %(quality)s, "
    "%(revised_prompt)s, %(usage_json)s, %(sha256)s, %(idempotency_key)s, %(request_hash)s)"
)
# One statement, so checking the age and letting go of the key are atomic; safe to retry (a second run
# finds the key already gone, or a fresh row that another process stored under it, and changes nothing).
RELEASE_IDEMPOTENCY_KEY = (
    "UPDATE images SET idempotency_key = NULL, request_hash = NULL "
    "WHERE idempotency_key = %(idempotency_key)s AND created_at < %(older_than)s"
)
# `guids` is a tuple: the driver escapes each element and writes the parenthesised list.
EXISTING = "SELECT guid FROM images WHERE guid IN %(guids)s"
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

EXISTING_CHUNK = 500

_NAMED = re.compile(r"%\((\w+)\)s")


class Statement:
    """A constant statement with %(name)s parameters, run as a server-side prepared statement.

    The driver's binary protocol takes positional markers, so the names are turned into markers once,
    here, with the order of the values remembered; values then travel apart from the SQL text (nothing
    is escaped or formatted into it). The server parses each statement once per connection.
    """

    __slots__ = ("markers", "names", "sql")

    def __init__(self, sql: str) -> None:
        self.sql = sql
        self.names = tuple(_NAMED.findall(sql))
        self.markers = _NAMED.sub("%s", sql)

    def values(self, params: dict[str, Any] | None) -> tuple:
        return tuple(params[name] for name in self.names) if params else ()


PREPARED = {
    sql: Statement(sql)
    for sql in (
        GET_BY_GUID,
        GET_BY_IDEMPOTENCY_KEY,
        LIST_FIRST,
        LIST_AFTER,
        INSERT,
        RELEASE_IDEMPOTENCY_KEY,
    )
}

# Client error codes meaning "this connection is dead"; worth one retry on a fresh connection.
_CONNECTION_LOST = {
    2006,  # server has gone away
    2013,  # lost connection during query
    2055,  # lost connection at reading/sending
    1053,  # server shutdown in progress
    1927,  # MariaDB: connection was killed
    4031,  # MySQL 8: disconnected by the server because of inactivity
}
_DUPLICATE_ENTRY = 1062
_BAD_DATABASE = 1049


def _utc_naive(value: datetime) -> datetime:
    """DATETIME(6) holds UTC wall time; the domain's aware datetimes are converted here."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value


def _error_code(exc: BaseException) -> int | None:
    args = getattr(exc, "args", ())
    return args[0] if args and isinstance(args[0], int) else None


def _connection_lost(exc: BaseException) -> bool:
    """A dead connection (worth one retry); not a timeout: a hung server would only double the wait."""
    if "timeout" in str(exc).lower():
        return False
    return isinstance(exc, my.InterfaceError) or _error_code(exc) in _CONNECTION_LOST


def _row_dict(row: tuple) -> dict[str, Any]:
    return dict(zip(SELECT_COLUMNS, row, strict=True))


def _detail(row: dict[str, Any]) -> ImageDetail:
    row = dict(row)
    del row["id"], row["request_hash"]
    return row_to_detail(row)


class _DuplicateAfterRetry(Exception):
    """An INSERT hit a duplicate on its retry: the first attempt reached the server after all."""

    def __init__(self, error: my.IntegrityError) -> None:
        super().__init__(str(error))
        self.error = error


class MySQLImageRepository:
    name = "mysql"

    def __init__(self, config: MySQLConfig | str) -> None:
        self.config = parse_mysql_url(config) if isinstance(config, str) else config
        self._pool: Any = None
        self._pool_lock: asyncio.Lock | None = None

    @classmethod
    def from_url(cls, url: str) -> "MySQLImageRepository":
        return cls(parse_mysql_url(url))

    # -- connections ----------------------------------------------------------------------------

    def _connect_kwargs(self, read_timeout: float, with_database: bool = True) -> dict[str, Any]:
        config = self.config
        kwargs: dict[str, Any] = dict(
            host=config.host,
            port=config.port,
            user=config.user,
            password=config.password,
            charset="utf8mb4",
            autocommit=True,
            connect_timeout=config.connect_timeout,
            read_timeout=read_timeout,
            init_command=INIT_COMMAND,
        )
        if with_database:
            kwargs["db"] = config.database
        return kwargs

    async def _get_pool(self) -> Any:
        if self._pool is None:
            if self._pool_lock is None:
                self._pool_lock = asyncio.Lock()
            async with self._pool_lock:
                if self._pool is None:
                    # minsize=0: creating the pool never connects, so it cannot fail; connections
                    # are opened on demand and kept (up to pool_size) for reuse.
                    self._pool = await asyncmy.create_pool(
                        minsize=0,
                        maxsize=self.config.pool_size,
                        pool_recycle=self.config.pool_recycle,
                        stmt_cache_size=len(PREPARED) + 2,
                        **self._connect_kwargs(self.config.read_timeout),
                    )
        return self._pool

    async def _execute(self, sql: str, params: dict[str, Any] | None = None) -> list[tuple]:
        """Run one statement on a pooled connection; retry once if the connection was dead."""
        for attempt in (1, 2):
            try:
                pool = await self._get_pool()
                async with pool.acquire() as connection, connection.cursor() as cursor:
                    prepared = PREPARED.get(sql)
                    if prepared is not None:
                        await cursor.execute(prepared.markers, prepared.values(params))
                    else:  # e.g. EXISTING's IN list: the driver escapes the named values
                        await cursor.execute(sql, params)
                    return list(await cursor.fetchall())
            except my.IntegrityError as exc:
                if attempt == 2:
                    raise _DuplicateAfterRetry(exc) from exc
                raise
            except (my.MySQLError, OSError, TimeoutError, RuntimeError) as exc:
                if attempt == 1 and _connection_lost(exc):
                    log.info("MySQL connection lost (%s); retrying once on a fresh connection", exc)
                    continue
                raise MetadataUnavailable(
                    f"the MySQL database at {self.config.host}:{self.config.port} failed: {exc}"
                ) from exc
        raise AssertionError("unreachable")

    # -- the port -------------------------------------------------------------------------------

    async def init(self) -> None:
        """Create the database if it is missing, then create or migrate the schema."""
        try:
            try:
                connection = await asyncmy.connect(**self._connect_kwargs(self.config.init_timeout))
            except my.OperationalError as exc:
                if _error_code(exc) != _BAD_DATABASE:
                    raise
                await self._create_database()
                connection = await asyncmy.connect(**self._connect_kwargs(self.config.init_timeout))
            try:
                version = await schema.migrate(connection)
            finally:
                connection.close()
        except MetadataUnavailable:
            raise
        except (my.MySQLError, OSError, TimeoutError) as exc:
            raise MetadataUnavailable(f"cannot initialise MySQL at {self.config.safe_url()}: {exc}") from exc
        log.info("MySQL schema ready at version %d (%s)", version, self.config.safe_url())

    async def _create_database(self) -> None:
        # An identifier cannot be a bound parameter, so the server quotes the name itself: the name
        # travels as a value into a prepared CREATE DATABASE (and DATABASE_NAME already vetted it).
        name = self.config.database
        if not DATABASE_NAME.match(name):
            raise MetadataUnavailable(f"refusing to create a database named {name!r}")
        connection = await asyncmy.connect(**self._connect_kwargs(self.config.init_timeout, False))
        try:
            async with connection.cursor() as cursor:
                for statement, params in CREATE_DATABASE:
                    await cursor.execute(statement, {"name": name} if params else None)
            log.info("created MySQL database %s", name)
        finally:
            connection.close()

    async def add(
        self, detail: ImageDetail, idempotency_key: str | None = None, request_hash: str | None = None
    ) -> None:
        row = detail_to_row(detail)
        row["created_at"] = row["updated_at"] = _utc_naive(row["created_at"])
        row.update(idempotency_key=idempotency_key, request_hash=request_hash)
        try:
            await self._execute(INSERT, row)
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
            and _error_code(exc) == _DUPLICATE_ENTRY
            and "uq_images_idempotency_key" in str(exc)
        ):
            raise IdempotencyConflict() from exc
        raise MetadataUnavailable(f"the image could not be recorded: {exc}") from exc

    async def get(self, guid: UUID) -> ImageDetail | None:
        rows = await self._execute(GET_BY_GUID, {"guid": str(guid)})
        return _detail(_row_dict(rows[0])) if rows else None

    async def get_by_idempotency_key(self, key: str) -> IdempotentResult | None:
        rows = await self._execute(GET_BY_IDEMPOTENCY_KEY, {"idempotency_key": key})
        if not rows:
            return None
        row = _row_dict(rows[0])
        return IdempotentResult(detail=_detail(row), request_hash=row["request_hash"] or "")

    async def release_idempotency_key(self, key: str, older_than: datetime) -> None:
        params = {"idempotency_key": key, "older_than": _utc_naive(older_than)}
        await self._execute(RELEASE_IDEMPOTENCY_KEY, params)

    async def list_page(self, limit: int, after: PagePosition | None = None) -> ImagePage:
        if after is None:
            rows = await self._execute(LIST_FIRST, {"limit": limit + 1})
        else:
            params = {"limit": limit + 1, "created_at": _utc_naive(after.created_at), "id": after.id}
            rows = await self._execute(LIST_AFTER, params)
        dicts = [_row_dict(r) for r in rows[:limit]]
        items = [_detail(d) for d in dicts]
        next_position = None
        if len(rows) > limit:
            next_position = PagePosition(created_at=items[-1].created_at, id=dicts[-1]["id"])
        return ImagePage(items=items, next=next_position)

    async def existing(self, guids: Iterable[UUID]) -> set[UUID]:
        wanted = tuple(str(g) for g in guids)
        found: set[UUID] = set()
        for start in range(0, len(wanted), EXISTING_CHUNK):
            rows = await self._execute(EXISTING, {"guids": wanted[start : start + EXISTING_CHUNK]})
            found.update(UUID(r[0]) for r in rows)
        return found

    async def ping(self) -> None:
        await self._execute(PING)

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()
            try:
                await asyncio.wait_for(pool.wait_closed(), 5)
            except TimeoutError:
                pool.terminate()
