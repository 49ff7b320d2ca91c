"""The OpenAI adapter with the real SDK against the fake OpenAI server (tests/support/fake_openai.py).

The shared ImageGenerator contract runs it too (GENERATOR_ADAPTERS); these are the OpenAI specifics:
what goes over the wire (every option, edits as multipart, streamed partial images), what comes back,
how each failure maps, which ones are retried, and the start-up check of the models the server offers.
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
from pydantic import ValidationError

from pixyproxy.adapters.openai import OpenAIImageGenerator
from pixyproxy.adapters.openai.failures import retry_after_seconds
from pixyproxy.domain.errors import (
    ContentPolicyViolation,
    GeneratorError,
    GeneratorModelUnavailable,
    GeneratorRateLimited,
    GeneratorTimeout,
    InvalidImageRequest,
)
from pixyproxy.domain.models import EditRequest, GenerationRequest, PartialImage, SourceImage
from tests.e2e.server import free_port
from tests.support.fake_openai import COMPATIBLE_MODEL, DEFAULT_MODEL

KEY = "sk-test-not-a-real-key-0000"  # what the fake_openai fixture puts in OPENAI_API_KEY
TIMEOUTS = {"timeout_seconds": 5, "connect_timeout_seconds": 2, "max_retries": 1}


@pytest.fixture
async def make(fake_openai):
    """Build adapters against the fake (key and base URL from the environment); closes them all."""
    made = []

    def build(**options) -> OpenAIImageGenerator:
        options.setdefault("model", DEFAULT_MODEL)
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


async def test_the_default_model_gets_the_prompt_and_no_response_format_and_usage_is_kept(make, fake_openai):
    result = await make().generate(GenerationRequest(prompt="a red bicycle", size="1536x1024"))
    sent = fake_openai.generations[-1]
    assert sent.body == {"prompt": "a red bicycle", "model": DEFAULT_MODEL, "size": "1536x1024"}
    assert sent.headers["authorization"] == f"Bearer {KEY}"  # OPENAI_API_KEY, read by the SDK
    assert dimensions(result.data) == (1536, 1024)
    assert result.model == DEFAULT_MODEL and result.size == "1536x1024" and result.quality == "medium"
    assert result.usage == {  # exactly as the provider reported it, details included
        "input_tokens": 3,
        "input_tokens_details": {"image_tokens": 0, "text_tokens": 3},
        "output_tokens": 1056,
        "output_tokens_details": {"image_tokens": 1056, "text_tokens": 0},
        "total_tokens": 1059,
    }
    assert result.revised_prompt is None and result.output_format == "png"


@pytest.mark.parametrize(
    ("options", "pillow_format", "mode"),
    [
        ({"output_format": "webp", "output_compression": 40, "background": "transparent"}, "WEBP", "RGBA"),
        ({"output_format": "jpeg", "output_compression": 80, "background": "opaque"}, "JPEG", "RGB"),
        ({"output_format": "png", "background": "transparent", "moderation": "low"}, "PNG", "RGBA"),
        ({"quality": "xhigh", "size": "2048x1152", "moderation": "auto"}, "PNG", "RGB"),
    ],
)
async def test_every_option_is_sent_as_asked_and_the_answer_is_in_the_format_asked(
    make, fake_openai, options, pillow_format, mode
):
    result = await make().generate(
        GenerationRequest(prompt="a fox", **options), safety_identifier="pixyproxy-0123abcd"
    )
    sent = fake_openai.generations[-1].body
    assert sent == {
        "prompt": "a fox",
        "model": DEFAULT_MODEL,
        "safety_identifier": "pixyproxy-0123abcd",
        **options,
    }
    with Image.open(io.BytesIO(result.data)) as image:
        assert (image.format, image.mode) == (pillow_format, mode)
    assert result.output_format == options.get("output_format", "png")
    assert result.background == ("transparent" if options.get("background") == "transparent" else "opaque")


async def test_options_not_asked_for_are_not_sent(make, fake_openai):
    await make().generate(GenerationRequest(prompt="plain"))
    assert fake_openai.generations[-1].body == {"prompt": "plain", "model": DEFAULT_MODEL}


async def test_a_real_sized_answer_is_read_whole(make, fake_openai):
    fake_openai.noise = True  # random pixels: a ~3 MB PNG, ~4 MB of JSON
    result = await make().generate(GenerationRequest(prompt="noise", size="1024x1024"))
    assert len(result.data) > 3_000_000 and dimensions(result.data) == (1024, 1024)


async def test_a_compatible_servers_url_answer_is_downloaded_at_once_without_the_key(make, fake_openai):
    generator = make(model=COMPATIBLE_MODEL, response_format="url", quality="hd")
    result = await generator.generate(GenerationRequest(prompt="a lighthouse"))
    assert fake_openai.generations[-1].body == {
        "prompt": "a lighthouse",
        "model": COMPATIBLE_MODEL,
        "quality": "hd",
        "response_format": "url",
    }
    [download] = fake_openai.downloads
    assert "authorization" not in download.headers  # the key never goes to the image host
    assert dimensions(result.data) == (1024, 1024)
    assert result.revised_prompt == "A detailed rendering of: a lighthouse"
    assert result.quality == "hd" and result.usage is None


async def test_a_compatible_server_is_asked_for_base64_by_default(make, fake_openai):
    result = await make(model=COMPATIBLE_MODEL).generate(GenerationRequest(prompt="a fox", size="256x256"))
    assert fake_openai.generations[-1].body["response_format"] == "b64_json"
    assert fake_openai.downloads == [] and dimensions(result.data) == (256, 256)


async def test_configured_defaults_are_sent_and_a_request_overrides_them(make, fake_openai):
    generator = make(size="1024x1536", quality="low")
    await generator.generate(GenerationRequest(prompt="one"))
    await generator.generate(GenerationRequest(prompt="two", size="1024x1024", quality="high"))
    first, second = (r.body for r in fake_openai.generations)
    assert (first["size"], first["quality"]) == ("1024x1536", "low")
    assert (second["size"], second["quality"]) == ("1024x1024", "high")


async def test_a_request_may_name_any_model_the_server_has(make, fake_openai):
    result = await make().generate(GenerationRequest(prompt="x", model="gpt-image-2.5-flare"))
    assert fake_openai.generations[-1].body["model"] == "gpt-image-2.5-flare"
    assert result.model == "gpt-image-2.5-flare"


async def test_generations_wait_concurrently_on_one_client(make, fake_openai):
    fake_openai.barrier = 20  # the fake holds every request until all 20 are in flight at once
    generator = make()
    results = await asyncio.gather(
        *(generator.generate(GenerationRequest(prompt=f"p{i}")) for i in range(20))
    )
    assert len(results) == 20 and fake_openai.peak_in_flight == 20


# -- what the provider refuses: no capability table here, the provider's word maps to 422 -----------


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"size": "1000x1000"}, "size"),  # GPT image 2.x sides are multiples of 16
        ({"size": "4096x1024"}, "size"),  # wider than 3:1
        ({"quality": "hd"}, "quality"),  # a DALL·E quality
        ({"n": 11}, None),  # refused by our own shape check: nothing is sent
    ],
)
async def test_a_value_the_provider_refuses_is_a_422_naming_the_parameter(make, fake_openai, fields, param):
    if param is None:
        with pytest.raises(ValidationError):
            GenerationRequest(prompt="x", **fields)
        return
    with pytest.raises(InvalidImageRequest, match=f"^{param}: the image generator refused it: ") as raised:
        await make().generate(GenerationRequest(prompt="x", **fields))
    assert raised.value.details["param"] == param and raised.value.code == "invalid_request"
    assert len(fake_openai.generations) == 1  # refused, not retried


@pytest.mark.parametrize("model", ["gpt-image-1", "dall-e-3", "gpt-image-1.5", "no-such-model-xyz"])
async def test_a_model_the_client_named_that_the_server_lacks_is_the_requests_fault(make, fake_openai, model):
    with pytest.raises(InvalidImageRequest, match=r"^model: ") as raised:
        await make().generate(GenerationRequest(prompt="x", model=model))
    assert type(raised.value) is InvalidImageRequest and len(fake_openai.generations) == 1


async def test_a_configured_model_the_server_lacks_is_a_502_naming_the_setting(make, fake_openai):
    with pytest.raises(GeneratorModelUnavailable, match="PIXYPROXY_OPENAI_MODEL") as raised:
        await make(model="gpt-image-1").generate(GenerationRequest(prompt="x"))
    assert raised.value.code == "generator_model_unavailable" and len(fake_openai.generations) == 1


def test_a_configured_default_of_the_wrong_shape_fails_at_start(fake_openai):
    with pytest.raises(ValueError, match="PIXYPROXY_OPENAI_SIZE"):
        OpenAIImageGenerator(model=DEFAULT_MODEL, size="1536 by 1024", **TIMEOUTS)
    with pytest.raises(ValueError, match="PIXYPROXY_OPENAI_SIZE"):
        OpenAIImageGenerator(model=DEFAULT_MODEL, size="8192x8192", **TIMEOUTS)


def test_a_missing_api_key_fails_at_start(fake_openai, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY")
    with pytest.raises(ValueError, match="OPENAI_API_KEY"):
        OpenAIImageGenerator(model=DEFAULT_MODEL, **TIMEOUTS)


# -- edits -------------------------------------------------------------------------------------------


def source(width: int = 64, height: int = 48, fmt: str = "PNG", alpha: int = 255) -> SourceImage:
    out = io.BytesIO()
    Image.new("RGBA", (width, height), (200, 30, 30, alpha)).save(out, format=fmt)
    content_type = {"PNG": "image/png", "WEBP": "image/webp"}[fmt]
    return SourceImage(out.getvalue(), content_type, f"s.{fmt.lower()}", width, height)


async def test_an_edit_sends_the_images_and_mask_as_multipart(make, fake_openai):
    image, reference, mask = source(), source(fmt="WEBP"), source(alpha=0)
    result = await make().edit(
        EditRequest(prompt="make it blue", output_format="webp", background="opaque"),
        [image, reference],
        mask,
        safety_identifier="pixyproxy-0123abcd",
    )
    [sent] = fake_openai.edits
    assert sent.headers["content-type"].startswith("multipart/form-data")
    fields = {k: v for k, v in sent.body.items() if k not in ("image[]", "mask")}
    assert fields == {
        "prompt": "make it blue",
        "model": DEFAULT_MODEL,
        "output_format": "webp",
        "background": "opaque",
        "safety_identifier": "pixyproxy-0123abcd",
    }
    assert [(f["filename"], f["content_type"], f["data"]) for f in sent.body["image[]"]] == [
        ("s.png", "image/png", image.data),
        ("s.webp", "image/webp", reference.data),
    ]
    assert sent.body["mask"]["data"] == mask.data
    with Image.open(io.BytesIO(result.data)) as made:
        assert made.format == "WEBP" and made.size == (64, 48)
    assert result.usage["input_tokens_details"]["image_tokens"] > 0


async def test_an_edit_the_provider_refuses_maps_like_a_generation(make, fake_openai):
    with pytest.raises(InvalidImageRequest, match=r"^size: "):
        await make().edit(EditRequest(prompt="x", size="1000x1000"), [source()])
    fake_openai.fail_next("server_error")  # retried like a generation: no image was made
    assert (await make().edit(EditRequest(prompt="x"), [source()])).data
    assert len(fake_openai.edits) == 3


# -- streaming partial images ---------------------------------------------------------------------


@pytest.mark.parametrize("editing", [False, True])
async def test_partial_images_stream_to_the_callback_before_the_final_image(make, fake_openai, editing):
    seen: list[PartialImage] = []

    async def on_partial(partial: PartialImage) -> None:
        seen.append(partial)

    generator = make()
    request = EditRequest(prompt="stream", output_format="webp")
    if editing:
        result = await generator.edit(request, [source()], partial_images=2, on_partial=on_partial)
    else:
        result = await generator.generate(request, partial_images=2, on_partial=on_partial)
    sent = (fake_openai.edits if editing else fake_openai.generations)[-1].body
    assert str(sent["stream"]).lower() == "true" and int(sent["partial_images"]) == 2
    assert [p.index for p in seen] == [0, 1] and all(p.output_format == "webp" for p in seen)
    for partial in seen:
        with Image.open(io.BytesIO(partial.data)) as image:
            assert image.format == "WEBP"
    assert result.usage["total_tokens"] > 0 and result.output_format == "webp"


async def test_without_a_callback_nothing_is_streamed(make, fake_openai):
    await make().generate(GenerationRequest(prompt="x"), partial_images=2)
    assert "stream" not in fake_openai.generations[-1].body


# -- readiness: which models the server offers ------------------------------------------------------


async def test_a_configured_model_the_server_offers_is_ready(make, fake_openai, caplog):
    generator = make()
    await generator.init()
    await generator.ping()
    assert [r.path for r in fake_openai.requests] == ["/v1/models"]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


async def test_a_configured_model_the_server_does_not_offer_is_logged_and_not_ready(
    make, fake_openai, caplog
):
    caplog.set_level(logging.INFO)
    generator = make(model="gpt-image-1")
    await generator.init()
    [error] = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert "gpt-image-1" in error.getMessage() and "gpt-image-2.6-sunburst" in error.getMessage()
    assert "text-embedding" not in error.getMessage()  # only the image models are listed
    with pytest.raises(GeneratorModelUnavailable, match="model 'gpt-image-1' is not offered by the server"):
        await generator.ping()
    assert len([r for r in fake_openai.requests if r.path == "/v1/models"]) == 1  # asked once, at start


async def test_a_server_without_a_models_list_is_noted_once_and_ready(make, fake_openai, caplog):
    fake_openai.models_endpoint = False
    generator = make(model=COMPATIBLE_MODEL)
    await generator.init()
    await generator.ping()
    await generator.ping()
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "/v1/models" in warnings[0].getMessage()


async def test_a_server_that_cannot_be_asked_is_not_held_against_readiness(make, fake_openai):
    generator = make(base_url=f"http://127.0.0.1:{free_port()}/v1", max_retries=0)
    await generator.init()
    await generator.ping()  # an outage of the provider must not take every replica out of service


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
    generator = make(model=COMPATIBLE_MODEL if kind == "url_404" else DEFAULT_MODEL)
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
        await make(model=COMPATIBLE_MODEL, response_format="url", max_download_bytes=100_000).generate(
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
