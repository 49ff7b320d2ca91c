from typing import Protocol

from pixyproxy.domain.models import GeneratedImage, GenerationRequest


class ImageGenerator(Protocol):
    """Turns a prompt into image bytes.

    Failures raise GeneratorError subclasses (GeneratorTimeout, GeneratorRateLimited,
    ContentPolicyViolation); a request the generator cannot serve raises InvalidImageRequest.
    """

    name: str  # e.g. "offline", "openai"; logged at start
    default_model: str

    def validate(self, request: GenerationRequest) -> None:
        """Raise InvalidImageRequest when model/size/quality are not ones this generator supports."""
        ...

    async def generate(self, request: GenerationRequest) -> GeneratedImage: ...

    async def close(self) -> None: ...
