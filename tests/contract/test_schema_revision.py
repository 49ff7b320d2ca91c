"""The schema revision `pixyproxy check` reports, read on each metadata store without migrating it."""

import pytest

from pixyproxy.container import schema_revision
from pixyproxy.settings import Settings
from tests.support.mysql import make_repository


async def _revisions(url: str, make) -> tuple:
    settings = Settings(_env_file=None, database_url=url)
    before = await schema_revision(settings)
    assert before == await schema_revision(settings)  # reading it changed nothing
    repository = make()
    await repository.init()
    await repository.close()
    return before, await schema_revision(settings)


async def test_sqlite_revision_before_and_after_init(tmp_path):
    from pixyproxy.adapters.sqlite_repository import SQLiteImageRepository

    path = tmp_path / "db.sqlite"
    await schema_revision(Settings(_env_file=None, database_url=f"sqlite:///{path}"))
    assert not path.exists()  # reading never creates the file
    before, after = await _revisions(f"sqlite:///{path}", lambda: SQLiteImageRepository(str(path)))
    assert before.found == 0
    assert after.found == after.expected > 0


@pytest.mark.mysql
async def test_mysql_revision_before_and_after_init(mysql_url):
    before, after = await _revisions(mysql_url, lambda: make_repository(mysql_url))
    assert before.found == 0
    assert after.found == after.expected > 0
