"""negative_prompt: checked for shape, honoured by the models that take one and refused by name by the
others (OpenAI's), passed as asked to a compatible server whose models are not checked."""

import hashlib

import pytest
from pydantic import ValidationError

from pixyproxy.adapters.openai.requests import Defaults, generation_params
from pixyproxy.adapters.providers import offline, openai
from pixyproxy.domain.errors import InvalidImageRequest
from pixyproxy.domain.models import EditRequest, GenerationRequest
from pixyproxy.domain.usecases.idempotency import fingerprint


@pytest.mark.parametrize("value", ["", "   ", "a\x00b", "a" * 4001, 7])
def test_a_negative_prompt_of_the_wrong_shape_is_refused_by_name(value):
    with pytest.raises(ValidationError, match="negative_prompt"):
        GenerationRequest(prompt="x", negative_prompt=value)


def test_it_is_trimmed_and_edits_take_it_too():
    assert GenerationRequest(prompt="x", negative_prompt=" fog \n").negative_prompt == "fog"
    assert EditRequest(prompt="x", negative_prompt="fog").options() == {"negative_prompt": "fog"}


def test_openai_models_refuse_it_by_name_and_a_compatible_server_gets_it_as_asked():
    request = GenerationRequest(prompt="x", negative_prompt="fog")
    for model in ("gpt-image-2.6-sunburst", "gpt-image-2", "gpt-image-1"):
        with pytest.raises(InvalidImageRequest, match=f"negative_prompt: model '{model}' does not take"):
            openai.capabilities(model).check(request, model)
    openai.capabilities("local-sdxl").check(request, "local-sdxl")  # open: the server answers
    params = generation_params(request, Defaults("local-sdxl"))
    assert params["extra_body"] == {"negative_prompt": "fog"} and "negative_prompt" not in params
    assert "extra_body" not in generation_params(GenerationRequest(prompt="x"), Defaults("local-sdxl"))
    offline.capabilities("pixyproxy-offline").check(request, "offline")


def test_a_key_stored_before_the_option_still_matches_a_replay():
    before = '{"prompt":"x","model":null,"size":null,"quality":null}'  # a body's text as it was hashed
    assert fingerprint(GenerationRequest(prompt="x")) == hashlib.sha256(before.encode()).hexdigest()
