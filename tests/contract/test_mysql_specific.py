"""What the MySQL adapter promises beyond the shared ImageRepository contract, against a real server."""

import asyncio
import gc
import re
import time
import warnings
from dataclasses import replace
from datetime import timedelta
from uuid import uuid4

import pytest

from pixyproxy.adapters.mysql import parse_mysql_url
from pixyproxy.adapters.mysql.config import MOVED_TO_SETTINGS
from pixyproxy.adapters.sql import images as adapter
from pixyproxy.adapters.sql.image_rows import DETAIL_COLUMNS, SELECT_COLUMNS
from pixyproxy.adapters.sql.images import SQLImageRepository
from pixyproxy.adapters.sql.migrations import legacy_mysql as schema
from pixyproxy.container import Container
from pixyproxy.domain.errors import IdempotencyConflict, MetadataUnavailable
from pixyproxy.domain.models import PagePosition
from pixyproxy.settings import Settings
from tests.contract.test_repository_contract import BASE, make_detail
from tests.e2e.server import free_port
from tests.support.mysql import MySQLServer, make_repository, repository_options
from tests.support.silent_server import silent_server

STATEMENTS = {
    name: value
    for name, value in vars(adapter).items()
    if name.isupper() and isinstance(value, str) and value.split(" ", 1)[0] in ("SELECT", "INSERT")
}


# -- values travel as parameters -------------------------------------------------------------------
# tests/unit/test_no_sql_from_strings.py proves every SQL string in the adapters is assembled from
# constants only (the shared column lists); here: every value is a named parameter.


def test_every_statement_with_values_uses_named_parameters():
    assert set(STATEMENTS) >= {"GET_BY_GUID", "GET_BY_GUID_OF", "GET_BY_IDEMPOTENCY_KEY", "INSERT"}
    for name, sql in STATEMENTS.items():
        assert "%s" not in sql and "{" not in sql, name
    assert ":guid" in adapter.GET_BY_GUID
    assert ":guid" in adapter.GET_BY_GUID_OF and ":owner" in adapter.GET_BY_GUID_OF
    for column in DETAIL_COLUMNS:
        assert f":{column}" in adapter.INSERT


def test_select_column_order_matches_the_row_mapping():
    """Image rows come in SELECT_COLUMNS order."""
    listed = ", ".join(SELECT_COLUMNS)
    for name in ("GET_BY_GUID", "GET_BY_GUID_OF", "GET_BY_IDEMPOTENCY_KEY", "CREATED_BEFORE"):
        assert STATEMENTS[name].startswith("SELECT " + listed + " FROM images")  # noqa: S608


# -- configuration ---------------------------------------------------------------------------------


def test_url_parsing_unquotes_credentials():
    config = parse_mysql_url("mysql://app%40x:p%40ss%3Aw%2Fd@db.example:3307/pixy")
    assert (config.user, config.password, config.host, config.port, config.database) == (
        "app@x",
        "p@ss:w/d",
        "db.example",
        3307,
        "pixy",
    )
    assert "p@ss" not in repr(config) and "p@ss" not in config.safe_url()
    assert parse_mysql_url("mysql+aiomysql://root@localhost/x").port == 3306


@pytest.mark.parametrize("option", sorted(MOVED_TO_SETTINGS))
def test_an_option_left_in_the_url_is_refused_naming_its_setting(option):
    """The pool and timeouts are settings now; a URL still carrying one must not be silently ignored."""
    with pytest.raises(ValueError, match=MOVED_TO_SETTINGS[option]):
        parse_mysql_url(f"mysql://root@localhost/pixy?{option}=3")
    assert MOVED_TO_SETTINGS[option].removeprefix("PIXYPROXY_").lower() in Settings.model_fields


@pytest.mark.parametrize(
    "url", ["mysql://root@localhost", "mysql://root@localhost/a;b", "mysql://h/db?bogus=1", "pg://h/db"]
)
def test_bad_urls_are_refused(url):
    with pytest.raises(ValueError):
        parse_mysql_url(url)


def test_container_picks_mysql_for_a_mysql_url_and_for_the_db_variables(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # no stray .env
    for name in ("PIXYPROXY_DATABASE_URL", "DB_HOST", "DB_PORT", "DB_USER", "DB_PASSWORD", "DB_NAME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DB_HOST", "db.internal")
    monkeypatch.setenv("DB_PORT", "3310")
    monkeypatch.setenv("DB_USER", "course")
    monkeypatch.setenv("DB_PASSWORD", "s3cr:t@")
    monkeypatch.setenv("DB_NAME", "images_db")
    monkeypatch.setenv("PIXYPROXY_MYSQL_POOL_MAX_SIZE", "4")
    monkeypatch.setenv("PIXYPROXY_MYSQL_READ_TIMEOUT_SECONDS", "1.5")
    container = Container()
    repository = container.repository()
    assert isinstance(repository, SQLImageRepository) and repository.name == "mysql"
    assert container.job_store().db is container.webhook_outbox().db is repository.db  # one pool
    config = parse_mysql_url(repository.db.url.render_as_string(hide_password=False))
    assert (config.host, config.port, config.user, config.password, config.database) == (
        "db.internal",
        3310,
        "course",
        "s3cr:t@",
        "images_db",
    )
    assert (repository.db.pool_max_size, repository.db.read_timeout_seconds) == (4, 1.5)
    defaults = repository_options()
    assert (repository.db.connect_timeout_seconds, repository.db.pool_min_size) == (
        defaults["connect_timeout_seconds"],
        defaults["pool_min_size"],
    )
    # An explicit URL wins over the DB_* variables.
    monkeypatch.setenv("PIXYPROXY_DATABASE_URL", "mysql://other@h2:3306/second")
    assert parse_mysql_url(Settings().database_url).database == "second"


# -- schema and init -------------------------------------------------------------------------------


async def test_init_creates_versioned_schema_with_the_list_index(
    mysql_repository, mysql_server, mysql_database
):
    rows = mysql_server.query(mysql_database, "SELECT version FROM pixyproxy_schema_version ORDER BY version")
    assert [r[0] for r in rows] == sorted(schema.MIGRATIONS)
    (table,) = mysql_server.query(
        mysql_database,
        "SELECT engine, table_collation FROM information_schema.tables "
        "WHERE table_schema = %(db)s AND table_name = 'images'",
        {"db": mysql_database},
    )
    assert table[0] == "InnoDB" and table[1].startswith("utf8mb4")
    indexes = mysql_server.query(
        mysql_database,
        "SELECT index_name, column_name, non_unique FROM information_schema.statistics "
        "WHERE table_schema = %(db)s AND table_name = 'images' ORDER BY index_name, seq_in_index",
        {"db": mysql_database},
    )
    by_name: dict[str, list] = {}
    for name, column, non_unique in indexes:
        by_name.setdefault(name, []).append((column, non_unique))
    assert by_name["ix_images_created_at_id"] == [("created_at", 1), ("id", 1)]
    assert by_name["uq_images_guid"] == [("guid", 0)]
    assert by_name["uq_images_idempotency_key"] == [("idempotency_key", 0)]
    assert by_name["PRIMARY"] == [("id", 0)]
    (created_type,) = mysql_server.query(
        mysql_database,
        "SELECT column_type FROM information_schema.columns "
        "WHERE table_schema = %(db)s AND table_name = 'images' AND column_name = 'created_at'",
        {"db": mysql_database},
    )
    assert created_type[0] == "datetime(6)"


async def test_init_again_applies_nothing_and_keeps_rows(mysql_repository, mysql_server, mysql_database):
    detail = make_detail()
    await mysql_repository.add(detail)
    second = make_repository(mysql_server.url(mysql_database))
    try:
        await second.init()
        await second.init()
    finally:
        await second.close()
    count = mysql_server.query(mysql_database, "SELECT COUNT(*) FROM pixyproxy_schema_version")
    assert count[0][0] == len(schema.MIGRATIONS)
    assert await mysql_repository.get(detail.guid) == detail


async def test_concurrent_inits_migrate_once(mysql_server, mysql_database):
    repositories = [make_repository(mysql_server.url(mysql_database)) for _ in range(3)]
    try:
        await asyncio.gather(*(r.init() for r in repositories))
    finally:
        for repository in repositories:
            await repository.close()
    count = mysql_server.query(mysql_database, "SELECT COUNT(*) FROM pixyproxy_schema_version")
    assert count[0][0] == len(schema.MIGRATIONS)


async def test_init_creates_a_missing_database(mysql_server):
    name = "pixyproxy_test_" + uuid4().hex[:16]
    repository = make_repository(mysql_server.url(name))
    try:
        await repository.init()
        detail = make_detail()
        await repository.add(detail)
        assert await repository.get(detail.guid) == detail
    finally:
        await repository.close()
        mysql_server.drop_database(name)


async def test_a_foreign_images_table_is_reported_and_left_untouched(mysql_server, mysql_database):
    mysql_server.query(mysql_database, "CREATE TABLE images (id INT PRIMARY KEY, title VARCHAR(20))")
    mysql_server.query(mysql_database, "INSERT INTO images VALUES (1, 'keep me')")
    repository = make_repository(mysql_server.url(mysql_database))
    try:
        with pytest.raises(MetadataUnavailable, match="guid"):
            await repository.init()
    finally:
        await repository.close()
    assert mysql_server.query(mysql_database, "SELECT id, title FROM images") == [(1, "keep me")]


# -- values round-trip -----------------------------------------------------------------------------

AWKWARD_PROMPTS = [
    'O\'Brien said "hi" -- and `ticks`',
    "C:\\path\\to\\file \\' \\\" \\\\ \\0 \\Z",
    "emoji 🦆🖼️👩‍👩‍👧 flags 🇳🇿 and 4-byte 𠜎𠜱 𝄞",
    "'); DELETE FROM images; -- ",
    "1' OR '1'='1",
    "%(guid)s %s %% %d {prompt} :guid ?",
    "tab\there\nnewline and trailing space ",
    "🦆" * 32_000,  # the prompt ceiling in 4-byte characters: 128 KB, past TEXT's 64 KB
]


@pytest.mark.parametrize("prompt", AWKWARD_PROMPTS, ids=range(len(AWKWARD_PROMPTS)))
async def test_awkward_prompts_are_stored_verbatim(mysql_repository, mysql_server, mysql_database, prompt):
    detail = make_detail(prompt=prompt, revised_prompt=prompt[:1000], usage={"note": prompt[:50]})
    await mysql_repository.add(detail, idempotency_key=prompt[:255], request_hash="h" * 64)
    assert await mysql_repository.get(detail.guid) == detail
    found = await mysql_repository.get_by_idempotency_key(prompt[:255])
    assert found is not None and found.detail == detail
    # Our own SQL sees exactly the same text: nothing was double-escaped on the way in.
    stored = mysql_server.query(
        mysql_database, "SELECT prompt FROM images WHERE guid = %(guid)s", {"guid": str(detail.guid)}
    )
    assert stored == [(prompt,)]


async def test_idempotency_keys_compare_exactly(mysql_repository):
    await mysql_repository.add(make_detail(), idempotency_key="Key-A", request_hash="h")
    assert await mysql_repository.get_by_idempotency_key("key-a") is None
    await mysql_repository.add(make_detail(), idempotency_key="key-a", request_hash="h")  # no conflict
    with pytest.raises(IdempotencyConflict):
        await mysql_repository.add(make_detail(), idempotency_key="Key-A", request_hash="h")


async def test_timestamps_keep_microseconds_and_utc(mysql_repository, mysql_server, mysql_database):
    detail = make_detail(created_at=BASE)
    await mysql_repository.add(detail)
    stored = mysql_server.query(
        mysql_database, "SELECT created_at FROM images WHERE guid = %(guid)s", {"guid": str(detail.guid)}
    )
    assert stored[0][0] == BASE.replace(tzinfo=None)
    assert (await mysql_repository.get(detail.guid)).created_at == BASE


# -- nothing is cached -----------------------------------------------------------------------------


async def test_rows_deleted_behind_our_back_are_gone(mysql_repository, mysql_server, mysql_database):
    kept = [make_detail(created_at=BASE + timedelta(seconds=i)) for i in range(3)]
    for i, detail in enumerate(kept):
        await mysql_repository.add(detail, idempotency_key=f"k{i}", request_hash="h")
    assert await mysql_repository.get(kept[0].guid) == kept[0]
    assert len((await mysql_repository.list_page(10)).items) == 3

    mysql_server.query(mysql_database, "DELETE FROM images")

    assert await mysql_repository.get(kept[0].guid) is None
    assert await mysql_repository.get_by_idempotency_key("k0") is None
    assert (await mysql_repository.list_page(10)).items == []
    assert await mysql_repository.existing([d.guid for d in kept]) == set()
    # The same key can be used again once its row is gone.
    await mysql_repository.add(make_detail(), idempotency_key="k0", request_hash="h")


# -- keyset paging uses the index ------------------------------------------------------------------


def _explain(server, database, sql, params):
    with server.connect(database) as connection, connection.cursor(dict_cursor()) as cursor:
        cursor.execute("EXPLAIN " + re.sub(r"(?<![:\w]):(\w+)", r"%(\1)s", sql), params)
        return cursor.fetchall()


def dict_cursor():
    import pymysql.cursors

    return pymysql.cursors.DictCursor


async def test_list_queries_read_the_index_in_order_without_sorting(
    mysql_repository, mysql_server, mysql_database
):
    # 4,096 rows through the server's own arithmetic (a cross join of 16 values, three times).
    mysql_server.query(
        mysql_database,
        "INSERT INTO images (guid, filename, prompt, created_at, updated_at, content_type, size_bytes, "
        "width, height, model, sha256) "
        "SELECT UUID(), 'x.png', 'p', TIMESTAMPADD(SECOND, n, %(base)s), %(base)s, 'image/png', 1, 1, 1, "
        "'m', REPEAT('a', 64) FROM (SELECT a.v + 16 * b.v + 256 * c.v AS n FROM "
        "(SELECT 0 v UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 UNION ALL SELECT 4 "
        "UNION ALL SELECT 5 UNION ALL SELECT 6 UNION ALL SELECT 7 UNION ALL SELECT 8 UNION ALL SELECT 9 "
        "UNION ALL SELECT 10 UNION ALL SELECT 11 UNION ALL SELECT 12 UNION ALL SELECT 13 "
        "UNION ALL SELECT 14 UNION ALL SELECT 15) a, (SELECT 0 v UNION ALL SELECT 1 UNION ALL SELECT 2 "
        "UNION ALL SELECT 3 UNION ALL SELECT 4 UNION ALL SELECT 5 UNION ALL SELECT 6 UNION ALL SELECT 7 "
        "UNION ALL SELECT 8 UNION ALL SELECT 9 UNION ALL SELECT 10 UNION ALL SELECT 11 "
        "UNION ALL SELECT 12 UNION ALL SELECT 13 UNION ALL SELECT 14 UNION ALL SELECT 15) b, "
        "(SELECT 0 v UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 UNION ALL SELECT 4 "
        "UNION ALL SELECT 5 UNION ALL SELECT 6 UNION ALL SELECT 7 UNION ALL SELECT 8 UNION ALL SELECT 9 "
        "UNION ALL SELECT 10 UNION ALL SELECT 11 UNION ALL SELECT 12 UNION ALL SELECT 13 "
        "UNION ALL SELECT 14 UNION ALL SELECT 15) c) numbers",
        {"base": BASE.replace(tzinfo=None)},
    )
    mysql_server.query(mysql_database, "ANALYZE TABLE images")
    (middle,) = mysql_server.query(
        mysql_database,
        "SELECT created_at, id FROM images ORDER BY created_at DESC, id DESC LIMIT 1 OFFSET 2000",
    )
    for sql, params in (
        (mysql_repository._list_first, {"limit": 101}),
        (mysql_repository._list_after, {"limit": 101, "created_at": middle[0], "id": middle[1]}),
    ):
        (plan,) = _explain(mysql_server, mysql_database, sql, params)
        plan = {k.lower(): v for k, v in plan.items()}
        assert plan["key"] == "ix_images_created_at_id", plan
        assert "filesort" not in (plan["extra"] or "").lower(), plan

    # And the repository walks across the middle without loss or repetition.
    page = await mysql_repository.list_page(
        3, PagePosition(created_at=middle[0].replace(tzinfo=BASE.tzinfo), id=middle[1])
    )
    stamps = [d.created_at.replace(tzinfo=None) for d in page.items]
    assert stamps == sorted(stamps, reverse=True) and all(s < middle[0] for s in stamps)
    assert len(stamps) == 3 and page.next is not None


# -- connections -----------------------------------------------------------------------------------


async def test_a_killed_pooled_connection_is_replaced(mysql_repository, mysql_server, mysql_database):
    detail = make_detail()
    await mysql_repository.add(detail)
    ids = mysql_server.query(
        mysql_database,
        "SELECT id FROM information_schema.processlist WHERE db = %(db)s AND id <> CONNECTION_ID()",
        {"db": mysql_database},
    )
    assert ids, "the repository keeps a pooled connection"
    for (ident,) in ids:
        mysql_server.query(None, "KILL %(id)s", {"id": ident})
    assert await mysql_repository.get(detail.guid) == detail
    await mysql_repository.ping()


async def test_the_pool_bounds_connections_under_concurrency(mysql_server, mysql_database):
    repository = make_repository(mysql_server.url(mysql_database), pool_max_size=3)
    try:
        await repository.init()
        detail = make_detail()
        await repository.add(detail)
        results = await asyncio.gather(*(repository.get(detail.guid) for _ in range(60)))
        assert all(r == detail for r in results)
        ours = mysql_server.query(
            mysql_database,
            "SELECT COUNT(*) FROM information_schema.processlist WHERE db = %(db)s AND id <> CONNECTION_ID()",
            {"db": mysql_database},
        )
        assert 1 <= ours[0][0] <= 3
    finally:
        await repository.close()


async def test_a_refused_connection_is_metadata_unavailable():
    repository = make_repository(f"mysql://root@127.0.0.1:{free_port()}/nothing")
    try:
        with pytest.raises(MetadataUnavailable):
            await repository.get(uuid4())
        with pytest.raises(MetadataUnavailable):
            await repository.init()
        with pytest.raises(MetadataUnavailable):
            await repository.ping()
    finally:
        await repository.close()


async def test_a_server_that_never_answers_times_out_as_metadata_unavailable():
    """A listener that accepts and then says nothing (a hung server): the login's deadline (connect +
    read timeout) ends the wait, once: a timeout is not retried."""
    with silent_server() as hung:
        repository = make_repository(
            f"mysql://root@127.0.0.1:{hung.port}/db",
            connect_timeout_seconds=0.2,
            read_timeout_seconds=0.3,
            init_timeout_seconds=0.3,
        )
        try:
            started = time.monotonic()
            with pytest.raises(MetadataUnavailable, match="no answer in time"):
                await asyncio.wait_for(repository.get(uuid4()), 10)
            assert time.monotonic() - started < 0.5 + 0.45  # one deadline (0.5 s), not two
            with pytest.raises(MetadataUnavailable):
                await asyncio.wait_for(repository.init(), 10)
        finally:
            await repository.close()


async def test_pooled_connections_are_reused_and_skip_tls(mysql_repository):
    """One warm connection serves statement after statement, and it logged in without TLS."""
    ((first,),) = await mysql_repository.db.rows("SELECT CONNECTION_ID()")
    await mysql_repository.get(uuid4())
    ((second,),) = await mysql_repository.db.rows("SELECT CONNECTION_ID()")
    assert first == second
    ssl = await mysql_repository.db.rows("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
    assert all(value == "" for _, value in ssl), ssl


class WithholdingProxy:
    """A TCP proxy to MySQL that, once, forwards the packet carrying `trigger` and withholds the server's
    answer. cut=True then drops the connection (the statement ran, the client never heard so);
    cut=False keeps it open and silent until the proxy closes (a server hung mid-statement)."""

    def __init__(self, host: str, port: int, trigger: bytes, cut: bool = True) -> None:
        self.target = (host, port)
        self.trigger = trigger
        self.cut = cut
        self.triggered = 0
        self.answered = asyncio.Event()  # the server's answer to the trigger arrived (and was withheld)
        self.released = asyncio.Event()
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> int:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def __aexit__(self, *exc) -> None:
        self.released.set()
        self.server.close()
        await self.server.wait_closed()

    async def _handle(self, client_reader, client_writer) -> None:
        server_reader, server_writer = await asyncio.open_connection(*self.target)
        withheld = asyncio.Event()  # this connection carried the trigger: nothing more goes back

        async def upstream() -> None:
            while data := await client_reader.read(65536):
                server_writer.write(data)
                if self.triggered == 0 and self.trigger in data:
                    self.triggered += 1
                    withheld.set()
                    await server_writer.drain()
                    break
                await server_writer.drain()
            if withheld.is_set():
                async with asyncio.timeout(10):
                    await self.answered.wait()  # the server ran (autocommit: committed) the statement
                if not self.cut:
                    await self.released.wait()
            client_writer.transport.abort()
            server_writer.transport.abort()

        async def downstream() -> None:
            while data := await server_reader.read(65536):
                if withheld.is_set():
                    self.answered.set()
                    return
                client_writer.write(data)
                await client_writer.drain()

        await asyncio.gather(upstream(), downstream(), return_exceptions=True)


async def test_a_statement_left_unanswered_times_out_once_without_a_retry(
    mysql_repository, mysql_server, mysql_database
):
    """The read timeout ends the wait; the statement is not tried again (a retry through the proxy
    would be answered, so the error itself shows there was none)."""
    detail = make_detail()
    await mysql_repository.add(detail)
    proxy = WithholdingProxy(mysql_server.host, mysql_server.port, str(detail.guid).encode(), cut=False)
    async with proxy as port:
        proxied = replace(MySQLServer.from_url(mysql_server.url("x")), host="127.0.0.1", port=port)
        through_proxy = make_repository(proxied.url(mysql_database), read_timeout_seconds=0.5)
        try:
            await through_proxy.ping()  # logged in and pooled before the stall
            started = time.monotonic()
            with pytest.raises(MetadataUnavailable, match="no answer in time"):
                await through_proxy.get(detail.guid)
            elapsed = time.monotonic() - started
        finally:
            await through_proxy.close()
    assert proxy.triggered == 1
    assert 0.5 <= elapsed < 1.5


@pytest.mark.parametrize("lost", ["insert", "commit"])
async def test_an_insert_whose_answer_is_lost_is_recorded_once(
    mysql_repository, mysql_server, mysql_database, lost
):
    """A lost INSERT answer leaves the transaction uncommitted (the retry records it); a lost COMMIT
    answer leaves it committed (the retry finds our own row): either way success, one row, no conflict."""
    detail = make_detail()
    trigger = str(detail.guid).encode() if lost == "insert" else b"COMMIT"
    proxy = WithholdingProxy(mysql_server.host, mysql_server.port, trigger)
    async with proxy as port:
        proxied = replace(MySQLServer.from_url(mysql_server.url("x")), host="127.0.0.1", port=port)
        through_proxy = make_repository(proxied.url(mysql_database))
        try:
            await through_proxy.add(detail, idempotency_key="lost-answer", request_hash="h")
        finally:
            await through_proxy.close()
    assert proxy.triggered == 1 and proxy.answered.is_set(), "the proxy never cut the INSERT's answer"
    rows = mysql_server.query(
        mysql_database, "SELECT COUNT(*) FROM images WHERE guid = %(guid)s", {"guid": str(detail.guid)}
    )
    assert rows == [(1,)]
    found = await mysql_repository.get_by_idempotency_key("lost-answer")
    assert found is not None and found.detail == detail


async def test_reads_past_the_recycle_age_reconnect_and_leave_nothing_unawaited(mysql_server, mysql_database):
    """An idle connection is taken without a greenlet; one past its recycle age must reconnect first,
    which the pool refuses there and the read then does in a greenlet: every read answers, the pool
    stays within its size, and no connect is left begun and never awaited."""
    repository = make_repository(mysql_server.url(mysql_database), pool_max_size=2, pool_recycle_seconds=1e-6)
    try:
        await repository.init()
        detail = make_detail()
        await repository.add(detail)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for _ in range(5):
                assert await repository.get(detail.guid) == detail
            gc.collect()
        assert not [w for w in caught if "never awaited" in str(w.message)], [str(w.message) for w in caught]
        ours = mysql_server.query(
            mysql_database,
            "SELECT COUNT(*) FROM information_schema.processlist WHERE db = %(db)s AND id <> CONNECTION_ID()",
            {"db": mysql_database},
        )
        assert ours[0][0] <= 2
    finally:
        await repository.close()
