"""What a MySQL error means to the adapters: a connection to retry on, a duplicate, a deadlock."""

from pymysql import err as my

# Client error codes meaning "this connection is dead"; worth one retry on a fresh connection.
CONNECTION_LOST = {
    2006,  # server has gone away
    2013,  # lost connection during query
    2055,  # lost connection at reading/sending
    1053,  # server shutdown in progress
    1927,  # MariaDB: connection was killed
    4031,  # MySQL 8: disconnected by the server because of inactivity
}
DUPLICATE_ENTRY = 1062
BAD_DATABASE = 1049
# InnoDB rolled the statement's transaction back to break a deadlock: running it again is safe.
DEADLOCK = 1213


def error_code(exc: BaseException) -> int | None:
    args = getattr(exc, "args", ())
    return args[0] if args and isinstance(args[0], int) else None


def connection_lost(exc: BaseException) -> bool:
    """A dead connection (worth one retry); not a timeout: a hung server would only double the wait."""
    if isinstance(exc, TimeoutError) or "timeout" in str(exc).lower():
        return False
    return isinstance(exc, my.InterfaceError) or error_code(exc) in CONNECTION_LOST
