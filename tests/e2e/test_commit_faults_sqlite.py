"""The COMMIT of an image's row fails on SQLite, where there is no wire to cut: the fault is put at the
same point inside the process (the SQL layer's one COMMIT, armed when the layer sends the image's
statement), and the app runs in the test's loop so the steps are ordered with events.

* "lost": the COMMIT is done (durable), then the driver raises as if the connection broke;
* "failed": the driver raises instead of committing (nothing is kept);
* "blocked": the COMMIT waits until the test releases it (SQLite has no answer to time out on).

Afterwards every listed image has its bytes, no row lacks its bytes, no bytes lack a row, and a retry
with the same Idempotency-Key answers what is true."""

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from pixyproxy.adapters.sql.database import Tx
from pixyproxy.container import Container
from pixyproxy.entrypoints.app import create_app
from tests.support.embedded import embedded_container

INSERT_IMAGE = "INSERT INTO images ("
DELETE_IMAGE = "DELETE FROM images WHERE"


@dataclass
class CommitFault:
    """Fails the COMMIT after the next statement starting with `statement`."""

    statement: str = ""
    mode: str = ""
    reached: asyncio.Event = field(default_factory=asyncio.Event)
    released: asyncio.Event = field(default_factory=asyncio.Event)

    def arm(self, statement: str, mode: str) -> None:
        self.statement, self.mode = statement, mode

    def around_statement(self, send):
        """Tx._statement, through which every statement of a unit of work goes: arms the unit's COMMIT
        once the chosen statement runs in it."""
        fault = self

        async def arming(tx, sql, params):
            if fault.statement and sql.startswith(fault.statement):
                tx.connection.info["fail_commit"], fault.statement = fault.mode, ""
            return await send(tx, sql, params)

        return arming

    def around_commit(self, commit):
        """Tx.commit, the SQL layer's one COMMIT (sent to the driver itself), with the armed fault."""
        fault = self

        async def faulty_commit(tx) -> None:
            mode = tx.connection.info.pop("fail_commit", None)
            if mode is not None:
                fault.reached.set()
            if mode == "failed":
                raise OSError("the connection broke before the COMMIT was done")
            if mode == "blocked":
                await fault.released.wait()  # the COMMIT waits; the loop runs on meanwhile
            await commit(tx)
            if mode == "lost":
                raise OSError("the connection broke after the COMMIT was done")

        return faulty_commit


@dataclass
class App:
    client: httpx.AsyncClient
    fault: CommitFault
    folder: Path
    container: Container

    def rows(self) -> set[str]:
        with sqlite3.connect(self.folder / "db.sqlite") as db:
            return {row[0] for row in db.execute("SELECT filename FROM images")}

    def files(self) -> set[str]:
        folder = self.folder / "images"
        return {p.name for p in folder.iterdir() if not p.name.startswith(".")} if folder.exists() else set()

    async def assert_nothing_lost(self) -> None:
        """Every listed image has its bytes, no row lacks them; after gc, no bytes lack a row."""
        for image in (await self.client.get("/image/")).json():
            assert (await self.client.get(f"/image/{image['guid']}/content")).status_code == 200
        assert self.rows() <= self.files()
        collector = self.container.garbage_collector()
        assert await collector.remove_rows_without_bytes(timedelta(0)) == []
        await collector.remove_orphans(timedelta(seconds=-1))
        assert self.rows() == self.files()


@pytest.fixture
async def app(tmp_path, monkeypatch) -> AsyncIterator[App]:
    container = embedded_container(tmp_path, job_poll_seconds=0.05)
    application = create_app(container)
    async with application.router.lifespan_context(application):
        fault = CommitFault()
        monkeypatch.setattr(Tx, "_statement", fault.around_statement(Tx._statement))
        monkeypatch.setattr(Tx, "commit", fault.around_commit(Tx.commit))
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://t", timeout=60) as client:
            yield App(client, fault, tmp_path, container)


KEYED = {"json": {"prompt": "a lighthouse at the commit"}, "headers": {"Idempotency-Key": "at-commit"}}


async def test_a_lost_answer_to_a_durable_commit_is_learned_and_answered(app):
    app.fault.arm(INSERT_IMAGE, "lost")
    first = await app.client.post("/image/", **KEYED)
    assert app.fault.reached.is_set()
    assert first.status_code == 200, first.text
    retry = await app.client.post("/image/", **KEYED)
    assert retry.json()["guid"] == first.json()["guid"]
    await app.assert_nothing_lost()
    assert len(app.rows()) == 1


async def test_a_commit_that_failed_keeps_nothing_and_the_retry_makes_the_image(app):
    app.fault.arm(INSERT_IMAGE, "failed")
    first = await app.client.post("/image/", **KEYED)
    assert app.fault.reached.is_set()
    assert first.status_code == 503 and first.json()["code"] == "metadata_unavailable", first.text
    assert app.rows() == set() and app.files() == set()
    retry = await app.client.post("/image/", **KEYED)
    assert retry.status_code == 200, retry.text
    await app.assert_nothing_lost()
    assert len(app.rows()) == 1


async def test_a_blocked_commit_is_waited_for_while_reads_go_on(app):
    app.fault.arm(INSERT_IMAGE, "blocked")
    posting = asyncio.create_task(app.client.post("/image/", **KEYED))
    await app.fault.reached.wait()
    assert (await app.client.get("/image/")).json() == []  # reads go on; the row is not there yet
    assert len(app.files()) == 1  # its bytes are, first
    app.fault.released.set()
    first = await posting
    assert first.status_code == 200, first.text
    await app.assert_nothing_lost()


@pytest.mark.parametrize("mode", ["lost", "failed", "blocked"])
async def test_v1_generations_with_several_images(app, mode):
    app.fault.arm(INSERT_IMAGE, mode)
    if mode == "blocked":
        asyncio.get_running_loop().call_soon(app.fault.released.set)
    answer = await app.client.post("/v1/images/generations", json={"prompt": "three boats", "n": 3})
    stored_when_answered = app.rows()  # no store still runs once the client has its answer
    assert app.fault.reached.is_set()
    assert answer.status_code == (503 if mode == "failed" else 200), answer.text
    await app.assert_nothing_lost()
    assert len(stored_when_answered) == (2 if mode == "failed" else 3)  # the other two were stored
    assert app.rows() == stored_when_answered


@pytest.mark.parametrize("mode", ["lost", "failed"])
async def test_a_job_with_several_images(app, mode):
    app.fault.arm(INSERT_IMAGE, mode)
    submitted = (await app.client.post("/image/jobs", json={"prompt": "three lighthouses", "n": 3})).json()
    while (job := (await app.client.get(f"/image/jobs/{submitted['id']}")).json())["status"] in (
        "queued",
        "running",
    ):
        await asyncio.sleep(0.05)  # the job runs in this loop's worker: nothing else to wait on
    assert app.fault.reached.is_set()
    assert job["status"] == ("failed" if mode == "failed" else "succeeded"), job
    for image in job["images"]:
        assert (await app.client.get(f"/image/{image['guid']}/content")).status_code == 200
    await app.assert_nothing_lost()


@pytest.mark.parametrize(("mode", "status"), [("lost", 204), ("failed", 503), ("blocked", 204)])
async def test_delete_at_a_failed_commit_answers_what_is_true(app, mode, status):
    guid = (await app.client.post("/image/", json={"prompt": "to be deleted"})).json()["guid"]
    app.fault.arm(DELETE_IMAGE, mode)
    if mode == "blocked":
        asyncio.get_running_loop().call_soon(app.fault.released.set)
    deleted = await app.client.delete(f"/image/{guid}")
    assert app.fault.reached.is_set()
    assert deleted.status_code == status, deleted.text
    expected = 404 if status == 204 else 200
    assert (await app.client.get(f"/image/{guid}")).status_code == expected
    await app.assert_nothing_lost()
