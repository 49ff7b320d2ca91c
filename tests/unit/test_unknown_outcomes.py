"""A write whose outcome cannot be known (the database stopped answering after the COMMIT was sent) is
never guessed: the store step reads the row back by its guid once the database answers, and the client's
answer, and whether the bytes stay, follow what is true."""

import pytest

from pixyproxy.domain.errors import MetadataOutcomeUnknown, MetadataUnavailable
from pixyproxy.domain.models import Caller
from tests.support.fakes import InMemoryBlobStore, InMemoryImageRepository, ScriptedGenerator
from tests.support.use_cases import build_use_cases

LOST = "the connection was lost after the COMMIT was sent"


class LostAnswers(InMemoryImageRepository):
    """Raises MetadataOutcomeUnknown from the next add() or delete(), after doing it (`committed`) or
    not; then fails `silent_reads` reads before answering again."""

    def __init__(self) -> None:
        super().__init__()
        self.lose: str | None = None  # "add" or "delete"
        self.committed = True
        self.silent_reads = 0

    async def add(self, detail, idempotency_key=None, request_hash=None) -> None:
        if self.lose != "add":
            return await super().add(detail, idempotency_key, request_hash)
        self.lose = None
        if self.committed:
            await super().add(detail, idempotency_key, request_hash)
        raise MetadataOutcomeUnknown(LOST)

    async def delete(self, guid) -> bool:
        if self.lose != "delete":
            return await super().delete(guid)
        self.lose = None
        if self.committed:
            await super().delete(guid)
        raise MetadataOutcomeUnknown(LOST)

    async def get(self, guid, owner=None):
        if self.silent_reads:
            self.silent_reads -= 1
            raise MetadataUnavailable("still not answering")
        return await super().get(guid, owner)


@pytest.fixture
def repository() -> LostAnswers:
    return LostAnswers()


@pytest.fixture
def cases(repository):
    return build_use_cases(ScriptedGenerator(), repository, InMemoryBlobStore())


async def test_a_row_committed_before_the_answer_was_lost_is_kept_and_answered(cases, repository):
    repository.lose, repository.silent_reads = "add", 1  # and the first look-up finds it still down
    detail = await cases.generate({"prompt": "a fox"})
    assert await cases.read(detail.guid) == detail
    assert detail.filename in cases.blobs.blobs  # its bytes stayed
    assert await cases.content.read(detail) == cases.blobs.blobs[detail.filename][0]


async def test_a_row_never_committed_is_an_error_and_its_bytes_are_removed(cases, repository):
    repository.lose, repository.committed = "add", False
    with pytest.raises(MetadataUnavailable):
        await cases.generate({"prompt": "a fox"})
    assert repository.rows == [] and cases.blobs.blobs == {}


async def test_while_the_database_never_answers_the_bytes_stay_for_gc_to_decide(cases, repository):
    repository.lose, repository.committed, repository.silent_reads = "add", False, 99
    with pytest.raises(MetadataOutcomeUnknown):
        await cases.generate({"prompt": "a fox"})
    assert len(cases.blobs.blobs) == 1  # not removed under a row that may exist


async def test_a_keyed_image_committed_before_the_answer_was_lost_replays(cases, repository):
    """A job's images, and any request with an Idempotency-Key, take the same path."""
    repository.lose = "add"
    first = await cases.generate({"prompt": "a fox"}, Caller("ann"), "k")
    assert await cases.generate({"prompt": "a fox"}, Caller("ann"), "k") == first
    assert len(repository.rows) == 1 and len(cases.blobs.blobs) == 1


async def test_a_delete_committed_before_the_answer_was_lost_finishes(cases, repository):
    detail = await cases.generate({"prompt": "a fox"})
    repository.lose = "delete"
    await cases.delete(detail.guid)
    assert repository.rows == [] and cases.blobs.blobs == {}


async def test_a_delete_never_committed_is_an_error_and_keeps_the_image(cases, repository):
    detail = await cases.generate({"prompt": "a fox"})
    repository.lose, repository.committed = "delete", False
    with pytest.raises(MetadataUnavailable):
        await cases.delete(detail.guid)
    assert await cases.read(detail.guid) == detail and detail.filename in cases.blobs.blobs
