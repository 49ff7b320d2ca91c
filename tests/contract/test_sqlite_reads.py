"""SQLite's reads never make the event loop wait for a lock: a read by key that meets a lock stopping
readers (here another connection's exclusive lock on a database in rollback-journal mode) waits for it
on a reader thread, and answers once the lock goes, while the loop keeps turning."""

import asyncio
import sqlite3
import time

from pixyproxy.adapters.sql.reads import SQLiteReads

HOLD_SECONDS = 1.0
LAG_LIMIT_SECONDS = 0.050
READ = "SELECT name FROM things WHERE id = :id"


def make_database(path) -> None:
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA journal_mode = DELETE")  # an exclusive lock here stops every reader
    connection.execute("CREATE TABLE things (id INTEGER PRIMARY KEY, name TEXT)")
    connection.execute("INSERT INTO things VALUES (1, 'lighthouse')")
    connection.close()


async def test_a_read_by_key_that_meets_a_lock_waits_for_it_off_the_loop(tmp_path):
    path = tmp_path / "things.db"
    make_database(path)
    reads = SQLiteReads(str(path), busy_timeout_seconds=10)
    await reads.open()
    try:
        assert await reads.rows(READ, {"id": 1}, by_key=True) == [("lighthouse",)]

        holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        holder.execute("BEGIN EXCLUSIVE")
        read = asyncio.create_task(reads.rows(READ, {"id": 1}, by_key=True))
        lags = []
        held_at = time.monotonic()
        while time.monotonic() - held_at < HOLD_SECONDS:
            before = time.monotonic()
            await asyncio.sleep(0.005)
            lags.append(time.monotonic() - before - 0.005)
        assert not read.done(), "the read did not wait for the lock"
        holder.execute("ROLLBACK")
        holder.close()
        assert await read == [("lighthouse",)]
    finally:
        await reads.aclose()
    assert max(lags) < LAG_LIMIT_SECONDS, f"the loop stalled {max(lags) * 1000:.0f} ms"


async def test_a_read_by_key_needs_no_thread_when_nothing_holds_a_lock(tmp_path):
    """The common case costs no hand-off: with every reader thread gone, a read by key still answers."""
    path = tmp_path / "things.db"
    make_database(path)
    reads = SQLiteReads(str(path), busy_timeout_seconds=10)
    await reads.open()
    reads.threads.shutdown(wait=True)
    try:
        assert await reads.rows(READ, {"id": 1}, by_key=True) == [("lighthouse",)]
    finally:
        await reads.aclose()


async def test_other_reads_run_on_a_reader_thread_and_never_write(tmp_path):
    path = tmp_path / "things.db"
    make_database(path)
    reads = SQLiteReads(str(path), busy_timeout_seconds=10)
    try:
        assert await reads.rows("SELECT count(*) FROM things", {}, by_key=False) == [(1,)]
        try:
            await reads.rows("DELETE FROM things", {}, by_key=False)
        except sqlite3.OperationalError as exc:
            assert "readonly" in str(exc)
        else:
            raise AssertionError("a reader's connection wrote")
    finally:
        await reads.aclose()
