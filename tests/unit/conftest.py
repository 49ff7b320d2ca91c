import pytest

from pixyproxy.domain.service import ImageService
from tests.support.fakes import InMemoryBlobStore, InMemoryImageRepository, ScriptedGenerator


@pytest.fixture
def generator():
    return ScriptedGenerator()


@pytest.fixture
def repository():
    return InMemoryImageRepository()


@pytest.fixture
def blobs():
    return InMemoryBlobStore()


@pytest.fixture
def service(generator, repository, blobs):
    return ImageService(generator, repository, blobs, max_prompt_length=100)
