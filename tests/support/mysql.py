"""MySQL for tests: one server for the session, a fresh uniquely named database per test (or module).

Where a container engine answers, Testcontainers starts one for the session (tests/support/containers.py:
PIXYPROXY_TEST_MYSQL_IMAGE, e.g. mysql:8.4, or MariaDB built from Debian's packages). Otherwise the tests use
PIXYPROXY_TEST_MYSQL_URL (mysql://user:pass@host:port, any database part is ignored) or the MariaDB at
root@127.0.0.1:3306. With CI=true and no server reachable, every MySQL test fails (services.unavailable).
Databases are named pixyproxy_test_<random> and dropped afterwards: other people use the same server.
"""

import contextlib
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import quote, unquote, urlsplit

import pymysql
import pytest

from tests.support.containers import free_port, host_network_container, image_for
from tests.support.services import docker_available, unavailable
from tests.support.sql import database_options, make_repository

DEFAULT_URL = "mysql://root@127.0.0.1:3306"
TEST_DATABASE_PREFIX = "pixyproxy_test_"


@dataclass(frozen=True)
class MySQLServer:
    host: str
    port: int
    user: str
    password: str = field(default="", repr=False)

    @classmethod
    def from_url(cls, url: str) -> "MySQLServer":
        parts = urlsplit(url)
        return cls(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or 3306,
            user=unquote(parts.username) if parts.username else "root",
            password=unquote(parts.password) if parts.password else "",
        )

    def url(self, database: str) -> str:
        credentials = quote(self.user, safe="")
        if self.password:
            credentials += ":" + quote(self.password, safe="")
        return f"mysql://{credentials}@{self.host}:{self.port}/{database}"

    def connect(self, database: str | None = None, timeout: float = 5) -> pymysql.connections.Connection:
        return pymysql.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
            database=database,
            charset="utf8mb4",
            autocommit=True,
            connect_timeout=timeout,
            read_timeout=60,
            ssl_disabled=True,
        )

    def query(self, database: str | None, sql: str, params: dict | None = None) -> list[tuple]:
        """Run one statement with its own connection (the tests' own SQL, never the adapter's)."""
        with contextlib.closing(self.connect(database)) as connection, connection.cursor() as cursor:
            cursor.execute(sql, params)
            return list(cursor.fetchall())

    def create_database(self) -> str:
        name = TEST_DATABASE_PREFIX + uuid.uuid4().hex[:16]
        # A generated name (hex), not input: identifiers cannot be bound as parameters.
        self.query(None, "CREATE DATABASE `" + name + "` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
        return name

    def drop_database(self, name: str) -> None:
        assert name.startswith(TEST_DATABASE_PREFIX)
        self.query(None, "DROP DATABASE IF EXISTS `" + name + "`")

    @contextlib.contextmanager
    def database(self) -> Iterator[str]:
        name = self.create_database()
        try:
            yield name
        finally:
            self.drop_database(name)


repository_options = database_options


def _reachable(server: MySQLServer) -> bool:
    try:
        server.query(None, "SELECT 1")
    except pymysql.MySQLError:
        return False
    return True


ROOT_PASSWORD = "test"


def container_command(image: str, port: int) -> list[str]:
    """mysqld's (or mariadbd's) arguments on the host network: its own port, 127.0.0.1 only."""
    command = [f"--port={port}", "--bind-address=127.0.0.1", "--skip-name-resolve"]
    if image.split(":")[0].endswith("mysql"):
        command.append("--mysqlx=OFF")  # MySQL's X protocol would listen on 33060, on every address
    return command


@contextlib.contextmanager
def mysql_container(port: int | None = None) -> Iterator[tuple[MySQLServer, object]]:
    """A MySQL-compatible server started by Testcontainers: PIXYPROXY_TEST_MYSQL_IMAGE (e.g. mysql:8.4)
    or the MariaDB image built from Debian's packages. Yields the server and its container."""
    image = image_for("PIXYPROXY_TEST_MYSQL_IMAGE", "mariadb")
    server = MySQLServer(host="127.0.0.1", port=port or free_port(), user="root", password=ROOT_PASSWORD)
    with host_network_container(
        image,
        container_command(image, server.port),
        {"MYSQL_ROOT_PASSWORD": ROOT_PASSWORD},
        lambda: _reachable(server),
    ) as container:
        yield server, container


@pytest.fixture(scope="session")
def mysql_server() -> Iterator[MySQLServer]:
    if docker_available():
        with contextlib.ExitStack() as stack:
            try:
                server, _ = stack.enter_context(mysql_container())
            except Exception as exc:  # no image and none can be built, a server that never answers ...
                unavailable(f"MySQL in a container ({exc})")
            yield server
        return
    url = os.environ.get("PIXYPROXY_TEST_MYSQL_URL", DEFAULT_URL)
    server = MySQLServer.from_url(url)
    if not _reachable(server):
        unavailable(f"MySQL at {server.host}:{server.port}")
    yield server


@pytest.fixture
def mysql_database(mysql_server) -> Iterator[str]:
    """A fresh empty database for one test; its name."""
    with mysql_server.database() as name:
        yield name


@pytest.fixture
def mysql_url(mysql_server, mysql_database) -> str:
    return mysql_server.url(mysql_database)


@pytest.fixture
async def mysql_repository(mysql_url):
    repository = make_repository(mysql_url)
    await repository.init()
    yield repository
    await repository.close()
