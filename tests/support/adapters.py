"""One fixture per adapter of each port. The contract suites run every name listed in *_ADAPTERS.

Adding an adapter to a contract suite = a fixture here (or in a plugin module of tests/support listed in
tests/conftest.py) plus its name in the list below.
"""

import pytest

from pixyproxy.adapters.file_blob_store import FileBlobStore
from pixyproxy.adapters.offline_generator import OfflineImageGenerator
from tests.support.fakes import InMemoryBlobStore, InMemoryImageRepository
from tests.support.sql import make_repository, sqlite_url

REPOSITORY_ADAPTERS = ["memory_repository", "sqlite_repository", "mysql_repository"]
BLOB_STORE_ADAPTERS = ["memory_blob_store", "file_blob_store", "s3_blob_store"]
GENERATOR_ADAPTERS = ["offline_generator", "openai_generator"]  # openai: in tests/support/fake_openai.py


@pytest.fixture
async def memory_repository():
    yield InMemoryImageRepository()


@pytest.fixture
async def sqlite_repository(tmp_path):
    repository = make_repository(sqlite_url(tmp_path / "images.db"))
    await repository.init()
    yield repository
    await repository.close()


@pytest.fixture
async def memory_blob_store():
    yield InMemoryBlobStore()


@pytest.fixture
async def file_blob_store(tmp_path):
    store = FileBlobStore(tmp_path / "blobs")
    await store.init()
    yield store
    await store.close()


@pytest.fixture
async def offline_generator():
    generator = OfflineImageGenerator()
    yield generator
    await generator.close()


@pytest.fixture(params=REPOSITORY_ADAPTERS)
def repository(request):
    return request.getfixturevalue(request.param)


@pytest.fixture(params=BLOB_STORE_ADAPTERS)
def blob_store(request):
    return request.getfixturevalue(request.param)


@pytest.fixture(params=GENERATOR_ADAPTERS)
def generator(request):
    return request.getfixturevalue(request.param)
