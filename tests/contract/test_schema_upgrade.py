"""Alembic owns the schema: a database made by the last release before it (tests/fixtures/legacy_release)
upgrades in place with nothing lost, on SQLite and on MySQL; first starts at once apply each revision
once; a database newer than the code is refused by name; an upgrade cut short leaves nothing half done
(SQLite) and the next start finishes it."""

import hashlib
import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from pixyproxy.adapters.sql import schema
from pixyproxy.adapters.sql.migrations import legacy_sqlite
from pixyproxy.domain.errors import MetadataUnavailable
from tests.support.embedded import in_process_app
from tests.support.sql import make_repository, sqlite_url

FIXTURE = Path(__file__).parent.parent / "fixtures" / "legacy_release"
KEYS = {"alice": "alice-key-0123456789", "bob": "bob-key-0123456789"}
AUTH = {name: {"Authorization": f"Bearer {key}"} for name, key in KEYS.items()}


def load_dump(mysql_server, database: str) -> None:
    """The fixture's mysqldump, statement by statement (no DELIMITER blocks in it)."""
    text = (FIXTURE / "mysql.sql").read_text()
    with mysql_server.connect(database) as connection, connection.cursor() as cursor:
        for statement in text.split(";\n"):
            if statement.strip():
                cursor.execute(statement)
        connection.commit()


def as_that_release(answer: Any, then: Any) -> Any:
    """Today's answer with only the fields that release answered with: every field added since (the
    catalogue's provider, deployment and attempts, the newer options) must be null for what it made."""
    if isinstance(answer, list) and isinstance(then, list) and len(answer) == len(then):
        return [as_that_release(a, t) for a, t in zip(answer, then, strict=True)]
    if not (isinstance(answer, dict) and isinstance(then, dict)):
        return answer
    added = {name: answer[name] for name in answer.keys() - then.keys()}
    assert all(value is None for value in added.values()), added
    return {name: as_that_release(answer[name], then[name]) for name in then.keys() & answer.keys()}


def assert_nothing_lost(client: TestClient, expected: dict, images: Path) -> None:
    """Every image the old release answered with, its bytes, a variant, its words, the job and usage."""
    first, second, edit = expected["images"]
    for detail, who in ((first, "alice"), (second, "bob"), (edit, "alice")):
        got = client.get(f"/image/{detail['guid']}", headers=AUTH[who])
        assert got.status_code == 200, got.text
        assert as_that_release(got.json(), detail) == detail
        content = client.get(f"/image/{detail['guid']}/content", headers=AUTH[who])
        assert hashlib.sha256(content.content).hexdigest() == detail["sha256"]
    assert edit["parent_guid"] == first["guid"] and edit["reference_guids"] == [first["guid"]]
    variant = client.get(f"/image/{first['guid']}/content?width=64&format=webp", headers=AUTH["alice"])
    assert variant.status_code == 200 and variant.headers["content-type"] == "image/webp"
    found = client.get("/image/?q=lighthouse", headers=AUTH["alice"]).json()
    assert {d["guid"] for d in found} >= {first["guid"], edit["guid"]}
    assert [d["guid"] for d in client.get("/image/?q=cafe", headers=AUTH["bob"]).json()] == [second["guid"]]
    job = client.get(f"/image/jobs/{expected['job']['id']}", headers=AUTH["alice"])
    assert job.status_code == 200 and as_that_release(job.json(), expected["job"]) == expected["job"]
    assert job.json()["progress"] is None  # that release kept none: not made up from the status
    usage = client.get("/usage?since=2026-01-01T00:00:00Z", headers=AUTH["alice"]).json()
    assert usage, "usage recorded by the old release is gone"
    # A new image after the upgrade joins the old ones.
    made = client.post("/image/", json={"prompt": "a lighthouse after the upgrade"}, headers=AUTH["alice"])
    assert made.status_code == 200, made.text


def test_an_sqlite_file_of_the_last_release_upgrades_with_nothing_lost(tmp_path):
    shutil.copy(FIXTURE / "sqlite.db", tmp_path / "db.sqlite")
    shutil.copytree(FIXTURE / "sqlite-images", tmp_path / "images")
    expected = json.loads((FIXTURE / "sqlite-expected.json").read_text())
    app = in_process_app(tmp_path, api_keys=",".join(KEYS.values()), job_worker=False)
    with TestClient(app) as client:
        assert_nothing_lost(client, expected, tmp_path / "images")
    with sqlite3.connect(tmp_path / "db.sqlite") as db:
        assert db.execute("SELECT version_num FROM alembic_version").fetchall() == [(schema.head(),)]
        assert db.execute("SELECT status FROM webhook_deliveries").fetchall() == [("pending",)]


@pytest.mark.mysql
def test_a_mysql_database_of_the_last_release_upgrades_with_nothing_lost(
    tmp_path, mysql_server, mysql_database
):
    load_dump(mysql_server, mysql_database)
    shutil.copytree(FIXTURE / "mysql-images", tmp_path / "images")
    expected = json.loads((FIXTURE / "mysql-expected.json").read_text())
    app = in_process_app(
        tmp_path,
        api_keys=",".join(KEYS.values()),
        job_worker=False,
        database_url=mysql_server.url(mysql_database),
    )
    with TestClient(app) as client:
        assert_nothing_lost(client, expected, tmp_path / "images")
    assert mysql_server.query(mysql_database, "SELECT version_num FROM alembic_version") == [(schema.head(),)]
    versions = mysql_server.query(mysql_database, "SELECT COUNT(*) FROM pixyproxy_schema_version")
    assert versions == [(5,)]
    assert mysql_server.query(mysql_database, "SELECT status FROM webhook_deliveries") == [("pending",)]


def init_at_once(
    tmp_path: Path, env: dict[str, str], processes: int = 2
) -> list[subprocess.CompletedProcess]:
    command = [sys.executable, "-m", "pixyproxy.entrypoints.cli", "init"]
    env = {"PATH": "/usr/bin:/bin", **env}
    started = [
        subprocess.Popen(
            command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(processes)
    ]
    done = []
    for process in started:
        out, err = process.communicate(timeout=120)
        done.append(subprocess.CompletedProcess(command, process.returncode, out, err))
    return done


def test_first_starts_at_once_on_a_fresh_sqlite_folder_apply_each_revision_once(tmp_path):
    url = sqlite_url(tmp_path / "data" / "db.sqlite")
    for done in init_at_once(tmp_path, {"PIXYPROXY_DATABASE_URL": url}):
        assert done.returncode == 0, done.stderr
    with sqlite3.connect(tmp_path / "data" / "db.sqlite") as db:
        assert db.execute("SELECT version_num FROM alembic_version").fetchall() == [(schema.head(),)]
        assert db.execute("PRAGMA user_version").fetchone() == (legacy_sqlite.SCHEMA_VERSION,)


@pytest.mark.mysql
def test_first_starts_at_once_on_a_fresh_mysql_database_apply_each_revision_once(
    tmp_path, mysql_server, mysql_database
):
    for done in init_at_once(tmp_path, {"PIXYPROXY_DATABASE_URL": mysql_server.url(mysql_database)}):
        assert done.returncode == 0, done.stderr
    assert mysql_server.query(mysql_database, "SELECT version_num FROM alembic_version") == [(schema.head(),)]
    rows = mysql_server.query(
        mysql_database, "SELECT version, COUNT(*) FROM pixyproxy_schema_version GROUP BY version"
    )
    assert [tuple(r) for r in rows] == [(v, 1) for v in range(1, 6)]


def test_a_database_newer_than_the_code_is_refused_naming_both_revisions(tmp_path):
    url = sqlite_url(tmp_path / "db.sqlite")
    env = {"PATH": "/usr/bin:/bin", "PIXYPROXY_DATABASE_URL": url}
    command = [sys.executable, "-m", "pixyproxy.entrypoints.cli", "init"]
    assert subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, timeout=120).returncode == 0
    with sqlite3.connect(tmp_path / "db.sqlite") as db:
        db.execute("UPDATE alembic_version SET version_num = '9999_from_the_future'")
    serve = [*command[:-1], "serve", "--port", "1"]  # refused before it would listen
    for refused in (command, serve):
        done = subprocess.run(refused, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode != 0
        lines = [line for line in done.stderr.splitlines() if "9999_from_the_future" in line]
        assert len(lines) == 1 and schema.head() in lines[0], done.stderr
        assert "Traceback" not in done.stderr
    with sqlite3.connect(tmp_path / "db.sqlite") as db:  # and left as it was
        assert db.execute("SELECT version_num FROM alembic_version").fetchall() == [("9999_from_the_future",)]


async def test_an_sqlite_upgrade_cut_short_leaves_nothing_and_the_next_start_finishes_it(
    tmp_path, monkeypatch
):
    path = tmp_path / "db.sqlite"
    with monkeypatch.context() as patched:

        def dies_midway(db):
            db.execute("CREATE TABLE image_words (word TEXT)")  # some of the step done, then the crash
            raise OSError("killed")

        patched.setitem(legacy_sqlite.MIGRATION_STEPS, 5, dies_midway)
        repository = make_repository(sqlite_url(path))
        with pytest.raises(MetadataUnavailable):
            await repository.init()
        await repository.close()
    with sqlite3.connect(path) as db:  # one transaction: nothing of it stayed
        assert db.execute("SELECT name FROM sqlite_master").fetchall() == []
        assert db.execute("PRAGMA user_version").fetchone() == (0,)
    repository = make_repository(sqlite_url(path))
    await repository.init()
    await repository.close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT version_num FROM alembic_version").fetchall() == [(schema.head(),)]


def test_the_head_a_start_checks_against_is_the_newest_revision():
    """A start at the newest revision is one query against migrations.HEAD: it must name the real head."""
    from pixyproxy.adapters.sql.migrations import HEAD

    assert schema.head() == HEAD
