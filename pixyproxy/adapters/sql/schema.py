"""The schema is Alembic's (migrations/): `upgrade()` brings a database to the newest revision, with the
lock that makes processes starting at once apply each revision once, and refuses a database at a
revision this code does not know (made by a newer release). Runs synchronously, on a thread of its own
(the Database calls it through asyncio.to_thread), with the sync driver of the same dialect.
"""

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.exc import DBAPIError, OperationalError

from pixyproxy.adapters.sql.migrations import HEAD
from pixyproxy.domain.errors import MetadataUnavailable

if TYPE_CHECKING:
    from alembic.config import Config

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"
LOCK_TIMEOUT_SECONDS = 30
_BAD_DATABASE = 1049


class SchemaTooNew(MetadataUnavailable):
    """The database was migrated by a newer release: this one must not touch it."""


def config(connection: Connection | None = None) -> "Config":
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def head() -> str:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(config()).get_current_head() or "base"


def sync_engine(url: URL, options: dict[str, Any]) -> Engine:
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url.set(drivername="sqlite+pysqlite"), connect_args={"timeout": options["busy_timeout"]}
        )
        _sqlite_immediate(engine)
        return engine
    from pixyproxy.adapters.sql.dialect import MYSQL_INIT_COMMAND

    return create_engine(
        url.set(drivername="mysql+pymysql"),
        connect_args={
            "charset": "utf8mb4",
            "connect_timeout": options["connect_timeout"],
            "read_timeout": options["read_timeout"],
            "write_timeout": options["read_timeout"],
            "init_command": MYSQL_INIT_COMMAND,
        },
    )


def _sqlite_immediate(engine: Engine) -> None:
    """Every transaction of the upgrade holds SQLite's write lock from BEGIN on: the second process to
    start waits here, then finds the revision applied."""

    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        dbapi_connection.execute("PRAGMA journal_mode=WAL")

    @event.listens_for(engine, "begin")
    def on_begin(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


@contextlib.contextmanager
def locked(url: URL, options: dict[str, Any]) -> Iterator[Connection]:
    """A connection holding the schema lock: SQLite's write lock (one transaction for the whole
    upgrade), MySQL's named lock (DDL commits on its own there; each step is safe to run again)."""
    engine = sync_engine(url, options)
    try:
        if url.get_backend_name() == "mysql":
            _create_database_if_missing(url, options)
        with engine.connect() as connection:
            if url.get_backend_name() == "sqlite":
                with connection.begin():
                    yield connection
                return
            # Autocommit: DDL commits on its own anyway, and a word backfill cut short keeps what it
            # posted, so the next start resumes after it. GET_LOCK is the session's.
            connection = connection.execution_options(isolation_level="AUTOCOMMIT")
            name = {"name": f"pixyproxy_schema:{url.database}"[:64]}
            got = connection.execute(
                text("SELECT GET_LOCK(:name, :timeout)"), {**name, "timeout": LOCK_TIMEOUT_SECONDS}
            )
            if got.scalar() != 1:
                raise MetadataUnavailable("another process holds the schema lock; try again")
            try:
                yield connection
            finally:
                connection.execute(text("SELECT RELEASE_LOCK(:name)"), name)
    finally:
        engine.dispose()


def _create_database_if_missing(url: URL, options: dict[str, Any]) -> None:
    """CREATE DATABASE when the URL's database does not exist yet. An identifier cannot be a bound
    parameter, so the server quotes the name itself in a prepared statement."""
    probe = sync_engine(url, options)
    try:
        with probe.connect():
            return
    except OperationalError as exc:
        if getattr(exc.orig, "args", (None,))[0] != _BAD_DATABASE:
            raise
    finally:
        probe.dispose()
    server = sync_engine(url._replace(database=None), options)
    try:
        with server.connect() as connection:
            connection.execute(
                text(
                    "SET @pixyproxy_ddl = CONCAT('CREATE DATABASE IF NOT EXISTS `', "
                    "REPLACE(:name, '`', '``'), '` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin')"
                ),
                {"name": url.database},
            )
            connection.exec_driver_sql("PREPARE pixyproxy_create_database FROM @pixyproxy_ddl")
            connection.exec_driver_sql("EXECUTE pixyproxy_create_database")
            connection.exec_driver_sql("DEALLOCATE PREPARE pixyproxy_create_database")
        log.info("created MySQL database %s", url.database)
    finally:
        server.dispose()


def current(connection: Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()


def refuse_newer(connection: Connection) -> None:
    """One line naming both revisions when the database is ahead of this code."""
    from alembic.script import ScriptDirectory
    from alembic.util.exc import CommandError

    revision = current(connection)
    if revision is None:
        return
    try:
        ScriptDirectory.from_config(config()).get_revision(revision)
    except CommandError:
        raise SchemaTooNew(
            f"the database is at schema revision {revision}, newer than this PixyProxy's newest ({head()}): "
            "run the release that upgraded it, or restore the backup taken before"
        ) from None


def history() -> list[tuple[str, str | None, str]]:
    """(revision, the one before, its first line), newest first."""
    from alembic.script import ScriptDirectory

    return [
        (script.revision, script.down_revision, (script.doc or "").splitlines()[0])  # type: ignore[misc]
        for script in ScriptDirectory.from_config(config()).walk_revisions()
    ]


def _at_head(url: URL, options: dict[str, Any]) -> bool:
    """The common start: one query finds the database at the newest revision, no lock, no Alembic."""
    engine = sync_engine(url, options)
    try:
        with engine.connect() as connection:
            return connection.execute(text("SELECT version_num FROM alembic_version")).all() == [(HEAD,)]
    except DBAPIError:
        return False  # no such table or database yet, or unreachable: the full path says which
    finally:
        engine.dispose()


def current_revision(url: URL, options: dict[str, Any]) -> str | None:
    engine = sync_engine(url, options)
    try:
        with engine.connect() as connection:
            return current(connection)
    finally:
        engine.dispose()


def upgrade(url: URL, options: dict[str, Any], target: str = "head") -> str | None:
    """Bring the database to `target` (the newest revision); returns the revision it is at."""
    if target == "head" and _at_head(url, options):
        return HEAD
    try:
        with locked(url, options) as connection:
            refuse_newer(connection)
            before = current(connection)
            from alembic import command

            command.upgrade(config(connection), target)
            after = current(connection)
    except MetadataUnavailable:
        raise
    except Exception as exc:
        where = url.render_as_string(hide_password=True)
        reason = getattr(exc, "orig", None) or exc
        raise MetadataUnavailable(f"cannot migrate the database at {where}: {reason}") from exc
    if after != before:
        log.info("database schema upgraded from revision %s to %s", before or "(none)", after)
    return after


def reindex_words(url: URL, options: dict[str, Any]) -> int:
    """Post the words of every stored image again (adding only what is missing); the number read."""
    from pixyproxy.adapters.sql.migrations import legacy_mysql, legacy_sqlite

    engine = sync_engine(url, options)
    try:
        with engine.connect() as connection:
            if url.get_backend_name() == "sqlite":
                with connection.begin():
                    raw: Any = connection.connection.dbapi_connection
                    return legacy_sqlite.index_stored(raw)
            autocommit = connection.execution_options(isolation_level="AUTOCOMMIT")
            raw = autocommit.connection.dbapi_connection
            with raw.cursor() as cursor:
                return legacy_mysql.backfill(cursor, from_start=True)
    finally:
        engine.dispose()
