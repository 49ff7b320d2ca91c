"""One retry policy for every table: a deadlock's victim and a unit of work whose connection was lost
before its COMMIT are run again, on SQLite and MySQL alike; the outcome of a lost COMMIT is reported as
unknown rather than guessed; driver errors are classified once."""

import sqlite3
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest
from pymysql.err import IntegrityError, OperationalError

from pixyproxy.adapters.sql.database import Tx
from pixyproxy.adapters.sql.errors import Kind, classify
from pixyproxy.adapters.sql.images import SQLImageRepository
from pixyproxy.adapters.sql.jobs import SQLJobStore
from pixyproxy.adapters.sql.webhooks import SQLWebhookOutbox
from pixyproxy.domain.errors import MetadataOutcomeUnknown, MetadataUnavailable
from pixyproxy.domain.jobs_models import Job, JobRequest, JobStatus
from pixyproxy.domain.webhooks import WebhookDelivery
from tests.contract.test_repository_contract import make_detail
from tests.support.sql import make_database, sqlite_url


def utc_now() -> datetime:
    return datetime.now(UTC)


FAULTS = {
    "deadlock": lambda: OperationalError(
        1213, "Deadlock found when trying to get lock; try restarting transaction"
    ),
    "lost connection": lambda: OperationalError(2013, "Lost connection to MySQL server during query"),
}


@pytest.fixture(params=["sqlite", "mysql"])
async def database(request, tmp_path):
    url = (
        sqlite_url(tmp_path / "db.sqlite")
        if request.param == "sqlite"
        else request.getfixturevalue("mysql_url")
    )
    database = make_database(url)
    await database.init()
    yield database
    await database.close()


def fail_first(monkeypatch, fault: str, times: int = 1) -> list[str]:
    """The unit of work's first `times` statements fail with `fault`; returns every statement seen."""
    seen: list[str] = []
    execute = Tx._statement

    async def failing(self, sql, params):
        seen.append(sql)
        if len(seen) <= times:
            raise FAULTS[fault]()
        return await execute(self, sql, params)

    monkeypatch.setattr(Tx, "_statement", failing)
    return seen


def a_job() -> Job:
    return Job(id=uuid4(), status=JobStatus.queued, created_at=utc_now(), request=JobRequest(prompt="a fox"))


def a_delivery() -> WebhookDelivery:
    now = utc_now()
    return WebhookDelivery(
        id=f"msg_{uuid4().hex}", job_id=str(uuid4()), url="https://example.test/hook",
        event_type="job.succeeded", payload="{}", created_at=now, next_attempt_at=now - timedelta(seconds=1),
    )  # fmt: skip


@pytest.mark.parametrize("fault", list(FAULTS))
async def test_images_run_again_after_a_fault(database, monkeypatch, fault):
    images = SQLImageRepository(database)
    detail = make_detail(prompt="a lighthouse at dusk")
    seen = fail_first(monkeypatch, fault)
    await images.add(detail, idempotency_key="k", request_hash="h")
    monkeypatch.undo()
    assert len(seen) >= 2 and seen[0] == seen[1]  # the INSERT, again
    assert await images.get(detail.guid) == detail
    assert [d.guid for d in (await images.list_page(10)).items] == [detail.guid]


@pytest.mark.parametrize("fault", list(FAULTS))
async def test_jobs_run_again_after_a_fault(database, monkeypatch, fault):
    jobs = SQLJobStore(database)
    job = a_job()
    fail_first(monkeypatch, fault)
    await jobs.add(job)
    fail_first(monkeypatch, fault)
    now = utc_now()
    (claimed,) = await jobs.claim("w1", now, now + timedelta(seconds=30), 5, 3)
    monkeypatch.undo()
    assert claimed.id == job.id and claimed.attempts == 1  # claimed once, not twice
    assert (await jobs.list_page(None, None, 10)).items[0].status is JobStatus.running


@pytest.mark.parametrize("fault", list(FAULTS))
async def test_webhook_deliveries_run_again_after_a_fault(database, monkeypatch, fault):
    outbox = SQLWebhookOutbox(database)
    delivery = a_delivery()
    fail_first(monkeypatch, fault)
    assert await outbox.add(delivery)
    fail_first(monkeypatch, fault)
    now = utc_now()
    (claimed,) = await outbox.claim_due("w1", now, 5, now + timedelta(seconds=30))
    monkeypatch.undo()
    assert claimed.id == delivery.id
    assert await outbox.claim_due("w2", now, 5, now + timedelta(seconds=30)) == []  # leased once


async def test_a_deadlock_that_persists_ends_as_metadata_unavailable(database, monkeypatch):
    seen = fail_first(monkeypatch, "deadlock", times=100)
    with pytest.raises(MetadataUnavailable, match=r"[Dd]eadlock"):
        await SQLJobStore(database).add(a_job())
    assert len(seen) == database.retry.deadlock_attempts


async def test_a_commit_left_unanswered_is_outcome_unknown_not_retried(database, monkeypatch):
    """A write whose COMMIT got no answer may have been kept: reported as such, never run twice."""
    commits = []

    async def lost(self):
        commits.append(1)
        raise OperationalError(2013, "Lost connection to MySQL server during query")

    monkeypatch.setattr(Tx, "commit", lost)
    with pytest.raises(MetadataOutcomeUnknown):
        await database.execute("UPDATE jobs SET notified = 1 WHERE job_id = :job_id", {"job_id": "x"})
    assert commits == [1]


def test_driver_errors_are_classified_once():
    mariadb = IntegrityError(1062, "Duplicate entry 'k' for key 'uq_images_idempotency_key'")
    mysql8 = IntegrityError(1062, "Duplicate entry 'k' for key 'images.uq_images_idempotency_key'")
    for error in (mariadb, mysql8):
        failure = classify(error)
        assert (failure.kind, failure.constraint) == (Kind.DUPLICATE, "uq_images_idempotency_key")
    unique = sqlite3.IntegrityError("UNIQUE constraint failed: jobs.owner, jobs.idempotency_key")
    assert classify(unique).constraint == "uq_jobs_owner_key"
    assert classify(sqlite3.OperationalError("database is locked")).kind is Kind.BUSY
    assert classify(OperationalError(1213, "Deadlock found")).kind is Kind.DEADLOCK
    assert classify(OperationalError(2006, "MySQL server has gone away")).kind is Kind.CONNECTION_LOST
    assert classify(TimeoutError()).kind is Kind.TIMEOUT
    assert classify(OperationalError(1146, "Table 'x' doesn't exist")).kind is Kind.OTHER
