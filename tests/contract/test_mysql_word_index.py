"""MySQL's word index (adapters/word_postings.py, adapters/sql/images.py) against a real server: what
the posting table holds, that it is written with its image or not at all, how a page is read off it,
and the upgrade to it."""

import asyncio
from datetime import timedelta

import pytest
from pymysql.err import OperationalError

from pixyproxy.adapters.sql import images, word_postings
from pixyproxy.adapters.sql.migrations import legacy_mysql as schema
from pixyproxy.adapters.sql.migrations import legacy_mysql as word_index
from pixyproxy.domain.errors import MetadataUnavailable
from pixyproxy.domain.search import ImageFilter, parse_filter
from tests.contract.test_mysql_specific import _explain
from tests.contract.test_repository_contract import BASE, make_detail
from tests.support.sql import init_as_an_older_release, make_repository

POSTINGS_OF = (
    "SELECT word FROM image_words JOIN images ON images.id = image_words.image_id "
    "WHERE images.guid = %(guid)s ORDER BY word"
)


def postings_of(server, database, detail) -> list[str]:
    return [row[0] for row in server.query(database, POSTINGS_OF, {"guid": str(detail.guid)})]


async def test_an_image_is_posted_under_each_of_its_words_folded_once(
    mysql_repository, mysql_server, mysql_database
):
    detail = make_detail(prompt="Café, CAFÉ and café at the Lighthouse, x2 ok 42nd")
    await mysql_repository.add(detail)
    # Words of three or more letters or digits, folded (domain/search.py), each once.
    assert postings_of(mysql_server, mysql_database, detail) == ["42nd", "and", "cafe", "lighthouse", "the"]
    (posted_at,) = mysql_server.query(
        mysql_database, "SELECT DISTINCT image_created_at FROM image_words", None
    )
    assert posted_at[0] == detail.created_at.replace(tzinfo=None)

    await mysql_repository.delete(detail.guid)
    assert mysql_server.query(mysql_database, "SELECT COUNT(*) FROM image_words") == [(0,)]


async def test_an_image_whose_words_cannot_be_written_is_not_stored(
    mysql_repository, mysql_server, mysql_database, monkeypatch
):
    """The image row and its postings are one transaction: no image is left that search cannot find."""
    broken = images.INSERT_POSTING.replace("image_id)", "no_such_column)", 1)
    monkeypatch.setattr(images, "INSERT_POSTING", broken)
    lost = make_detail(prompt="a lighthouse")
    with pytest.raises(MetadataUnavailable):
        await mysql_repository.add(lost)
    assert await mysql_repository.get(lost.guid) is None
    assert mysql_server.query(mysql_database, "SELECT COUNT(*) FROM images") == [(0,)]

    monkeypatch.undo()
    kept = make_detail(prompt="a lighthouse")
    await mysql_repository.add(kept)  # on the same pooled connection, which was left clean
    # Seen from another connection: committed, not left inside an open transaction.
    assert mysql_server.query(mysql_database, "SELECT guid FROM images") == [(str(kept.guid),)]
    assert postings_of(mysql_server, mysql_database, kept) == ["lighthouse"]


async def test_the_rarest_word_leads_where_the_page_starts(mysql_repository, monkeypatch):
    common = [
        make_detail(prompt=f"common filler {i}", created_at=BASE + timedelta(seconds=i)) for i in range(300)
    ]
    rare = [
        make_detail(prompt="common rarity", created_at=BASE + timedelta(seconds=300 + i)) for i in range(3)
    ]
    for detail in [*common, *rare]:
        await mysql_repository.add(detail)
    chosen = []
    original = word_postings.rarest_first

    def spy(words, reach):
        chosen.append(original(words, reach))
        return chosen[-1]

    monkeypatch.setattr(word_postings, "rarest_first", spy)
    for q in ("common rarity", "rarity common"):
        page = await mysql_repository.list_page(10, None, parse_filter(q=q))
        assert [d.guid for d in page.items] == [d.guid for d in reversed(rare)]
    assert chosen == [("rarity", "common"), ("rarity", "common")]


async def test_a_page_of_words_reads_the_postings_in_order_without_sorting(
    mysql_repository, mysql_server, mysql_database
):
    for i in range(40):
        await mysql_repository.add(
            make_detail(prompt=f"lighthouse number{i % 4}", created_at=BASE + timedelta(seconds=i))
        )
    mysql_server.query(mysql_database, "ANALYZE TABLE image_words")
    for filters in (
        ImageFilter(words=("lighthouse",)),
        ImageFilter(words=("lighthouse", "number1"), model="dall-e-3"),
        ImageFilter(words=("lighthouse",), created_after=BASE, created_before=BASE + timedelta(hours=1)),
    ):
        params = {
            "limit": 11,
            "model": filters.model,
            "owner": None,
            "created_at": None,
            "id": None,
            "created_after": filters.created_after,
            "created_before": filters.created_before,
            **word_postings.word_params(filters.words),
        }
        statement = word_postings.page_statement("mysql", len(filters.words), filters, keyset=False)
        plan = [
            {k.lower(): v for k, v in step.items()}
            for step in _explain(mysql_server, mysql_database, statement, params)
        ]
        assert plan[0]["table"] == "w0" and plan[0]["key"] == "PRIMARY", plan
        assert all("filesort" not in (step["extra"] or "").lower() for step in plan), plan
        assert [step["table"] for step in plan] == [f"w{n}" for n in range(len(filters.words))] + ["images"]


async def test_one_tenants_search_reads_its_own_images_and_looks_the_words_up(
    mysql_repository, mysql_server, mysql_database, monkeypatch
):
    """A common word and a tenant with few images: the owner's index leads, read in order."""
    for i in range(300):
        at = BASE + timedelta(seconds=i)
        await mysql_repository.add(make_detail(prompt="a lighthouse", created_at=at, owner="many"))
    few = [
        make_detail(prompt="a lighthouse", created_at=BASE + timedelta(seconds=i), owner="few")
        for i in range(0, 300, 100)
    ]
    for detail in few:
        await mysql_repository.add(detail)
    chosen = []
    original = word_postings.plan

    def spy(words, filters, reach):
        chosen.append(original(words, filters, reach))
        return chosen[-1]

    monkeypatch.setattr(word_postings, "plan", spy)
    page = await mysql_repository.list_page(10, None, ImageFilter(words=("lighthouse",), owner="few"))
    assert [d.guid for d in page.items] == [d.guid for d in reversed(few)]
    assert chosen == [("owner", ("lighthouse",))]

    filters = ImageFilter(words=("lighthouse",), owner="few")
    params = {
        "limit": 11, "model": None, "owner": "few", "created_at": BASE, "id": 10,
        "created_after": None, "created_before": None, **word_postings.word_params(filters.words),
    }  # fmt: skip
    statement = word_postings.page_statement("mysql", 1, filters, keyset=True, lead="owner")
    plan = [
        {k.lower(): v for k, v in step.items()}
        for step in _explain(mysql_server, mysql_database, statement, params)
    ]
    assert [step["table"] for step in plan] == ["images", "w0"], plan
    assert plan[0]["key"] == "ix_images_owner_created_at_id" and plan[1]["key"] == "PRIMARY", plan
    assert all("filesort" not in (step["extra"] or "").lower() for step in plan), plan


async def database_before_the_index(mysql_url, mysql_server, mysql_database, monkeypatch, count):
    """A database at the schema before the posting table (version 4), holding `count` images."""
    with monkeypatch.context() as patched:
        for later in [v for v in schema.MIGRATIONS if v >= 5]:  # 5 and whatever came after it
            patched.delitem(schema.MIGRATIONS, later)
        # The columns later versions add are not there yet either.
        patched.setattr(
            schema, "REQUIRED_COLUMNS", schema.REQUIRED_COLUMNS - {"provider", "deployment", "attempts"}
        )
        old = make_repository(mysql_url)
        await init_as_an_older_release(old)
    details = [
        make_detail(prompt=f"harbour study {i}", created_at=BASE + timedelta(seconds=i)) for i in range(count)
    ]
    insert = (
        "INSERT INTO images (guid, filename, prompt, created_at, updated_at, content_type, size_bytes, "
        "width, height, model, sha256) VALUES (%(guid)s, 'x.png', %(prompt)s, %(at)s, %(at)s, "
        "'image/png', 1, 1, 1, 'm', REPEAT('a', 64))"
    )
    for detail in details:
        at = detail.created_at.replace(tzinfo=None)
        mysql_server.query(
            mysql_database, insert, {"guid": str(detail.guid), "prompt": detail.prompt, "at": at}
        )
    return details


async def test_an_upgrade_indexes_the_stored_prompts_and_drops_the_fulltext_copy(
    mysql_url, mysql_server, mysql_database, monkeypatch
):
    details = await database_before_the_index(mysql_url, mysql_server, mysql_database, monkeypatch, 5)
    monkeypatch.setattr(word_index, "BACKFILL_BATCH", 2)  # several batches, the last one short
    monkeypatch.setattr(word_index, "BACKFILL_STATEMENT_PAIRS", 3)  # and statements within a batch

    repository = make_repository(mysql_url)
    await repository.init()
    try:
        page = await repository.list_page(10, None, parse_filter(q="harbour study"))
        assert [d.guid for d in page.items] == [d.guid for d in reversed(details)]
    finally:
        await repository.close()
    # Two words each ("harbour", "study"; the one-digit number is too short), posted at the image's time.
    posted = mysql_server.query(
        mysql_database,
        "SELECT COUNT(*), SUM(image_words.image_created_at = images.created_at) FROM image_words "
        "JOIN images ON images.id = image_words.image_id",
    )
    assert [tuple(int(v) for v in row) for row in posted] == [(10, 10)]
    columns = mysql_server.query(
        mysql_database,
        "SELECT column_name FROM information_schema.columns WHERE table_schema = %(db)s "
        "AND table_name = 'images' AND column_name = 'prompt_words'",
        {"db": mysql_database},
    )
    assert columns == []
    versions = mysql_server.query(
        mysql_database, "SELECT version FROM pixyproxy_schema_version ORDER BY version"
    )
    assert [v[0] for v in versions] == sorted(schema.MIGRATIONS)


async def test_a_backfill_cut_short_resumes_after_the_last_image_posted(
    mysql_url, mysql_server, mysql_database, monkeypatch, caplog
):
    await database_before_the_index(mysql_url, mysql_server, mysql_database, monkeypatch, 6)
    monkeypatch.setattr(word_index, "BACKFILL_BATCH", 2)
    post, calls = word_index._post, []

    def fails_second_time(cursor, batch):
        calls.append(len(batch))
        if len(calls) == 2:
            raise OperationalError(2013, "Lost connection to server during query")
        return post(cursor, batch)

    monkeypatch.setattr(word_index, "_post", fails_second_time)
    with pytest.raises(MetadataUnavailable):
        await make_repository(mysql_url).init()
    assert mysql_server.query(mysql_database, "SELECT COUNT(*) FROM image_words") == [(4,)]
    (second_id,) = mysql_server.query(mysql_database, "SELECT MAX(image_id) FROM image_words")

    monkeypatch.setattr(word_index, "_post", post)
    caplog.set_level("INFO", logger=word_index.__name__)
    repository = make_repository(mysql_url)
    await repository.init()
    await repository.close()
    assert mysql_server.query(mysql_database, "SELECT COUNT(*) FROM image_words") == [(12,)]
    assert f"(8 postings; resumed after id {second_id[0]})" in caplog.text


async def test_a_transaction_rolled_back_by_a_deadlock_is_run_again(
    mysql_repository, mysql_server, mysql_database, monkeypatch
):
    """InnoDB may pick an image's transaction as a deadlock's victim (a delete cascading through the
    postings beside it); the whole transaction was rolled back, so it is run once more."""
    postings, calls = word_postings.posting_rows, []

    def deadlocked_once(*args):
        calls.append(args)
        if len(calls) == 1:
            raise OperationalError(1213, "Deadlock found when trying to get lock; try restarting transaction")
        return postings(*args)

    monkeypatch.setattr(word_postings, "posting_rows", deadlocked_once)
    detail = make_detail(prompt="a lighthouse")
    await mysql_repository.add(detail)
    assert len(calls) == 2
    assert mysql_server.query(mysql_database, "SELECT guid FROM images") == [(str(detail.guid),)]
    assert postings_of(mysql_server, mysql_database, detail) == ["lighthouse"]


async def test_adds_and_deletes_at_once_leave_exactly_the_kept_images_words(
    mysql_repository, mysql_server, mysql_database
):
    old = [
        make_detail(prompt=f"the old lighthouse {i}", created_at=BASE + timedelta(seconds=i))
        for i in range(20)
    ]
    for detail in old:
        await mysql_repository.add(detail)
    new = [
        make_detail(prompt=f"the new lighthouse {i}", created_at=BASE + timedelta(minutes=1, seconds=i))
        for i in range(20)
    ]
    await asyncio.gather(
        *(mysql_repository.delete(d.guid) for d in old), *(mysql_repository.add(d) for d in new)
    )
    page = await mysql_repository.list_page(100, None, parse_filter(q="the lighthouse"))
    assert [d.guid for d in page.items] == [d.guid for d in reversed(new)]
    orphans = mysql_server.query(
        mysql_database,
        "SELECT COUNT(*) FROM image_words LEFT JOIN images ON images.id = image_words.image_id "
        "WHERE images.id IS NULL",
    )
    assert orphans == [(0,)]
    assert mysql_server.query(mysql_database, "SELECT COUNT(*) FROM image_words") == [(60,)]
