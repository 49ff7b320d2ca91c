"""The ImageRepository contract for what an image records of its options and of the images it came from,
run against every adapter in REPOSITORY_ADAPTERS."""

import sqlite3
from uuid import uuid4

from tests.contract.test_repository_contract import make_detail
from tests.support.sql import make_repository, sqlite_url


async def test_options_and_lineage_read_back_identical(repository):
    parent, mask = make_detail("the source"), make_detail("the mask")
    await repository.add(parent)
    await repository.add(mask)
    references = [uuid4() for _ in range(15)]
    guid = uuid4()
    detail = make_detail(
        "an edit",
        guid=guid,
        filename=f"{guid}.webp",
        content_type="image/webp",
        background="transparent",
        output_format="webp",
        output_compression=0,
        moderation="low",
        safety_identifier="pixyproxy-" + "0" * 32,
        parent_guid=parent.guid,
        mask_guid=mask.guid,
        reference_guids=references,
        usage={
            "input_tokens": 340,
            "input_tokens_details": {"image_tokens": 323, "text_tokens": 17},
            "output_tokens": 1056,
            "output_tokens_details": {"image_tokens": 1056, "text_tokens": 0},
            "total_tokens": 1396,
        },
    )
    await repository.add(detail)
    assert await repository.get(detail.guid) == detail
    page = await repository.list_page(10)
    assert page.items[0] == detail


async def test_an_image_without_options_reads_them_as_null(repository):
    detail = make_detail()
    await repository.add(detail)
    stored = await repository.get(detail.guid)
    assert (stored.output_format, stored.parent_guid, stored.reference_guids) == (None, None, None)


async def test_a_database_of_the_first_schema_is_migrated_and_keeps_its_rows(tmp_path):
    path = tmp_path / "old.db"
    old = sqlite3.connect(path)
    from pixyproxy.adapters.sql.migrations.legacy_sqlite import MIGRATIONS

    old.executescript(f"BEGIN; {MIGRATIONS[1]} PRAGMA user_version = 1; COMMIT;")
    old.execute(
        "INSERT INTO images (guid, filename, prompt, created_at, updated_at, content_type, size_bytes, "
        "width, height, model, sha256) VALUES (?, ?, 'old', '2026-11-24T12:00:00.000000+00:00', "
        "'2026-11-24T12:00:00.000000+00:00', 'image/png', 1, 1, 1, 'm', ?)",
        (str(guid := uuid4()), f"{guid}.png", "ab" * 32),
    )
    old.commit()
    old.close()
    repository = make_repository(sqlite_url(path))
    await repository.init()
    try:
        stored = await repository.get(guid)
        assert stored is not None and stored.prompt == "old" and stored.output_format is None
        await repository.add(make_detail(parent_guid=guid))
    finally:
        await repository.close()


async def test_mysql_adds_the_columns_to_a_first_schema_table_and_survives_a_rerun(
    mysql_server, mysql_database
):
    from pixyproxy.adapters.sql.migrations import legacy_mysql as schema

    connection = mysql_server.connect(mysql_database)
    with connection.cursor() as cursor:  # a database made by the first release: version 1 only
        for statement in schema.MIGRATIONS[1][1]:
            cursor.execute(statement)
        cursor.execute(schema.CREATE_VERSION_TABLE)
        cursor.execute("INSERT INTO pixyproxy_schema_version VALUES (1, 'images table', UTC_TIMESTAMP(6))")
        # A crash after the ALTER but before its version row: the next start runs the ALTER again.
        for statement in schema.MIGRATIONS[2][1]:
            cursor.execute(statement)
    connection.commit()
    connection.close()
    repository = make_repository(mysql_server.url(mysql_database))
    try:
        await repository.init()
        detail = make_detail(parent_guid=uuid4(), output_format="jpeg", reference_guids=[uuid4()])
        await repository.add(detail)
        assert await repository.get(detail.guid) == detail
    finally:
        await repository.close()
    versions = mysql_server.query(
        mysql_database, "SELECT version FROM pixyproxy_schema_version ORDER BY version"
    )
    assert [v[0] for v in versions] == sorted(schema.MIGRATIONS)  # the rerun of 2, then every later one
    indexes = mysql_server.query(
        mysql_database,
        "SELECT column_name FROM information_schema.statistics "
        "WHERE table_schema = %(db)s AND table_name = 'images' AND index_name = 'ix_images_parent_guid'",
        {"db": mysql_database},
    )
    assert indexes == (("parent_guid",),) or [tuple(i) for i in indexes] == [("parent_guid",)]
