"""A read (one statement in autocommit) on the driver's own cursor, its rows as plain tuples: a read's
rows are read by position, so SQLAlchemy's result objects would only cost CPU. Units of work (writes,
locking reads) stay on SQLAlchemy's connections.

* SQLite (`SQLiteReads`): a read by a key is first tried on the event loop's own connection, which has
  no busy timeout: SQLite either answers from its pages at once (WAL: readers never wait for the writer)
  or says BUSY at once, never waiting. Only a lock that stops readers (another process in exclusive
  locking mode, a recovery) says BUSY; then, and for every other read (pages, searches, whose cost
  grows with the table), the read is one hop to a reader thread whose connection waits up to the busy
  timeout. So the loop never waits for a lock, and the common read costs no thread hand-off.
* MySQL (`mysql_read`): on a pooled connection's aiomysql cursor, taken without a greenlet when one is
  idle, the statement compiled once to the driver's own parameter style.
"""

import asyncio
import contextlib
import functools
import sqlite3
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Dialect as SQLAlchemyDialect
from sqlalchemy.exc import MissingGreenlet
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import PoolProxiedConnection, QueuePool
from sqlalchemy.sql.compiler import SQLCompiler

from pixyproxy.adapters.sql.errors import Kind, classify, is_database_error

# How many reads may wait for SQLite's lock at once in one process, each on a thread of its own.
SQLITE_READER_THREADS = 4
_BUSY = {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED}


def out_of_step(exc: BaseException) -> bool:
    """A timed-out, cancelled or broken exchange: the connection must never be pooled again."""
    if isinstance(exc, (TimeoutError, asyncio.CancelledError, OSError)):
        return True
    return is_database_error(exc) and classify(exc).kind in (Kind.CONNECTION_LOST, Kind.TIMEOUT)


def is_busy(exc: sqlite3.Error) -> bool:
    return (getattr(exc, "sqlite_errorcode", 0) & 0xFF) in _BUSY


class SQLiteReads:
    def __init__(self, path: str, busy_timeout_seconds: float) -> None:
        self.path = path
        self.busy_timeout_seconds = busy_timeout_seconds
        self.threads = ThreadPoolExecutor(SQLITE_READER_THREADS, thread_name_prefix="sqlite-read")
        self._per_thread = threading.local()
        self._opened: list[sqlite3.Connection] = []
        self._on_loop: sqlite3.Connection | None = None
        self._loop_thread: int | None = None
        self._opening: asyncio.Task[None] | None = None

    async def rows(self, sql: str, params: dict[str, Any], *, by_key: bool) -> Sequence[Sequence[Any]]:
        if by_key:
            connection = self._loop_connection()
            if connection is not None:
                try:
                    return connection.execute(sql, params).fetchall()
                except sqlite3.OperationalError as exc:
                    if not is_busy(exc):
                        raise
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.threads, self._read_on_thread, sql, params)

    def _loop_connection(self) -> sqlite3.Connection | None:
        """The loop's connection once open; None meanwhile (its opening is started), and on any other
        thread than the one it was opened for (a connection serves one thread at a time)."""
        if self._on_loop is not None:
            return self._on_loop if threading.get_ident() == self._loop_thread else None
        if self._opening is None:
            self._opening = asyncio.get_running_loop().create_task(self.open())
        return None

    async def open(self) -> None:
        """Open the loop's connection, off the loop (opening touches the file); a failure leaves the
        reads on the reader threads until the next read tries again."""
        if self._on_loop is not None:
            return
        thread = threading.get_ident()
        try:
            connection = await asyncio.to_thread(self._connect, 0.0)
        except sqlite3.Error:
            self._opening = None
            return
        if self._on_loop is None:
            self._on_loop, self._loop_thread = connection, thread

    def _read_on_thread(self, sql: str, params: dict[str, Any]) -> list[Any]:
        connection = getattr(self._per_thread, "connection", None)
        if connection is None:
            connection = self._per_thread.connection = self._connect(self.busy_timeout_seconds)
        return connection.execute(sql, params).fetchall()

    def _connect(self, busy_timeout_seconds: float) -> sqlite3.Connection:
        connection = sqlite3.connect(
            self.path, timeout=busy_timeout_seconds, isolation_level=None, check_same_thread=False
        )
        connection.execute("PRAGMA query_only = ON")  # a reader's connection never writes
        self._opened.append(connection)
        return connection

    async def aclose(self) -> None:
        """Once no read is running: the threads end, then every connection closes (off the loop)."""
        if self._opening is not None and not self._opening.done():
            self._opening.cancel()
        await asyncio.to_thread(self._close)

    def _close(self) -> None:
        self.threads.shutdown(wait=True)
        for connection in self._opened:
            with contextlib.suppress(sqlite3.Error):
                connection.close()
        self._opened.clear()
        self._on_loop = None


@functools.lru_cache(maxsize=1024)
def positional(dialect: SQLAlchemyDialect, sql: str) -> SQLCompiler:
    """The statement in the driver's own parameter style (%s), and its parameters' order."""
    return text(sql).compile(dialect=dialect)


def idle_connection(engine: AsyncEngine) -> PoolProxiedConnection | None:
    """An idle pooled connection, taken without a greenlet: SQLAlchemy's pool hands one over without
    awaiting. One it would have to (re)connect first (past its recycle age) it refuses at once
    (MissingGreenlet, before any I/O) and takes back unconnected; the caller then checks out in a
    greenlet, as it does when none is idle."""
    pool = engine.sync_engine.pool
    if not isinstance(pool, QueuePool) or not pool.checkedin():
        return None
    try:
        return engine.sync_engine.raw_connection()
    except MissingGreenlet:
        return None


async def mysql_read(
    engine: AsyncEngine, sql: str, params: dict[str, Any], checkout_seconds: float, read_seconds: float
) -> Sequence[Sequence[Any]]:
    """A read on a pooled connection's aiomysql cursor, the statement bounded by `read_seconds`. The
    checkout runs in a greenlet, bounded by `checkout_seconds`, only when it may have to connect (or
    wait for a connection). A connection left out of step (a timeout, a cancellation, a lost
    connection) is dropped, not pooled again."""
    compiled = positional(engine.dialect, sql)
    connection = idle_connection(engine)
    if connection is None:
        async with asyncio.timeout(checkout_seconds):
            connection = await engine.raw_connection()
    try:
        async with asyncio.timeout(read_seconds):
            driver: Any = connection.driver_connection  # aiomysql's own connection
            cursor = await driver.cursor()
            await cursor.execute(compiled.string, tuple(params[name] for name in compiled.positiontup or ()))
            rows = await cursor.fetchall()
            await cursor.close()
            return rows
    except BaseException as exc:
        if out_of_step(exc):
            connection.invalidate(exc if isinstance(exc, Exception) else None)
        raise
    finally:
        connection.close()
