"""SQLite's word index (adapters/sqlite_word_index.py): what the posting table holds, that it is written
with its image or not at all, that a page is read off its key in order, and the upgrade to it."""

import sqlite3
from datetime import timedelta
from uuid import uuid4

import pytest

from pixyproxy.adapters import sqlite_word_index, word_postings
from pixyproxy.adapters.sqlite_repository import (
    MIGRATION_STEPS,
    MIGRATIONS,
    SCHEMA_VERSION,
    SQLiteImageRepository,
)
from pixyproxy.domain.errors import MetadataUnavailable
from pixyproxy.domain.search import ImageFilter, parse_filter
from tests.contract.test_repository_contract import BASE, make_detail


@pytest.fixture
def repository(sqlite_repository):
    return sqlite_repository


def query(repository, sql, params=()):
    with sqlite3.connect(repository.path) as db:  # another connection: sees only what was committed
        return db.execute(sql, params).fetchall()


def words_of(repository, detail) -> list[str]:
    return [
        word
        for (word,) in query(
            repository,
            "SELECT word FROM image_words JOIN images ON images.id = image_id WHERE guid = ? ORDER BY word",
            (str(detail.guid),),
        )
    ]


async def test_an_image_is_posted_under_each_of_its_words_and_they_go_with_it(repository):
    detail = make_detail(prompt="Café, CAFÉ and café at the Lighthouse, x2 ok 42nd")
    await repository.add(detail)
    assert words_of(repository, detail) == ["42nd", "and", "cafe", "lighthouse", "the"]
    # Deleted by another client, behind the service's back: the trigger takes the words along.
    with sqlite3.connect(repository.path) as db:
        db.execute("DELETE FROM images WHERE guid = ?", (str(detail.guid),))
    assert query(repository, "SELECT COUNT(*) FROM image_words") == [(0,)]


async def test_an_image_whose_words_cannot_be_written_is_not_stored(repository, monkeypatch):
    broken = sqlite_word_index.INSERT_POSTING.replace("image_id)", "no_such_column)", 1)
    monkeypatch.setattr(sqlite_word_index, "INSERT_POSTING", broken)
    lost = make_detail(prompt="a lighthouse")
    with pytest.raises(MetadataUnavailable):
        await repository.add(lost)
    assert await repository.get(lost.guid) is None
    monkeypatch.undo()
    kept = make_detail(prompt="a lighthouse")
    await repository.add(kept)  # the connection was left outside any transaction
    assert query(repository, "SELECT guid FROM images") == [(str(kept.guid),)]
    assert words_of(repository, kept) == ["lighthouse"]


async def test_a_page_of_words_reads_the_key_in_order_without_sorting(repository):
    for i in range(40):
        at = BASE + timedelta(seconds=i)
        await repository.add(make_detail(prompt=f"lighthouse number{i % 4}", created_at=at))
    db = sqlite3.connect(repository.path)
    for filters, keyset in (
        (ImageFilter(words=("lighthouse",)), False),
        (ImageFilter(words=("lighthouse", "number1"), model="dall-e-3"), True),
    ):
        params = {
            **SQLiteImageRepository._filter_params(11, None, filters),
            **word_postings.word_params(filters.words),
        }
        params.update(created_at="2026-01-01", id=5)
        statement = word_postings.page_statement("sqlite", len(filters.words), filters, keyset)
        plan = [row[3] for row in db.execute("EXPLAIN QUERY PLAN " + statement, params)]
        assert any("w0 USING PRIMARY KEY (word=?" in step for step in plan), plan
        assert not any("TEMP B-TREE" in step for step in plan), plan
        if keyset:
            assert any("image_created_at<?" in step for step in plan), plan  # a range, not a scan
    db.close()


async def test_an_owner_led_page_reads_the_owners_index_in_order_without_sorting(repository):
    await repository.add(make_detail(prompt="a lighthouse", owner="ann"))
    filters = ImageFilter(words=("lighthouse", "dusk"), owner="ann")
    params = {
        **SQLiteImageRepository._filter_params(11, None, filters),
        **word_postings.word_params(filters.words),
        "created_at": "2026-01-01",
        "id": 5,
    }
    statement = word_postings.page_statement("sqlite", 2, filters, keyset=True, lead="owner")
    with sqlite3.connect(repository.path) as db:
        plan = [row[3] for row in db.execute("EXPLAIN QUERY PLAN " + statement, params)]
    assert any("images USING INDEX images_owner_created_at_id (owner=? AND" in step for step in plan), plan
    # Each word a key lookup: by the primary key or by image_id (which carries the whole key).
    assert [step.split(" USING")[0] for step in plan[1:]] == ["SEARCH w0", "SEARCH w1"], plan
    assert not any("TEMP B-TREE" in step for step in plan), plan


async def test_an_upgrade_indexes_the_stored_prompts_and_retires_fts5(tmp_path, monkeypatch):
    path = tmp_path / "old.db"
    with monkeypatch.context() as patched:
        patched.delitem(MIGRATION_STEPS, 5)
        for later in [v for v in MIGRATIONS if v > 5]:  # what came after 5 waits for it
            patched.delitem(MIGRATIONS, later)
        old = SQLiteImageRepository(path)
        await old.init()  # version 4: FTS5 and its triggers
        await old.close()
    with sqlite3.connect(path) as db:  # rows as the version before wrote them: no postings
        for i in range(5):
            at = f"2026-01-01T00:00:0{i}.000000+00:00"
            db.execute(
                "INSERT INTO images (guid, filename, prompt, created_at, updated_at, content_type, "
                "size_bytes, width, height, model, sha256) VALUES (?, 'x.png', ?, ?, ?, 'image/png', 1, 1, "
                "1, 'm', ?)",
                (str(uuid4()), f"harbour study {i}", at, at, "ab" * 32),
            )
    monkeypatch.setattr(sqlite_word_index, "BACKFILL_BATCH", 2)
    repository = SQLiteImageRepository(path)
    await repository.init()
    try:
        page = await repository.list_page(10, None, parse_filter(q="harbour study"))
        assert [d.prompt for d in page.items] == [f"harbour study {i}" for i in reversed(range(5))]
        assert query(repository, "SELECT COUNT(*) FROM image_words") == [(10,)]
        names = {name for (name,) in query(repository, "SELECT name FROM sqlite_master")}
        assert not {n for n in names if n.startswith("images_fts")}, names
        assert query(repository, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
    finally:
        await repository.close()
