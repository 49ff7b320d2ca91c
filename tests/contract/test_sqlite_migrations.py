"""SQLite's migrations when processes start at once (`serve --workers 2` on a fresh folder)."""

import asyncio
import sqlite3
import threading

from pixyproxy.adapters.sqlite_repository import SCHEMA_VERSION, SQLiteImageRepository, statements_of


class OvertakenConnection:
    """A connection on which, right after the first version check, another process migrates the file:
    the moment two workers' starts cross."""

    def __init__(self, db: sqlite3.Connection, other: SQLiteImageRepository) -> None:
        self.db = db
        self.other = other
        self.overtaken = False

    def execute(self, sql: str, *args):
        cursor = self.db.execute(sql, *args)
        if sql == "PRAGMA user_version" and not self.overtaken:
            self.overtaken = True
            rows = cursor.fetchall()
            # The other worker, on its own connection (and thread: this one is inside an event loop).
            worker = threading.Thread(target=asyncio.run, args=(self.other.init(),))
            worker.start()
            worker.join()
            return _Rows(rows)
        return cursor

    def __getattr__(self, name):
        return getattr(self.db, name)


class _Rows:
    def __init__(self, rows) -> None:
        self.rows = rows

    def fetchone(self):
        return self.rows[0]


def test_a_start_overtaken_by_another_process_migrating_applies_nothing_twice(tmp_path):
    path = tmp_path / "images.db"
    first, second = SQLiteImageRepository(path), SQLiteImageRepository(path)
    connection = second._connection()
    overtaken = OvertakenConnection(connection, first)
    second._db = overtaken  # the adapter's own connection, watched

    async def start() -> None:
        await second.init()  # read version 0, then found the other process had migrated meanwhile

    try:
        asyncio.run(start())
        assert overtaken.overtaken
        with sqlite3.connect(path) as db:
            assert db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    finally:
        second._db = connection
        asyncio.run(second.close())
        asyncio.run(first.close())


def test_a_script_splits_into_its_statements_with_a_trigger_whole():
    script = """
    CREATE TABLE t (a TEXT);
    CREATE TRIGGER tr AFTER INSERT ON t BEGIN
        INSERT INTO t (a) VALUES ('x;y');
        DELETE FROM t WHERE a = 'z';
    END;
    CREATE INDEX i ON t (a);
    """
    statements = statements_of(script)
    assert [s.split()[1] for s in statements] == ["TABLE", "TRIGGER", "INDEX"]
    assert statements[1].endswith("END;") and "'x;y'" in statements[1]
