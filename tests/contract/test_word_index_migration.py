"""The word index is built for images stored before it: a database at the schema before the search
migration, holding rows, is migrated forward (through FTS5 or FULLTEXT, then the posting table that
replaced them) and `q` finds those rows."""

import sqlite3

from pixyproxy.adapters.sql.migrations import legacy_mysql as mysql_schema
from pixyproxy.adapters.sql.migrations.legacy_sqlite import MIGRATION_STEPS as SQLITE_STEPS
from pixyproxy.adapters.sql.migrations.legacy_sqlite import MIGRATIONS as SQLITE_MIGRATIONS
from pixyproxy.domain.search import parse_filter
from tests.support.sql import init_as_an_older_release, make_repository, sqlite_url

WORD_INDEX = 3  # the migration that adds the word index, on both
ROWS = [
    ("00000000-0000-4000-8000-000000000001", "A Lighthouse at dusk", "2026-01-01 00:00:01"),
    ("00000000-0000-4000-8000-000000000002", "a harbour at noon", "2026-01-01 00:00:02"),
    ("00000000-0000-4000-8000-000000000003", "Café by the lighthouse", "2026-01-01 00:00:03"),
]
INSERT_OLD = (
    "INSERT INTO images (guid, filename, prompt, created_at, updated_at, content_type, size_bytes, width, "
    "height, model, sha256) VALUES ({marks})"
)


def old_row(guid, prompt, stamp, iso: bool):
    at = stamp.replace(" ", "T") + ".000000+00:00" if iso else stamp
    return (guid, f"{guid}.png", prompt, at, at, "image/png", 1, 1, 1, "m", "ab" * 32)


async def search(repository, q):
    return [d.prompt for d in (await repository.list_page(10, None, parse_filter(q=q))).items]


async def test_sqlite_indexes_the_rows_it_already_had(tmp_path, monkeypatch):
    path = tmp_path / "old.db"
    with monkeypatch.context() as patched:
        for version in [v for v in SQLITE_MIGRATIONS if v >= WORD_INDEX]:
            patched.delitem(SQLITE_MIGRATIONS, version)
        for version in list(SQLITE_STEPS):
            patched.delitem(SQLITE_STEPS, version)
        old = make_repository(sqlite_url(path))
        await init_as_an_older_release(old)
    with sqlite3.connect(path) as db:
        marks = ", ".join("?" * 11)
        db.executemany(INSERT_OLD.format(marks=marks), [old_row(*r, iso=True) for r in ROWS])
    repository = make_repository(sqlite_url(path))
    await repository.init()  # the later migrations, the word index among them
    try:
        assert await search(repository, "lighthouse") == ["Café by the lighthouse", "A Lighthouse at dusk"]
        assert await search(repository, "cafe") == ["Café by the lighthouse"]
    finally:
        await repository.close()


async def test_mysql_indexes_the_rows_it_already_had(mysql_url, mysql_server, mysql_database, monkeypatch):
    with monkeypatch.context() as patched:
        for version in [v for v in mysql_schema.MIGRATIONS if v >= WORD_INDEX]:
            patched.delitem(mysql_schema.MIGRATIONS, version)
        patched.setattr(mysql_schema, "SCHEMA_VERSION", WORD_INDEX - 1)
        patched.setattr(mysql_schema, "REQUIRED_COLUMNS", frozenset({"guid", "prompt"}))
        old = make_repository(mysql_url)
        await init_as_an_older_release(old)
    marks = ", ".join(["%s"] * 11)
    with mysql_server.connect(mysql_database) as connection, connection.cursor() as cursor:
        cursor.executemany(INSERT_OLD.format(marks=marks), [old_row(*r, iso=False) for r in ROWS])
        connection.commit()
    repository = make_repository(mysql_url)
    await repository.init()
    try:
        assert await search(repository, "lighthouse") == ["Café by the lighthouse", "A Lighthouse at dusk"]
        assert await search(repository, "cafe") == ["Café by the lighthouse"]
    finally:
        await repository.close()
