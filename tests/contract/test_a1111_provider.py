"""The AUTOMATIC1111 / Forge provider against the fake web UI: txt2img, img2img edits, the checkpoint
set only when it differs, Basic auth from auth_env, info kept as the image's provider details."""

import io

import pytest
from PIL import Image

from pixyproxy.adapters.catalogue_file import CatalogueError, check_keys, read_catalogue_file
from pixyproxy.adapters.providers import a1111
from pixyproxy.adapters.providers.base import ProviderContext, fails_over
from pixyproxy.domain.catalogue import CatalogueFile, ModelEntry
from pixyproxy.domain.errors import GeneratorError, InvalidImageRequest
from pixyproxy.domain.models import EditRequest, GenerationRequest, SourceImage
from tests.support.fake_a1111 import FakeA1111

AUTH = "forge:s3cret"


@pytest.fixture(scope="module")
def fake():
    with FakeA1111(auth=AUTH) as server:
        yield server


@pytest.fixture(autouse=True)
def _fresh(fake):
    fake.reset()


def generator(fake, auth: str | None = AUTH, **fields) -> a1111.A1111ImageGenerator:
    fields = {"model": "sd_xl_base_1.0", "auth_env": "FORGE_AUTH", **fields}
    entry = ModelEntry(name="forge", provider="a1111", base_url=fake.base_url, **fields)
    context = ProviderContext(
        timeout_seconds=10, environment=lambda name: auth if name == "FORGE_AUTH" else None
    )
    return a1111.build(entry, context, alternatives=False)


async def test_txt2img_sets_the_checkpoint_once_and_keeps_seed_and_sampler(fake):
    gen = generator(fake)
    try:
        first = await gen.generate(GenerationRequest(prompt="a red barn", size="832x1216"))
        second = await gen.generate(GenerationRequest(prompt="a blue barn"))
    finally:
        await gen.close()
    assert Image.open(io.BytesIO(first.data)).size == (832, 1216) and first.size == "832x1216"
    assert fake.checkpoint_switches == 1  # the second call found it loaded already
    assert [c[1] for c in fake.calls] == ["options", "options", "txt2img", "options", "txt2img"]
    assert fake.calls[1][2] == {"sd_model_checkpoint": "sd_xl_base_1.0"}
    details = first.usage["provider_details"]
    assert details["sampler_name"] == "DPM++ 2M" and isinstance(details["seed"], int)
    assert details["sd_model_name"] == "sd_xl_base_1.0" and first.model == "sd_xl_base_1.0"
    assert (second.size, fake.calls[-1][2]["width"]) == ("1024x1024", 1024)


async def test_a_negative_prompt_is_sent_and_kept_with_the_details(fake):
    gen = generator(fake)
    try:
        image = await gen.generate(GenerationRequest(prompt="a barn", negative_prompt="people, text"))
        plain = await gen.generate(GenerationRequest(prompt="a barn"))
    finally:
        await gen.close()
    assert fake.calls[-3][2]["negative_prompt"] == "people, text"
    assert image.usage["provider_details"]["negative_prompt"] == "people, text"
    assert "negative_prompt" not in fake.calls[-1][2]
    assert "negative_prompt" not in plain.usage["provider_details"]
    a1111.capabilities("sd_xl").check(GenerationRequest(prompt="x", negative_prompt="fog"), "forge")


async def test_img2img_edits_send_the_stored_image(fake):
    out = io.BytesIO()
    Image.new("RGB", (515, 300), "red").save(out, format="PNG")
    source = SourceImage(out.getvalue(), "image/png", "a.png", 515, 300)
    gen = generator(fake)
    try:
        image = await gen.edit(EditRequest(prompt="make it green"), [source])
        with pytest.raises(InvalidImageRequest, match="one image"):
            await gen.edit(EditRequest(prompt="x"), [source, source])
    finally:
        await gen.close()
    route, body = fake.calls[-1][1], fake.calls[-1][2]
    assert route == "img2img" and body["init_images"][0] and (body["width"], body["height"]) == (512, 296)
    assert image.usage["provider_details"]["denoising_strength"] == 0.75


async def test_wrong_credentials_are_named_and_do_not_fail_over(fake):
    gen = generator(fake, auth="forge:wrong")
    try:
        with pytest.raises(GeneratorError, match="auth_env") as refused:
            await gen.generate(GenerationRequest(prompt="x"))
        assert not fails_over(refused.value)
        with pytest.raises(GeneratorError):
            await gen.ping()
    finally:
        await gen.close()


async def test_a_server_error_fails_over_and_an_unknown_checkpoint_is_named(fake):
    gen = generator(fake)
    missing = generator(fake, model="no-such-model")
    try:
        fake.fail_next()
        with pytest.raises(GeneratorError) as failed:
            await gen.generate(GenerationRequest(prompt="x"))
        assert fails_over(failed.value)
        with pytest.raises(GeneratorError):
            await missing.generate(GenerationRequest(prompt="x"))
        await gen.ping()
    finally:
        await gen.close()
        await missing.close()


async def test_a_server_never_reached_fails_over():
    from tests.e2e.server import free_port

    entry = ModelEntry(name="forge", provider="a1111", base_url=f"http://127.0.0.1:{free_port()}")
    gen = a1111.build(entry, ProviderContext(timeout_seconds=5), alternatives=True)
    try:
        with pytest.raises(GeneratorError, match="could not be reached") as failed:
            await gen.generate(GenerationRequest(prompt="x"))
    finally:
        await gen.close()
    assert fails_over(failed.value)


def test_auth_env_must_be_set_to_user_and_password(fake):
    with pytest.raises(ValueError, match="FORGE_AUTH is not set to user:password"):
        generator(fake, auth=None)
    with pytest.raises(ValueError, match="FORGE_AUTH is not set to user:password"):
        generator(fake, auth="no-colon")


def test_an_auth_env_not_set_stops_the_start_naming_it():
    file = CatalogueFile(models=[ModelEntry(name="forge", provider="a1111", auth_env="FORGE_AUTH")])
    with pytest.raises(CatalogueError, match=r"\(forge\): auth_env: the variable FORGE_AUTH is not set"):
        check_keys(file, lambda name: None)
    check_keys(file, lambda name: AUTH if name == "FORGE_AUTH" else None)


def test_auth_env_is_a_field_of_a1111_entries_only(tmp_path):
    path = tmp_path / "models.yaml"
    path.write_text("models:\n  - {name: forge, provider: a1111, auth_env: FORGE_AUTH}\n")
    assert read_catalogue_file(path).models[0].extras == {"auth_env": "FORGE_AUTH"}
    path.write_text("models:\n  - {name: x, provider: offline, auth_env: FORGE_AUTH}\n")
    with pytest.raises(CatalogueError, match="auth_env: not a field of offline entries"):
        read_catalogue_file(path)
