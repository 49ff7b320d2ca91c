"""The Database: one SQLAlchemy async engine (one pool) per process, shared by every table's store.

* `run(work)` is the one unit of work: a transaction on a pooled connection, committed when `work`
  returns, rolled back when it raises, run again by the retry policy (retry.py) when that is safe.
  `rows()` and `execute()` are one statement's unit of work.
* Driver errors are classified once (errors.py) and become MetadataUnavailable (503), Duplicate (the
  store decides), or MetadataOutcomeUnknown when the answer to a COMMIT never came.
* A read (`rows()`) is one statement in autocommit on the driver's own cursor (reads.py): on SQLite,
  on the loop's own connection when SQLite can answer without waiting for a lock, else one hop to a
  reader thread; on MySQL on an idle pooled connection's aiomysql cursor (a greenlet only to connect).
* SQLite: the loop never waits for SQLite's locks: writes run on aiosqlite's threads. Writes take
  the write lock at BEGIN (BEGIN IMMEDIATE) and queue in the process first, so a write waiting for
  another process's lock holds one connection and every read goes on (WAL: readers never wait for the
  writer).
* MySQL: aiomysql, autocommit off, every session in UTC with a known sql_mode; a connection found dead
  (a restart, a KILL) invalidates the pool and the unit of work runs again on a fresh one; the checkout
  and each unit of work are bounded by the connect and read timeouts, so a hung server becomes a 503
  within seconds.
"""

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Sequence
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import aiomysql
from sqlalchemy import event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.sql.elements import TextClause

from pixyproxy.adapters.mysql.config import parse_mysql_url
from pixyproxy.adapters.sql import schema
from pixyproxy.adapters.sql.dialect import DIALECTS, MYSQL_INIT_COMMAND, Dialect
from pixyproxy.adapters.sql.errors import Duplicate, Kind, classify, is_database_error
from pixyproxy.adapters.sql.reads import SQLiteReads, mysql_read, out_of_step
from pixyproxy.adapters.sql.retry import Retryable, RetryPolicy
from pixyproxy.domain.errors import MetadataOutcomeUnknown, MetadataUnavailable

log = logging.getLogger(__name__)
T = TypeVar("T")

# The isolation levels a MySQL unit of work may ask for (a constant, never a value, in the SET).
ISOLATIONS = {"READ COMMITTED": "READ COMMITTED"}
# SQLite's own pool: a few connections, so reads go on while one waits for the write lock.
SQLITE_POOL_SIZE = 4


@functools.lru_cache(maxsize=1024)
def statement(sql: str) -> TextClause:
    """A statement with :name parameters, parsed once."""
    return text(sql)


def database_url(url: str) -> URL:
    """sqlite:///path or mysql://user:pass@host:port/db (any mysql+driver too) as SQLAlchemy's URL."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend not in DIALECTS:
        raise ValueError(f"not an SQLite or MySQL URL: {parsed.drivername}://...")
    if backend == "sqlite" and parsed.query:
        raise ValueError(
            f"the database URL takes no query options (got {', '.join(parsed.query)}); the pool and "
            "timeouts are settings"
        )
    if backend == "mysql":
        parse_mysql_url(url)  # its own checks: a database named, no query options (they are settings)
    return parsed


class Tx:
    """A unit of work's connection: statements with :name parameters. BEGIN and COMMIT go to the driver
    itself (`driver`, aiosqlite's or aiomysql's connection): one call each, where SQLAlchemy's path
    would cost three of aiosqlite's thread hops and the CPU of a statement's result. On SQLite every
    statement does too (:name is sqlite3's own parameter style): one hop to aiosqlite's thread, where
    SQLAlchemy's cursor, execute and close took three and a greenlet. Rows are tuples either way."""

    def __init__(self, connection: AsyncConnection, dialect: Dialect, driver: Any = None) -> None:
        self.connection = connection
        self.dialect = dialect
        self.driver = driver

    async def _driver(self) -> Any:
        if self.driver is None:
            self.driver = (await self.connection.get_raw_connection()).driver_connection
        return self.driver

    async def _statement(self, sql: str, params: Any) -> Any:
        """Every statement of a unit of work passes here. Its result has rowcount and lastrowid; on
        SQLite it is aiosqlite's cursor (rows come with one more hop), else SQLAlchemy's result."""
        if self.dialect.name == "sqlite":
            driver = await self._driver()
            if isinstance(params, list):
                return await driver.executemany(sql, params)
            return await driver.execute(sql, params)
        return await self.connection.execute(statement(sql), params)

    async def rows(self, sql: str, params: dict[str, Any] | None = None) -> Sequence[Sequence[Any]]:
        result = await self._statement(sql, params or {})
        if self.dialect.name == "sqlite":
            return await result.fetchall()
        return result.all()

    async def execute(self, sql: str, params: dict[str, Any] | None = None) -> int:
        """The number of rows the statement changed."""
        return (await self._statement(sql, params or {})).rowcount

    async def insert(self, sql: str, params: dict[str, Any]) -> int:
        """The new row's auto-increment id."""
        return int((await self._statement(sql, params)).lastrowid)

    async def executemany(self, sql: str, rows: list[dict[str, Any]]) -> None:
        if rows:
            await self._statement(sql, rows)

    async def begin(self, isolation: str | None = None) -> None:
        """Our own BEGIN (the connection is in autocommit otherwise): SQLite's takes the write lock at
        once (BEGIN IMMEDIATE; a deferred one would fail, not wait, when another writer committed since
        it began reading); MySQL's may name the isolation of this one transaction."""
        driver = await self._driver()
        if self.dialect.name == "sqlite":
            await driver.execute("BEGIN IMMEDIATE")
            return
        if isolation is not None:
            await driver.query(f"SET TRANSACTION ISOLATION LEVEL {ISOLATIONS[isolation]}")
        await driver.begin()

    async def commit(self) -> None:
        if self.dialect.name == "sqlite":
            await self.driver.execute("COMMIT")
        else:
            await self.driver.commit()


class Database:
    """Pool size and timeouts come from settings (the container passes them)."""

    def __init__(
        self,
        url: str,
        *,
        pool_min_size: int = 0,
        pool_max_size: int,
        pool_recycle_seconds: float,
        connect_timeout_seconds: float,
        read_timeout_seconds: float,
        init_timeout_seconds: float,
        sqlite_busy_timeout_seconds: float,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.url = database_url(url)
        self.name = self.url.get_backend_name()
        self.dialect = DIALECTS[self.name]
        if not 0 <= pool_min_size <= pool_max_size:
            raise ValueError(f"the pool's minimum size {pool_min_size} is not 0..{pool_max_size}")
        self.pool_min_size = pool_min_size
        self.pool_max_size = pool_max_size
        self.pool_recycle_seconds = pool_recycle_seconds
        self.connect_timeout_seconds = connect_timeout_seconds
        self.read_timeout_seconds = read_timeout_seconds
        self.init_timeout_seconds = init_timeout_seconds
        self.busy_timeout_seconds = sqlite_busy_timeout_seconds
        self.retry = retry or RetryPolicy()
        self._engine: AsyncEngine | None = None
        self._reads: SQLiteReads | None = None
        self._writer = asyncio.Lock()  # SQLite's single writer, queued in the process
        self._gate: tuple[asyncio.AbstractEventLoop, asyncio.Semaphore] | None = None  # see _wait_turn
        self._migrated = False

    def safe_url(self) -> str:
        return self.url.render_as_string(hide_password=True)

    # -- the engine ------------------------------------------------------------------------------

    @property
    def engine(self) -> AsyncEngine:
        if self._engine is None:
            self._engine = self._sqlite_engine() if self.name == "sqlite" else self._mysql_engine()
        return self._engine

    def _sqlite_engine(self) -> AsyncEngine:
        path = self.url.database or ":memory:"
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(
            self.url.set(drivername="sqlite+aiosqlite"),
            pool_size=SQLITE_POOL_SIZE,
            max_overflow=0,
            # Autocommit at the driver: a read is one statement and one thread hop; a unit of work that
            # writes says BEGIN and COMMIT itself (Tx.begin), so the pool has nothing to reset.
            isolation_level="AUTOCOMMIT",
            skip_autocommit_rollback=True,
            pool_reset_on_return=None,
            connect_args={"timeout": self.busy_timeout_seconds},
        )
        sqlite_transactions(engine.sync_engine)
        return engine

    def _mysql_engine(self) -> AsyncEngine:
        config = parse_mysql_url(self.url.render_as_string(hide_password=False))

        options = {
            "host": config.host,
            "port": config.port,
            "user": config.user,
            "password": config.password,
            "db": config.database,
            "charset": "utf8mb4",
            "connect_timeout": self.connect_timeout_seconds,
            "init_command": MYSQL_INIT_COMMAND,
            # Without SQLAlchemy's CLIENT_FOUND_ROWS: a count is of rows changed, so an upsert that
            # met its own earlier copy (and changed nothing) says 0.
            "client_flag": 0,
        }
        return create_async_engine(
            self.url.set(drivername="mysql+aiomysql"),
            async_creator=lambda: Connecting(options),
            pool_size=self.pool_max_size,
            max_overflow=0,
            # As on SQLite: a read is one round trip; a write's transaction is START TRANSACTION ... COMMIT.
            isolation_level="AUTOCOMMIT",
            skip_autocommit_rollback=True,
            pool_reset_on_return=None,
            pool_recycle=self.pool_recycle_seconds,
            pool_timeout=self.connect_timeout_seconds + self.read_timeout_seconds,
        )

    # -- units of work ---------------------------------------------------------------------------

    async def run(
        self,
        work: Callable[[Tx], Awaitable[T]],
        *,
        write: bool = True,
        idempotent: bool = False,
        isolation: str | None = None,
    ) -> T:
        """`work` in one transaction, under the retry policy. `idempotent`: running it twice changes
        nothing more than once (every read; a write like "set X to 1"), so a COMMIT left unanswered is
        run again rather than reported as MetadataOutcomeUnknown."""

        async def once() -> T:
            async with self.transaction(write=write, idempotent=idempotent, isolation=isolation) as tx:
                return await work(tx)

        return await self.retry.run(once)

    async def rows(
        self, sql: str, params: dict[str, Any] | None = None, *, by_key: bool = False
    ) -> Sequence[Sequence[Any]]:
        """One read, its rows as tuples (reads.py). `by_key`: a read of a few rows by a unique key, cheap
        whatever the table's size, which SQLite may answer on the loop itself when it needs no lock."""

        async def once() -> Sequence[Sequence[Any]]:
            try:
                if self.name == "sqlite":
                    return await self._sqlite_reads().rows(sql, params or {}, by_key=by_key)
                # A wait for the pool and a checkout bounded as in transaction(), the statement by the
                # read timeout; a timer only where something may wait.
                checkout = self.connect_timeout_seconds + self.read_timeout_seconds
                gate = await self._wait_turn()
                try:
                    return await mysql_read(
                        self.engine, sql, params or {}, checkout, self.read_timeout_seconds
                    )
                finally:
                    gate.release()
            except BaseException as exc:
                failure = self._failure(exc, committing=False, idempotent=True)
                if failure is exc:
                    raise
                raise failure from exc

        return await self.retry.run(once)

    def _sqlite_reads(self) -> SQLiteReads:
        if self._reads is None:
            self._reads = SQLiteReads(self.url.database or ":memory:", self.busy_timeout_seconds)
        return self._reads

    async def execute(
        self, sql: str, params: dict[str, Any] | None = None, *, idempotent: bool = False
    ) -> int:
        async def change(tx: Tx) -> int:
            return await tx.execute(sql, params)

        return await self.run(change, idempotent=idempotent)

    @contextlib.asynccontextmanager
    async def transaction(
        self, *, write: bool = True, idempotent: bool = False, isolation: str | None = None
    ) -> AsyncIterator[Tx]:
        """One transaction; driver errors leave it classified (see the module's docstring)."""
        async with contextlib.AsyncExitStack() as stack:
            if write and self.name == "sqlite":
                await self._guard(self._queue_for_writer(stack), committing=False, idempotent=idempotent)
            connection = await self._guard(self._checkout(stack), committing=False, idempotent=idempotent)
            tx = Tx(connection, self.dialect)
            begun = False
            try:
                async with asyncio.timeout(self._work_timeout()):
                    if write:
                        await tx.begin(isolation)
                        begun = True
                    yield tx
            except BaseException as exc:
                await self._raise_failed(connection, exc, begun, committing=False, idempotent=idempotent)
            if not write:
                return  # a read is one statement in autocommit: nothing to end
            try:
                async with asyncio.timeout(self._work_timeout()):
                    await tx.commit()
            except BaseException as exc:
                await self._raise_failed(connection, exc, begun, committing=True, idempotent=idempotent)

    async def _raise_failed(
        self,
        connection: AsyncConnection,
        exc: BaseException,
        begun: bool,
        *,
        committing: bool,
        idempotent: bool,
    ) -> NoReturn:
        """End the failed unit of work, then raise what it failed with, classified (the work's own
        exception, a cancellation included, as it is)."""
        await self._end_failed(connection, exc, begun)
        failure = self._failure(exc, committing=committing, idempotent=idempotent)
        if failure is exc:
            raise exc
        raise failure from exc

    async def _end_failed(self, connection: AsyncConnection, exc: BaseException, begun: bool) -> None:
        """Roll back what a failed unit of work began, or drop a connection left out of step."""
        if out_of_step(exc):
            with contextlib.suppress(Exception):
                await asyncio.shield(connection.invalidate())
            return
        if begun:
            try:
                await asyncio.shield(connection.exec_driver_sql("ROLLBACK"))
            except Exception:
                with contextlib.suppress(Exception):
                    await asyncio.shield(connection.invalidate())

    async def _queue_for_writer(self, stack: contextlib.AsyncExitStack) -> None:
        async with asyncio.timeout(self.busy_timeout_seconds):
            await self._writer.acquire()
        stack.callback(self._writer.release)

    async def _checkout(self, stack: contextlib.AsyncExitStack) -> AsyncConnection:
        async with asyncio.timeout(self.connect_timeout_seconds + self.read_timeout_seconds):
            if self.name == "mysql":
                gate = await self._wait_turn()
                stack.callback(gate.release)  # after the connection is back in the pool
            return await stack.enter_async_context(self.engine.connect())

    async def _wait_turn(self) -> asyncio.Semaphore:
        """A turn at MySQL's pool, taken (the caller releases it once its connection is back): checkouts
        queue here, the pool's size at a time, so the pool always has one to give; waiting here costs a
        future, where waiting in SQLAlchemy's pool costs a task and a greenlet switch per checkout. The
        wait is bounded as a checkout is, with a timer only when every connection is out."""
        loop = asyncio.get_running_loop()
        if self._gate is None or self._gate[0] is not loop:  # a semaphore belongs to the loop it waits on
            self._gate = (loop, asyncio.Semaphore(self.pool_max_size))
        gate = self._gate[1]
        if gate.locked():
            async with asyncio.timeout(self.connect_timeout_seconds + self.read_timeout_seconds):
                await gate.acquire()
        else:
            await gate.acquire()  # free: taken at once
        return gate

    def _work_timeout(self) -> float | None:
        # SQLite's own busy timeout bounds its waits (a statement on a local file has no reply to await).
        return None if self.name == "sqlite" else self.read_timeout_seconds

    async def _guard(self, step: Awaitable[T], *, committing: bool, idempotent: bool) -> T:
        try:
            return await step
        except BaseException as exc:
            if not is_database_error(exc):
                raise
            raise self._failure(exc, committing=committing, idempotent=idempotent) from exc

    def _failure(self, exc: BaseException, *, committing: bool, idempotent: bool) -> BaseException:
        """What a failed unit of work raises: the domain's error, Duplicate, or Retryable."""
        if not is_database_error(exc):
            return exc  # the work's own exception (a domain error, a cancellation) passes as it is
        failure = classify(exc)
        where = f"the {self.name} database" + ("" if self.name == "sqlite" else f" at {self.url.host}")
        reason = (
            "no answer in time" if failure.kind is Kind.TIMEOUT else str(getattr(exc, "orig", exc) or exc)
        )
        message = f"{where} failed: {reason}"
        if failure.kind is Kind.DUPLICATE:
            return Duplicate(failure.constraint, exc)
        if failure.kind is Kind.DEADLOCK:
            return Retryable(Kind.DEADLOCK, message)
        if failure.kind in (Kind.CONNECTION_LOST, Kind.TIMEOUT) and committing:
            if idempotent and failure.kind is Kind.CONNECTION_LOST:
                return Retryable(Kind.CONNECTION_LOST, message)
            return MetadataOutcomeUnknown(
                f"{message} (after COMMIT was sent: the change may or may not be kept)"
            )
        if failure.kind is Kind.CONNECTION_LOST:
            return Retryable(Kind.CONNECTION_LOST, message)
        if failure.kind is Kind.BUSY:
            return MetadataUnavailable(f"{where} is busy (a write lock held too long): {reason}")
        return MetadataUnavailable(message)

    # -- start and stop --------------------------------------------------------------------------

    async def init(self) -> None:
        """Bring the schema to the newest revision (once per process), then open the first connections
        (SQLite: the loop's reader; MySQL: pool_min_size), so the first requests skip a connect."""
        await self._ensure_migrated()
        if self.name == "sqlite":
            await self._sqlite_reads().open()
        await self.ping()
        if self.name == "mysql" and self.pool_min_size > 1:
            async with contextlib.AsyncExitStack() as stack:
                for _ in range(self.pool_min_size):
                    await self._guard(self._checkout(stack), committing=False, idempotent=True)

    async def _ensure_migrated(self) -> None:
        if self._migrated:
            return
        try:
            async with asyncio.timeout(self.init_timeout_seconds):
                await asyncio.to_thread(schema.upgrade, self.url, self.migration_options())
        except TimeoutError as exc:
            raise MetadataUnavailable(f"migrating {self.safe_url()} took over the init timeout") from exc
        self._migrated = True

    def migration_options(self) -> dict[str, Any]:
        return {
            "connect_timeout": self.connect_timeout_seconds,
            "read_timeout": self.init_timeout_seconds,
            "busy_timeout": max(self.busy_timeout_seconds, self.init_timeout_seconds),
        }

    async def revision(self) -> tuple[str | None, str]:
        """The schema revision the database is at (None: not under Alembic yet), and the newest known."""
        try:
            at = await asyncio.to_thread(schema.current_revision, self.url, self.migration_options())
        except Exception as exc:
            reason = getattr(exc, "orig", None) or exc
            raise MetadataUnavailable(
                f"cannot read the schema revision of {self.safe_url()}: {reason}"
            ) from exc
        return at, schema.head()

    async def ping(self) -> None:
        await self.rows("SELECT 1", by_key=True)

    async def close(self) -> None:
        """Close the pooled connections; the engine opens new ones if it is used again."""
        if self._engine is not None:
            await self._engine.dispose()
        if self._reads is not None:
            reads, self._reads = self._reads, None
            await reads.aclose()


class Connecting:
    """aiomysql.connect(**options), begun only once awaited: a connect refused before it is awaited (a
    checkout tried outside a greenlet, reads.py) leaves no coroutine behind that was never awaited."""

    def __init__(self, options: dict[str, Any]) -> None:
        self.options = options

    def __await__(self) -> Generator[Any, None, Any]:
        return aiomysql.connect(**self.options).__await__()


def sqlite_transactions(sync_engine: Any) -> None:
    """Every SQLite connection in WAL mode (readers never wait for the writer), synchronous=NORMAL."""

    @event.listens_for(sync_engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()
