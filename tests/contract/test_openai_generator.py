"""The OpenAI adapter with the real SDK against the fake OpenAI server (tests/support/fake_openai.py).

The shared ImageGenerator contract runs it too (GENERATOR_ADAPTERS); these are the OpenAI specifics:
what goes over the wire per model, what comes back, how each failure maps, and which ones are retried.
"""

import asyncio
import io
import logging
import socket
import threading
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from PIL import Image

from pixyproxy.adapters.openai_generator import OpenAIImageGenerator, retry_after_seconds
from pixyproxy.domain.errors import (
    ContentPolicyViolation,
    GeneratorError,
    GeneratorRateLimited,
    GeneratorTimeout,
    InvalidImageRequest,
)
from pixyproxy.domain.models import GenerationRequest
from tests.e2e.server import free_port

KEY = "sk-test-not-a-real-key-0000"  # what the fake_openai fixture puts in OPENAI_API_KEY


@pytest.fixture
async def make(fake_openai):
    """Build adapters against the fake (key and base URL from the environment); closes them all."""
    made = []

    def build(**options) -> OpenAIImageGenerator:
        options.setdefault("timeout_seconds", 5)
        options.setdefault("connect_timeout_seconds", 2)
        options.setdefault("max_retries", 1)
        options.setdefault("max_retry_wait", 0.5)
        generator = OpenAIImageGenerator(**options)
        made.append(generator)
        return generator

    yield build
    for generator in made:
        await generator.close()


def dimensions(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as image:
        return image.size


# -- what is sent and what is kept --------------------------------------------------------------


async def test_gpt_image_sends_no_response_format_and_keeps_usage(make, fake_openai):
    generator = make(model="gpt-image-1")
    result = await generator.generate(GenerationRequest(prompt="a red bicycle", size="1536x1024"))
    sent = fake_openai.generations[-1]
    assert sent.body == {"prompt": "a red bicycle", "model": "gpt-image-1", "size": "1536x1024"}
    assert sent.headers["authorization"] == f"Bearer {KEY}"  # OPENAI_API_KEY, read by the SDK
    assert dimensions(result.data) == (1536, 1024)
    assert result.model == "gpt-image-1" and result.size == "1536x1024" and result.quality == "medium"
    assert result.usage["total_tokens"] == result.usage["input_tokens"] + 1056
    assert result.revised_prompt is None


async def test_a_real_sized_answer_is_read_whole(make, fake_openai):
    fake_openai.noise = True  # random pixels: a ~3 MB PNG, ~4 MB of JSON, decoded off the event loop
    result = await make().generate(GenerationRequest(prompt="noise", size="1024x1024"))
    assert len(result.data) > 3_000_000 and dimensions(result.data) == (1024, 1024)


async def test_dall_e_3_url_answer_is_downloaded_at_once_without_the_key(make, fake_openai):
    generator = make(model="dall-e-3", response_format="url", quality="hd")
    result = await generator.generate(GenerationRequest(prompt="a lighthouse"))
    assert fake_openai.generations[-1].body == {
        "prompt": "a lighthouse",
        "model": "dall-e-3",
        "quality": "hd",
        "response_format": "url",
    }
    [download] = fake_openai.downloads
    assert "authorization" not in download.headers  # the key never goes to the image host
    assert dimensions(result.data) == (1024, 1024)
    assert result.revised_prompt == "A detailed rendering of: a lighthouse"
    assert result.quality == "hd" and result.usage is None


async def test_dall_e_asks_for_base64_by_default(make, fake_openai):
    generator = make(model="dall-e-2")
    result = await generator.generate(GenerationRequest(prompt="a fox", size="256x256"))
    assert fake_openai.generations[-1].body["response_format"] == "b64_json"
    assert fake_openai.downloads == []
    assert dimensions(result.data) == (256, 256) and result.revised_prompt is None


async def test_configured_defaults_are_sent_and_a_request_overrides_them(make, fake_openai):
    generator = make(model="gpt-image-1", size="1024x1536", quality="low")
    await generator.generate(GenerationRequest(prompt="one"))
    await generator.generate(GenerationRequest(prompt="two", size="1024x1024", quality="high"))
    first, second = (r.body for r in fake_openai.generations)
    assert (first["size"], first["quality"]) == ("1024x1536", "low")
    assert (second["size"], second["quality"]) == ("1024x1024", "high")


async def test_a_request_may_pick_another_model_of_the_configured_family(make, fake_openai):
    generator = make(model="gpt-image-1")
    result = await generator.generate(GenerationRequest(prompt="x", model="gpt-image-1-mini"))
    assert fake_openai.generations[-1].body["model"] == "gpt-image-1-mini"
    assert result.model == "gpt-image-1-mini"


async def test_generations_wait_concurrently_on_one_client(make, fake_openai):

    fake_openai.barrier = 20  # the fake holds every request until all 20 are in flight at once
    generator = make()
    results = await asyncio.gather(
        *(generator.generate(GenerationRequest(prompt=f"p{i}")) for i in range(20))
    )
    assert len(results) == 20 and fake_openai.peak_in_flight == 20


# -- validation per model family ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("configured", "request_fields"),
    [
        ("gpt-image-1", {"size": "1536x1024", "quality": "high"}),
        ("gpt-image-1", {"size": "auto", "quality": "auto"}),
        ("gpt-image-1", {"model": "chatgpt-image-latest"}),
        ("gpt-image-2", {"size": "1536x864"}),
        ("gpt-image-2.5-flare", {"quality": "xhigh", "size": "3840x2160"}),
        ("dall-e-3", {"size": "1792x1024", "quality": "hd"}),
        ("dall-e-3", {"model": "dall-e-2", "size": "512x512", "quality": "standard"}),
        ("dall-e-2", {"size": "256x256"}),
        ("stablediffusion", {"size": "768x512", "quality": "whatever"}),  # an unknown compatible server
    ],
)
async def test_validate_accepts(make, configured, request_fields):
    make(model=configured).validate(GenerationRequest(prompt="x", **request_fields))


@pytest.mark.parametrize(
    ("configured", "request_fields", "field"),
    [
        ("gpt-image-1", {"size": "1792x1024"}, "size"),  # a DALL·E size
        ("gpt-image-1", {"size": "1536x864"}, "size"),  # free sizes are for gpt-image-2
        ("gpt-image-1", {"quality": "hd"}, "quality"),
        ("gpt-image-1", {"quality": "xhigh"}, "quality"),
        ("gpt-image-1", {"model": "dall-e-3"}, "model"),  # another family than the configured one
        ("gpt-image-2", {"size": "1000x1000"}, "size"),  # not multiples of 16
        ("gpt-image-2", {"size": "4096x1024"}, "size"),  # wider than 3:1
        ("gpt-image-2", {"size": "4096x4096"}, "size"),  # over 3840x2160
        ("dall-e-3", {"size": "256x256"}, "size"),
        ("dall-e-3", {"quality": "medium"}, "quality"),
        ("dall-e-2", {"quality": "hd"}, "quality"),
        ("stablediffusion", {"model": "gpt-image-1"}, "model"),
        ("stablediffusion", {"size": "16x16"}, "size"),
    ],
)
async def test_validate_refuses(make, fake_openai, configured, request_fields, field):
    generator = make(model=configured)
    request = GenerationRequest(prompt="x", **request_fields)
    with pytest.raises(InvalidImageRequest, match=f"^{field}:"):
        generator.validate(request)
    with pytest.raises(InvalidImageRequest):
        await generator.generate(request)
    assert fake_openai.generations == []  # refused before any call: nothing billed


def test_a_configured_default_the_model_cannot_take_fails_at_start(fake_openai):
    with pytest.raises(ValueError, match="size"):
        OpenAIImageGenerator(model="dall-e-3", size="1536x1024")


def test_a_missing_api_key_fails_at_start(fake_openai, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY")
    with pytest.raises(ValueError, match="OPENAI_API_KEY"):
        OpenAIImageGenerator()


# -- failures: mapping and retries ------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "times", "error", "calls"),
    [
        ("server_error", 2, GeneratorError, 2),  # retried once (max_retries=1), then given up
        ("bad_gateway", 2, GeneratorError, 2),
        ("gateway_timeout", 1, GeneratorError, 1),  # never retried: the provider may still be billing
        ("quota", 1, GeneratorError, 1),  # retrying cannot help
        ("content_policy", 1, ContentPolicyViolation, 1),
        ("moderation_blocked", 1, ContentPolicyViolation, 1),
        ("bad_size", 1, InvalidImageRequest, 1),
        ("empty", 1, GeneratorError, 1),
        ("garbage", 1, GeneratorError, 1),
        ("bad_base64", 1, GeneratorError, 1),
        ("url_404", 1, GeneratorError, 1),
    ],
)
async def test_failure_maps_and_retries_only_where_nothing_was_billed(
    make, fake_openai, kind, times, error, calls
):
    generator = make(model="dall-e-2" if kind == "url_404" else "gpt-image-1")
    fake_openai.fail_next(kind, times=times)
    with pytest.raises(error) as raised:
        await generator.generate(GenerationRequest(prompt="x"))
    assert len(fake_openai.generations) == calls
    assert type(raised.value) is error  # not a subclass standing in for it
    if error is ContentPolicyViolation:
        assert raised.value.code == "content_policy_violation"


async def test_a_5xx_then_success_is_one_image_after_one_retry(make, fake_openai):
    fake_openai.fail_next("server_error")
    result = await make().generate(GenerationRequest(prompt="x"))
    assert result.data and len(fake_openai.generations) == 2


async def test_a_short_rate_limit_is_waited_out_once(make, fake_openai):
    fake_openai.fail_next("rate_limit", retry_after=0.05)
    result = await make().generate(GenerationRequest(prompt="x"))
    assert result.data and len(fake_openai.generations) == 2


async def test_a_rate_limit_that_persists_carries_retry_after(make, fake_openai):
    fake_openai.fail_next("rate_limit", times=2, retry_after=0.05)
    with pytest.raises(GeneratorRateLimited) as raised:
        await make().generate(GenerationRequest(prompt="x"))
    assert raised.value.retry_after == pytest.approx(0.05) and len(fake_openai.generations) == 2


async def test_a_long_rate_limit_is_not_waited_out(make, fake_openai):
    fake_openai.fail_next("rate_limit", retry_after=30)
    with pytest.raises(GeneratorRateLimited) as raised:
        await make(max_retries=3).generate(GenerationRequest(prompt="x"))
    assert raised.value.retry_after == 30 and len(fake_openai.generations) == 1


async def test_retries_are_bounded_by_max_retries(make, fake_openai):
    fake_openai.fail_next("server_error", times=5)
    with pytest.raises(GeneratorError):
        await make(max_retries=2).generate(GenerationRequest(prompt="x"))
    assert len(fake_openai.generations) == 3


async def test_a_provider_that_does_not_answer_in_time_is_a_timeout_and_never_retried(make, fake_openai):
    fake_openai.fail_next("hang", times=3, seconds=5)
    with pytest.raises(GeneratorTimeout):
        await make(timeout_seconds=0.3, max_retries=2).generate(GenerationRequest(prompt="x"))
    assert len(fake_openai.generations) == 1  # it may have generated, and billed, after we gave up


async def test_a_bad_key_is_an_error_that_never_repeats_the_key(make, fake_openai, caplog):
    fake_openai.fail_next("unauthorized")  # the fake quotes the whole key back, worse than OpenAI
    caplog.set_level(logging.DEBUG)
    with pytest.raises(GeneratorError) as raised:
        await make().generate(GenerationRequest(prompt="x"))
    assert type(raised.value) is GeneratorError and len(fake_openai.generations) == 1
    for text in (raised.value.message, str(raised.value), caplog.text):
        assert KEY not in text and KEY[-8:] not in text


async def test_a_download_larger_than_the_cap_is_refused(make, fake_openai):
    fake_openai.fail_next("huge_url", bytes=200_000)
    with pytest.raises(GeneratorError, match="larger"):
        await make(model="dall-e-3", response_format="url", max_download_bytes=100_000).generate(
            GenerationRequest(prompt="x")
        )


class OneShotServer:
    """Accepts connections, reads the request, and closes without answering; counts connections."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.connections = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}/v1"

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            with conn:
                conn.recv(65536)

    def close(self) -> None:
        self.sock.close()


async def test_a_connection_dropped_after_the_request_went_out_is_not_retried(make, fake_openai):
    server = OneShotServer()
    try:
        with pytest.raises(GeneratorError) as raised:
            await make(base_url=server.base_url, max_retries=2).generate(GenerationRequest(prompt="x"))
    finally:
        server.close()
    assert type(raised.value) is GeneratorError and server.connections == 1


async def test_a_connection_never_made_is_retried_then_reported(make, fake_openai, caplog):
    closed_port = free_port()  # nothing listens on it
    caplog.set_level(logging.WARNING)
    with pytest.raises(GeneratorError) as raised:
        await make(base_url=f"http://127.0.0.1:{closed_port}/v1", max_retries=1).generate(
            GenerationRequest(prompt="x")
        )
    assert type(raised.value) is GeneratorError  # unreachable, not a timeout
    assert "retry 1 of 1" in caplog.text


def test_retry_after_reads_seconds_milliseconds_and_dates():
    assert retry_after_seconds({"retry-after": "7"}) == 7
    assert retry_after_seconds({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=120), usegmt=True)
    assert 100 < retry_after_seconds({"retry-after": when}) <= 120
    assert retry_after_seconds({"retry-after": "soon"}) is None
    assert retry_after_seconds({}) is None
