"""The Gemini provider through the real google-genai SDK against the fake Gemini API (tests/support)."""

import io

import pytest
from PIL import Image

from pixyproxy.adapters.providers import gemini
from pixyproxy.adapters.providers.base import fails_over
from pixyproxy.domain.errors import (
    ContentPolicyViolation,
    GeneratorError,
    GeneratorRateLimited,
    InvalidImageRequest,
)
from pixyproxy.domain.models import EditRequest, GenerationRequest, SourceImage
from tests.support.fake_gemini import KEY, FakeGemini


@pytest.fixture(scope="module")
def fake():
    with FakeGemini() as server:
        yield server


@pytest.fixture
async def generator(fake):
    fake.reset()
    adapter = gemini.GeminiImageGenerator(
        model="gemini-3-pro-image", api_key=KEY, base_url=fake.base_url, timeout_seconds=10
    )
    yield adapter
    await adapter.close()


async def test_a_size_becomes_its_aspect_ratio_and_tier_and_the_answer_is_read(generator, fake):
    made = await generator.generate(GenerationRequest(prompt="a lighthouse", size="2752x1536"))
    [call] = fake.requests
    assert call.headers["x-goog-api-key"] == KEY and call.model == "gemini-3-pro-image"
    assert call.body["generationConfig"]["imageConfig"] == {"aspectRatio": "16:9", "imageSize": "2K"}
    assert call.body["generationConfig"]["responseModalities"] == ["TEXT", "IMAGE"]
    with Image.open(io.BytesIO(made.data)) as image:
        assert image.size == (2752, 1536)
    assert made.revised_prompt == "Here is a lighthouse, drawn."
    assert made.usage == {
        "input_tokens": 2,
        "input_tokens_details": {"text_tokens": 2, "image_tokens": 0},
        "output_tokens": 1302,
        "output_tokens_details": {"text_tokens": 12, "image_tokens": 1290},
        "total_tokens": 1304,
    }


@pytest.mark.parametrize(
    ("prompt", "reason"), [("forbidden", "IMAGE_SAFETY"), ("prohibited", "IMAGE_PROHIBITED_CONTENT")]
)
async def test_a_safety_finish_is_a_content_policy_refusal_never_an_empty_image(generator, prompt, reason):
    with pytest.raises(ContentPolicyViolation, match=reason) as refused:
        await generator.generate(GenerationRequest(prompt=prompt))
    assert not fails_over(refused.value)


@pytest.mark.parametrize(
    ("kind", "error"), [("server_error", GeneratorError), ("rate_limit", GeneratorRateLimited)]
)
async def test_a_5xx_or_429_fails_over(generator, fake, kind, error):
    fake.fail_next(kind)
    with pytest.raises(error) as failed:
        await generator.generate(GenerationRequest(prompt="x"))
    assert fails_over(failed.value) and len(fake.requests) == 1  # the SDK's own retries are off


async def test_a_wrong_key_is_our_configuration_and_named_without_the_key(fake):
    adapter = gemini.GeminiImageGenerator(
        model="gemini-3-pro-image", api_key="wrong-key-123456", base_url=fake.base_url, timeout_seconds=10
    )
    try:
        with pytest.raises(GeneratorError, match="refused our key") as refused:
            await adapter.generate(GenerationRequest(prompt="x"))
        assert "wrong-key" not in refused.value.message and not fails_over(refused.value)
    finally:
        await adapter.close()


async def test_an_edit_sends_the_images_as_inline_parts(generator, fake):
    out = io.BytesIO()
    Image.new("RGB", (64, 64), "red").save(out, format="PNG")
    source = SourceImage(out.getvalue(), "image/png", "a.png", 64, 64)
    made = await generator.edit(EditRequest(prompt="make it blue"), [source, source])
    parts = fake.requests[0].body["contents"][0]["parts"]
    assert parts[0] == {"text": "make it blue"}
    assert [p["inlineData"]["mime_type"] for p in parts[1:]] == ["image/png", "image/png"]
    assert made.usage["input_tokens_details"]["image_tokens"] == 516
    with pytest.raises(InvalidImageRequest, match="mask"):
        await generator.edit(EditRequest(prompt="x"), [source], source)


def test_a_size_gemini_does_not_draw_names_the_nearest_and_other_options_are_refused_by_name():
    caps = gemini.capabilities("gemini-3-pro-image")
    with pytest.raises(InvalidImageRequest, match=r"the nearest is 1376x768 \(16:9 1K\)"):
        caps.check(GenerationRequest(prompt="x", size="1600x900"), "nano-banana")
    with pytest.raises(InvalidImageRequest, match="quality: model 'nano-banana' does not take quality"):
        caps.check(GenerationRequest(prompt="x", quality="high"), "nano-banana")
    caps.check(GenerationRequest(prompt="x", size="1024x1024", output_format="webp"), "nano-banana")


async def test_readiness_asks_for_the_model_and_names_a_wrong_key_or_model_without_the_key(generator, fake):
    await generator.ping()
    [call] = fake.requests
    assert call.model == "gemini-3-pro-image" and call.body is None  # models.get, not a generation
    wrong = gemini.GeminiImageGenerator(
        model="gemini-3-pro-image", api_key="wrong-key-123456", base_url=fake.base_url, timeout_seconds=10
    )
    gone = gemini.GeminiImageGenerator(
        model="imagen-4.0-generate", api_key=KEY, base_url=fake.base_url, timeout_seconds=10
    )
    try:
        with pytest.raises(GeneratorError, match="refused our key") as refused:
            await wrong.ping()
        assert "wrong-key" not in refused.value.message
        with pytest.raises(GeneratorError, match=r"has no model 'imagen-4\.0-generate'"):
            await gone.ping()
    finally:
        await wrong.close()
        await gone.close()


def test_a_negative_prompt_is_refused_by_name():
    with pytest.raises(InvalidImageRequest, match="negative_prompt: model 'nano-banana' does not take"):
        gemini.capabilities("gemini-3-pro-image").check(
            GenerationRequest(prompt="x", negative_prompt="fog"), "nano-banana"
        )
