"""Validation: the one place a pydantic ValidationError becomes InvalidImageRequest (the 422), and the
service's own limits on what a generator is asked."""

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from pixyproxy.domain.errors import InvalidImageRequest
from pixyproxy.domain.models import GenerationRequest
from pixyproxy.domain.ports.generator import ImageGenerator

DEFAULT_MAX_PROMPT_LENGTH = 4000
SEVERAL_IMAGES = (
    "n: this route makes one image; for several use POST /image/jobs or POST /v1/images/generations"
)

M = TypeVar("M", bound=BaseModel)
R = TypeVar("R", bound=GenerationRequest)


def invalid(exc: ValidationError) -> InvalidImageRequest:
    """The client's first mistake, named by where it is: `size: ...`, `body: ...`."""
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "body"
    return InvalidImageRequest(f"{where}: {first['msg']}")


def validated(model: type[M], data: BaseModel | Mapping[str, Any]) -> M:
    """`data` (a model, validated again, or a mapping) as `model`; InvalidImageRequest otherwise."""
    try:
        return model.model_validate(data.model_dump() if isinstance(data, BaseModel) else data)
    except ValidationError as exc:
        raise invalid(exc) from exc


class RequestRules:
    """What any request for one image must pass before a provider is called: the model's checks, the
    configured prompt length, one image per request, and the generator's own checks."""

    def __init__(self, generator: ImageGenerator, max_prompt_length: int = DEFAULT_MAX_PROMPT_LENGTH) -> None:
        self.generator = generator
        self.max_prompt_length = max_prompt_length

    def check(self, data: BaseModel | Mapping[str, Any], model: type[R]) -> R:
        request = validated(model, data)
        if len(request.prompt) > self.max_prompt_length:
            raise InvalidImageRequest(f"prompt: must be at most {self.max_prompt_length} characters")
        if request.n not in (None, 1):
            raise InvalidImageRequest(SEVERAL_IMAGES)
        self.generator.validate(request)
        return request
