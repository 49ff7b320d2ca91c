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

import aiomysql
from pymysql import err

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
