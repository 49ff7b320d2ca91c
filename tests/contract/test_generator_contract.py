"""The ImageGenerator contract, run against every adapter in GENERATOR_ADAPTERS."""

import io

import pytest
from PIL import Image

from pixyproxy.domain.errors import InvalidImageRequest
from pixyproxy.domain.models import GenerationRequest


async def test_generates_a_readable_image_for_the_prompt(generator):
    result = await generator.generate(GenerationRequest(prompt="a red bicycle"))
    with Image.open(io.BytesIO(result.data)) as image:
        image.verify()
    assert result.model


async def test_validate_accepts_the_defaults(generator):
    generator.validate(GenerationRequest(prompt="anything"))


async def test_validate_refuses_an_unknown_model(generator):
    with pytest.raises(InvalidImageRequest):
        generator.validate(GenerationRequest(prompt="x", model="no-such-model-xyz"))


def test_names_itself(generator):
    assert generator.name and generator.default_model
