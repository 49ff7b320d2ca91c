"""AUTOMATIC1111's progress while a call is in flight: read from /sdapi/v1/progress (with Basic auth,
skipping the current image) and told to whoever listens, between 0 and 1; the reader stops with the call,
whether it succeeds, fails or is cancelled."""

import asyncio

import pytest

from pixyproxy.adapters.providers import a1111
from pixyproxy.domain.errors import GeneratorError
from pixyproxy.domain.models import GenerationRequest
from pixyproxy.domain.progress import reporting_to
from tests.support.fake_a1111 import FakeA1111

AUTH = "forge:s3cret"
STEPS = 4


@pytest.fixture(scope="module")
def fake():
    with FakeA1111(auth=AUTH, steps=STEPS) as server:
        yield server


@pytest.fixture(autouse=True)
def _fresh(fake):
    fake.reset()


def generator(fake, auth: str = AUTH) -> a1111.A1111ImageGenerator:
    user, _, password = auth.partition(":")
    import aiohttp

    return a1111.A1111ImageGenerator(
        checkpoint=None,
        base_url=fake.base_url,
        auth=aiohttp.encode_basic_auth(user, password),
        timeout_seconds=30,
        progress_seconds=0.01,
    )


def watchers() -> list[asyncio.Task]:
    return [t for t in asyncio.all_tasks() if "_watch_progress" in repr(t.get_coro())]


async def test_each_sampling_step_is_told_between_zero_and_one_and_the_reader_stops(fake):
    heard: list[float] = []
    gen = generator(fake)
    try:
        with reporting_to(heard.append):
            await gen.generate(GenerationRequest(prompt="a barn"))
        reads = len(fake.progress_reads)
        await asyncio.sleep(0.05)  # several reader periods: none may come after the call
    finally:
        await gen.close()
    # The last step's reading races the image's answer (the reader is stopped once the image is in):
    # it may be lost, never reordered.
    assert heard in ([0.25, 0.5], [0.25, 0.5, 0.75])
    assert len(fake.progress_reads) == reads and not watchers()
    assert all(read["current_image"] is None for read in fake.progress_reads)  # skip_current_image


async def test_the_reader_stops_when_the_call_fails_or_is_cancelled(fake):
    gen = generator(fake)
    try:
        fake.fail_next()
        with pytest.raises(GeneratorError):
            await gen.generate(GenerationRequest(prompt="a barn"))
        assert not watchers()
        fake.step_timeout = 30
        call = asyncio.create_task(gen.generate(GenerationRequest(prompt="a barn")))
        while len(fake.progress_reads) < 2:
            await asyncio.sleep(0.01)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        assert not watchers()
    finally:
        fake.step_timeout = 10.0
        await gen.close()


async def test_progress_reads_want_the_credentials_too(fake):
    heard: list[float] = []
    gen = generator(fake, auth="forge:wrong")
    try:
        with reporting_to(heard.append), pytest.raises(GeneratorError, match="auth_env"):
            await gen.generate(GenerationRequest(prompt="a barn"))
    finally:
        await gen.close()
    assert heard == [] and not watchers()


@pytest.mark.parametrize(
    ("answer", "told"),
    [
        ({"progress": 0.4, "state": {}}, [0.4]),
        ({"progress": 0.0, "state": {"sampling_step": 0, "sampling_steps": 0}}, []),  # idle
        ({"progress": 1.0, "state": {}}, []),
        ({"progress": None, "state": {"sampling_step": 3, "sampling_steps": 12}}, [0.25]),
        ({"progress": "half", "state": "busy"}, []),
        ({"progress": float("nan")}, []),
    ],
)
def test_what_a_progress_answer_tells(answer, told):
    heard: list[float] = []
    with reporting_to(heard.append):
        a1111._report(answer)
    assert heard == told
