"""A models file that cannot be used stops the start with one line naming the entry and the field; a
key variable that is not set is named, never printed; without a file, today's settings are a catalogue
of one model."""

import pytest

from pixyproxy.adapters.catalogue_file import CatalogueError, check_keys, legacy_file, read_catalogue_file
from pixyproxy.domain.catalogue import Catalogue
from pixyproxy.domain.errors import InvalidImageRequest

GOOD = """\
default: gpt-image-2.6-sunburst
models:
  - name: gpt-image-2.6-sunburst
    provider: openai
    api_key_env: OPENAI_API_KEY
    fallbacks: [nano-banana]
    price: {text_in_per_million: 5, image_in_per_million: 8, image_out_per_million: 30}
  - name: nano-banana
    provider: gemini
    model: gemini-nano-banana-2.1
    api_key_env: GEMINI_API_KEY
  - name: azure-image
    provider: azure
    model: my-gpt-image-deployment
    base_url: https://my-resource.openai.azure.com
    api_version: 2025-04-01-preview
    api_key_env: AZURE_OPENAI_API_KEY
aliases:
  dall-e-3: gpt-image-2.6-sunburst
"""


def read(tmp_path, text: str):
    path = tmp_path / "models.yaml"
    path.write_text(text)
    return read_catalogue_file(path)


def test_the_issue_s_example_reads_and_resolves(tmp_path):
    catalogue = Catalogue.of(read(tmp_path, GOOD))
    assert catalogue.default == "gpt-image-2.6-sunburst"
    assert catalogue.resolve("dall-e-3") == "gpt-image-2.6-sunburst"
    assert catalogue.resolve(None) == "gpt-image-2.6-sunburst"
    assert catalogue.fallbacks("gpt-image-2.6-sunburst") == ["nano-banana"]
    with pytest.raises(InvalidImageRequest, match="model: no model 'gpt-4' here"):
        catalogue.resolve("gpt-4")


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("models: []", "models: List should have at least 1 item"),
        ("models:\n  - provider: openai", "models[0]: name: Field required"),
        ("models:\n  - name: a\n    provider: bfl9", "models[0] (a): provider: must be one of"),
        ("models:\n  - name: a\n    provider: openai\n    wieght: 2", "models[0] (a): wieght: not a field"),
        (
            "models:\n  - name: a\n    provider: openai\n    weight: 0",
            "models[0] (a): weight: Input should be",
        ),
        ("models:\n  - name: a\n    provider: azure", "models[0] (a): base_url: required for azure"),
        (
            "models:\n  - name: a\n    provider: openai\n    fallbacks: [b]",
            "models[0] (a): fallbacks: no model",
        ),
        ("models:\n  - name: a\n    provider: offline\naliases: {x: y}", "aliases: x: no model named 'y'"),
        (
            "models:\n  - name: a\n    provider: offline\n    options: {colour: [red]}",
            "options: unknown option",
        ),
        ("models:\n  - name: a\n    provider: offline\n    price: {per_token: 1}", "price.per_token: Extra"),
        ("models: [", "is not valid YAML"),
    ],
)
def test_a_bad_file_is_one_line_naming_the_entry_and_the_field(tmp_path, text, said):
    with pytest.raises(CatalogueError) as refused:
        read(tmp_path, text)
    message = str(refused.value)
    assert said in message and "\n" not in message and message.startswith("PIXYPROXY_MODELS_FILE ")


def test_a_key_variable_that_is_not_set_is_named_and_its_value_never_shown(tmp_path):
    file = read(tmp_path, GOOD)
    keys = {"OPENAI_API_KEY": "sk-secret-1", "GEMINI_API_KEY": "g-secret-2"}
    with pytest.raises(
        CatalogueError, match=r"models\[2\] \(azure-image\): .*AZURE_OPENAI_API_KEY is not set"
    ):
        check_keys(file, keys.get)
    check_keys(file, {**keys, "AZURE_OPENAI_API_KEY": "a-secret-3"}.get)


def test_without_a_file_today_s_settings_are_a_catalogue_of_one_model():
    assert [e.name for e in legacy_file("offline", "gpt-image-2.6-sunburst").models] == ["pixyproxy-offline"]
    openai = legacy_file("openai", "gpt-image-2.6-flare")
    assert [(e.name, e.provider) for e in openai.models] == [("gpt-image-2.6-flare", "openai")]


def test_previews_from_a_model_that_streams_none_are_refused_by_name():
    from pixyproxy.adapters.providers import gemini
    from pixyproxy.domain.jobs_models import JobRequest

    takes = gemini.capabilities("gemini-nano-banana-2.1")
    assert not takes.partial_images
    refused = r"^partial_images: model 'nano-banana' streams no previews"
    with pytest.raises(InvalidImageRequest, match=refused):
        takes.check(JobRequest(prompt="a fox", partial_images=2), "nano-banana")
    takes.check(JobRequest(prompt="a fox"), "nano-banana")  # without previews it is taken
