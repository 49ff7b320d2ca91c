import pytest

from tests.support.fakes import InMemoryBlobStore, InMemoryImageRepository, ScriptedGenerator
from tests.support.use_cases import build_use_cases


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
def cases(generator, repository, blobs):
    return build_use_cases(generator, repository, blobs, max_prompt_length=100)
