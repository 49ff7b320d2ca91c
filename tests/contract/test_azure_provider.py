"""The Azure provider through the openai SDK's AsyncAzureOpenAI against the fake Azure resource."""

import io

import pytest
from PIL import Image

from pixyproxy.adapters.providers import azure
from pixyproxy.adapters.providers.base import ProviderContext, fails_over
from pixyproxy.domain.catalogue import ModelEntry
from pixyproxy.domain.errors import ContentPolicyViolation, GeneratorError, GeneratorRateLimited
from pixyproxy.domain.models import GenerationRequest
from tests.support.fake_azure import KEY, FakeAzure


@pytest.fixture(scope="module")
def fake():
    with FakeAzure() as server:
        yield server


def entry(fake, **fields) -> ModelEntry:
    return ModelEntry(
        name="azure-image",
        provider="azure",
        model="my-gpt-image",
        base_url=fake.base_url,
        api_version="2025-04-01-preview",
        api_key_env="FAKE_AZURE_KEY",
        **fields,
    )


def context(key: str | None = KEY) -> ProviderContext:
    return ProviderContext(
        timeout_seconds=10, environment=lambda name: key if name == "FAKE_AZURE_KEY" else None
    )


@pytest.fixture
async def generator(fake):
    fake.reset()
    adapter = azure.build(entry(fake), context(), alternatives=True)
    yield adapter
    await adapter.close()


async def test_the_deployment_path_api_version_and_api_key_header(generator, fake):
    made = await generator.generate(GenerationRequest(prompt="a kite", size="1536x1024", quality="high"))
    [call] = fake.requests
    assert call.path == "/openai/deployments/my-gpt-image/images/generations"
    assert call.query == {"api-version": "2025-04-01-preview"}
    assert call.headers["api-key"] == KEY and "authorization" not in call.headers
    assert call.body["size"] == "1536x1024" and call.body["quality"] == "high"
    with Image.open(io.BytesIO(made.data)) as image:
        assert image.size == (1536, 1024)
    assert made.usage["output_tokens"] == 1056


async def test_a_content_filter_refusal_names_its_categories_and_never_fails_over(generator):
    with pytest.raises(
        ContentPolicyViolation, match=r"content filter refused the prompt: violence \(medium\)"
    ) as refused:
        await generator.generate(GenerationRequest(prompt="something filtered"))
    assert refused.value.details["categories"] == ["violence (medium)"] and not fails_over(refused.value)


@pytest.mark.parametrize(
    ("kind", "error"), [("server_error", GeneratorError), ("rate_limit", GeneratorRateLimited)]
)
async def test_a_5xx_or_429_fails_over_at_once(generator, fake, kind, error):
    fake.fail_next(kind)
    with pytest.raises(error) as failed:
        await generator.generate(GenerationRequest(prompt="x"))
    assert fails_over(failed.value) and len(fake.requests) == 1  # no retry where routing has elsewhere to go


async def test_a_wrong_key_and_an_unknown_deployment_are_our_configuration(fake):
    fake.reset()
    wrong = azure.build(entry(fake), context("wrong-key-000000"), alternatives=True)
    missing = azure.build(
        entry(fake, deployment="x").model_copy(update={"model": "nope"}), context(), alternatives=True
    )
    try:
        with pytest.raises(GeneratorError, match="refused our credentials") as refused:
            await wrong.generate(GenerationRequest(prompt="x"))
        assert "wrong-key" not in refused.value.message
        with pytest.raises(GeneratorError, match="404") as not_found:
            await missing.generate(GenerationRequest(prompt="x"))
        assert not fails_over(not_found.value)
    finally:
        await wrong.close()
        await missing.close()


def test_a_missing_key_variable_is_named_never_printed(fake):
    with pytest.raises(ValueError, match="set FAKE_AZURE_KEY"):
        azure.build(entry(fake), context(None), alternatives=False)


def test_what_it_takes_is_its_base_models(fake):
    caps = azure.entry_capabilities(entry(fake, base_model="gpt-image-2"))
    assert "complexity" not in caps.options and not caps.open
    assert azure.entry_capabilities(entry(fake)).open  # a deployment name alone says nothing of its model


async def test_readiness_lists_the_resources_models_and_names_a_wrong_key_without_it(generator, fake):
    await generator.ping()
    [call] = fake.requests
    assert call.path == "/openai/models" and call.query == {"api-version": "2025-04-01-preview"}
    assert call.headers["api-key"] == KEY
    wrong = azure.build(entry(fake), context("wrong-key-000000"), alternatives=True)
    old = azure.build(
        entry(fake).model_copy(update={"api_version": "2023-01-01"}), context(), alternatives=True
    )
    try:
        with pytest.raises(GeneratorError, match="refused our key") as refused:
            await wrong.ping()
        assert "wrong-key" not in refused.value.message
        with pytest.raises(GeneratorError, match="base_url and api_version"):
            await old.ping()
    finally:
        await wrong.close()
        await old.close()


def test_a_negative_prompt_is_refused_by_name(fake):
    from pixyproxy.domain.errors import InvalidImageRequest

    caps = azure.entry_capabilities(entry(fake, base_model="gpt-image-2"))
    with pytest.raises(InvalidImageRequest, match="negative_prompt: model 'azure-image' does not take"):
        caps.check(GenerationRequest(prompt="x", negative_prompt="fog"), "azure-image")
