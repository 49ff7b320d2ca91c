"""A small pool of aiomysql connections, with every wait bounded.

aiomysql's own pool opens connections while holding its lock, bounds only the TCP connect (not the
login handshake), and gives no handle to close a half-open connection when a timeout cancels it. This
one opens a connection with the whole handshake under a deadline, closes it on any failure, and checks
a pooled connection at checkout: one the server has closed (restart, KILL, wait_timeout) or one idle
past `recycle_seconds` is dropped, not handed out.
"""

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime

import aiomysql
from pymysql import err

from pixyproxy.adapters.mysql.config import MySQLConfig

# Errors the server answers with while the connection stays in step; any other failure closes it.
_CONNECTION_STILL_GOOD = (err.IntegrityError, err.ProgrammingError, err.DataError)


def alive(connection: aiomysql.Connection) -> bool:
    """False once the server has closed its end (seen without a round trip)."""
    reader = connection._reader  # aiomysql's own pool checks the same (no public equivalent)
    return not (
        connection.closed
        or reader is None
        or reader.at_eof()
        or reader.exception() is not None
        or getattr(reader, "eof_received", False)  # MySQL 8 sends an error packet before closing
    )


# Session settings on every new connection: UTC for any server-side time function, and a known
# sql_mode (strict; and without NO_BACKSLASH_ESCAPES, which PyMySQL's escaping relies on).
INIT_COMMAND = (
    "SET time_zone = '+00:00', sql_mode = 'STRICT_TRANS_TABLES,NO_ZERO_IN_DATE,NO_ZERO_DATE,"
    "ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION'"
)


def utc_naive(value: datetime) -> datetime:
    """DATETIME(6) holds UTC wall time (the session's time_zone above); aware datetimes are converted."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value


async def connect_to(
    config: MySQLConfig, connect_timeout: float, read_timeout: float, *, with_database: bool = True
) -> aiomysql.Connection:
    """A connection as every MySQL adapter opens one: utf8mb4, autocommit, the session settings, the
    whole login within connect + read timeout."""
    return await open_connection(
        connect_timeout + read_timeout,
        host=config.host,
        port=config.port,
        user=config.user,
        password=config.password,
        db=config.database if with_database else None,
        charset="utf8mb4",
        autocommit=True,
        connect_timeout=connect_timeout,
        init_command=INIT_COMMAND,
    )


async def open_connection(timeout_seconds: float, **kwargs) -> aiomysql.Connection:
    """Connect and log in within `timeout_seconds`, or raise TimeoutError with nothing left open."""
    connection = aiomysql.Connection(**kwargs)
    try:
        async with asyncio.timeout(timeout_seconds):
            await connection._connect()  # aiomysql.connect() does this too, without a handle on failure
    except BaseException:
        connection.close()
        raise
    return connection


class Pool:
    def __init__(
        self,
        connect: Callable[[], Awaitable[aiomysql.Connection]],
        max_size: int,
        recycle_seconds: float,
    ) -> None:
        self._connect = connect
        self._slots = asyncio.Semaphore(max_size)
        self._recycle_seconds = recycle_seconds
        self._idle: list[tuple[aiomysql.Connection, float]] = []  # (connection, idle since), newest last
        self._closed = False

    @property
    def idle(self) -> int:
        return len(self._idle)

    @contextlib.asynccontextmanager
    async def connection(self, fresh: bool = False) -> AsyncIterator[aiomysql.Connection]:
        """A connection for one statement: a live pooled one unless `fresh`, else a new one."""
        async with self._slots:
            connection = None if fresh else self._take_idle()
            if connection is None:
                connection = await self._connect()
            try:
                yield connection
            except _CONNECTION_STILL_GOOD:
                self._give_back(connection)
                raise
            except BaseException:
                connection.close()  # a lost, timed-out or cancelled exchange leaves it out of step
                raise
            self._give_back(connection)

    async def fill(self, size: int) -> None:
        """Open connections until `size` are idle (init() warms the pool so first requests skip a connect)."""
        while len(self._idle) < size and not self._closed:
            async with self.connection(fresh=True):
                pass

    async def close(self) -> None:
        """Say goodbye on each idle connection (a second at most); ones in use close when given back."""
        self._closed = True
        idle, self._idle = self._idle, []
        for connection, _ in idle:
            try:
                async with asyncio.timeout(1):
                    await connection.ensure_closed()  # COM_QUIT, so the server logs no aborted connection
            except (OSError, TimeoutError, err.MySQLError):
                connection.close()

    def _take_idle(self) -> aiomysql.Connection | None:
        now = time.monotonic()
        while self._idle:
            connection, since = self._idle.pop()
            if alive(connection) and now - since < self._recycle_seconds:
                return connection
            connection.close()
        return None

    def _give_back(self, connection: aiomysql.Connection) -> None:
        if self._closed or not alive(connection):
            connection.close()
        else:
            self._idle.append((connection, time.monotonic()))
