"""The metadata store's schema revision, read without creating or migrating anything (`pixyproxy check`)."""

import asyncio
import sqlite3
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class SchemaRevision:
    found: int  # 0: no schema yet
    expected: int  # what this version of PixyProxy migrates to


async def sqlite_revision(path: str) -> SchemaRevision:
    from pixyproxy.adapters.sqlite_repository import SCHEMA_VERSION

    def read() -> int:
        if path != ":memory:" and not Path(path).exists():
            return 0
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            return int(db.execute("PRAGMA user_version").fetchone()[0])

    return SchemaRevision(await asyncio.to_thread(read), SCHEMA_VERSION)


async def mysql_revision(url: str, connect_timeout: float, read_timeout: float) -> SchemaRevision:
    from pixyproxy.adapters.mysql.config import parse_mysql_url
    from pixyproxy.adapters.mysql.init import SCHEMA_VERSION
    from pixyproxy.adapters.mysql.pool import connect_to

    connection = await connect_to(parse_mysql_url(url), connect_timeout, read_timeout)
    try:
        async with connection.cursor() as cursor:
            await cursor.execute(
                "SELECT COUNT(*) FROM information_schema.tables "
                "WHERE table_schema = DATABASE() AND table_name = 'pixyproxy_schema_version'"
            )
            (exists,) = await cursor.fetchone()
            found = 0
            if exists:
                await cursor.execute("SELECT COALESCE(MAX(version), 0) FROM pixyproxy_schema_version")
                (found,) = await cursor.fetchone()
    finally:
        connection.close()
    return SchemaRevision(int(found), SCHEMA_VERSION)
