"""What every provider adapter shares: the port's shell (Provider), the settings it is built with, its
key, and which failures send a request on to the next deployment. The retry, timeout and download code
shared with OpenAI's adapter is in adapters/openai/failures.py and download.py (SDK-neutral)."""

from collections.abc import Callable
from dataclasses import dataclass, field

from pixyproxy.domain.capabilities import Capabilities
from pixyproxy.domain.catalogue import ModelEntry
from pixyproxy.domain.errors import (
    ContentPolicyViolation,
    GeneratorError,
    GeneratorRateLimited,
    GeneratorTimeout,
    ImageException,
    InvalidImageRequest,
)
from pixyproxy.domain.models import EditRequest, GeneratedImage, GenerationRequest, OnPartial, SourceImage

__all__ = ["Call", "Provider", "ProviderContext", "fails_over", "fixed", "required_key", "unavailable"]


@dataclass(frozen=True)
class ProviderContext:
    """What the settings give every provider; an entry's own timeout and retries win over these."""

    timeout_seconds: float = 180.0
    connect_timeout_seconds: float = 10.0
    max_retries: int = 2
    offline_latency_seconds: float = 0.0
    default_size: str | None = None
    default_quality: str | None = None
    environment: Callable[[str], str | None] = lambda name: None  # a variable's value (keys)

    def timeout(self, entry: ModelEntry) -> float:
        return entry.timeout_seconds or self.timeout_seconds

    def retries(self, entry: ModelEntry, alternatives: bool) -> int:
        """An entry's own max_retries; else none when routing has somewhere else to go (the next
        deployment is tried at once), the setting's otherwise."""
        if entry.max_retries is not None:
            return entry.max_retries
        return 0 if alternatives else self.max_retries

    def key(self, entry: ModelEntry, default_env: str | None = None) -> str | None:
        name = entry.api_key_env or default_env
        return self.environment(name) if name else None


def required_key(entry: ModelEntry, context: ProviderContext, default_env: str) -> str:
    """The entry's key; unset, the start stops naming the variable (never a value)."""
    key = context.key(entry, default_env)
    if not key:
        raise ValueError(
            f"the {entry.provider} model {entry.name!r} needs a key: set {entry.api_key_env or default_env}"
        )
    return key


def fixed(caps: Capabilities) -> Callable[[str], Capabilities]:
    """`capabilities(model)` of a provider whose every model takes the same."""
    return lambda model: caps


@dataclass(frozen=True)
class Call:
    """What a generation is given besides the request: an edit's mask, the caller's safety identifier
    and where its previews go."""

    mask: SourceImage | None = None
    safety_identifier: str | None = None
    partial_images: int = 0
    on_partial: OnPartial | None = field(default=None, compare=False)

    @property
    def previews(self) -> int:
        """Previews wanted: none where nobody listens."""
        return self.partial_images if self.on_partial is not None else 0


class Provider:
    """The ImageGenerator port's shell: generate and edit both come to `_make(request, sources, call)`
    (sources: an edit's image then its references; none for a generation). An edit is refused by name
    before any call when it brings a mask or more images than the provider takes."""

    name = "provider"
    label = "the provider"  # in messages: "the FLUX API takes no mask"
    takes_mask = False
    max_sources = 16

    def validate(self, request: GenerationRequest) -> None:
        """What a model takes is checked by the catalogue (its capabilities) before any call."""

    async def generate(
        self,
        request: GenerationRequest,
        *,
        safety_identifier: str | None = None,
        partial_images: int = 0,
        on_partial: OnPartial | None = None,
    ) -> GeneratedImage:
        return await self._make(request, [], Call(None, safety_identifier, partial_images, on_partial))

    async def edit(
        self,
        request: EditRequest,
        images: list[SourceImage],
        mask: SourceImage | None = None,
        *,
        safety_identifier: str | None = None,
        partial_images: int = 0,
        on_partial: OnPartial | None = None,
    ) -> GeneratedImage:
        if mask is not None and not self.takes_mask:
            raise InvalidImageRequest(
                f"mask_guid: {self.label} takes no mask; say where in the prompt", param="mask_guid"
            )
        if len(images) > self.max_sources:
            taken = (
                "one image; references are not taken"
                if self.max_sources == 1
                else f"at most {self.max_sources} images, the source and its references"
            )
            raise InvalidImageRequest(f"{self.label} edits {taken}", param="images")
        return await self._make(request, images, Call(mask, safety_identifier, partial_images, on_partial))

    async def _make(
        self, request: GenerationRequest, sources: list[SourceImage], call: Call
    ) -> GeneratedImage:
        raise NotImplementedError

    async def init(self) -> None:
        return None

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None


def fails_over(exc: BaseException) -> bool:
    """A failure that says nothing about the request (429, 5xx, timeout, a connection never made): the
    deployment rests and the next one is tried. A client's mistake or a refusal answers at once."""
    if isinstance(exc, ContentPolicyViolation):
        return False
    if isinstance(exc, GeneratorRateLimited | GeneratorTimeout):
        return True
    return isinstance(exc, GeneratorError) and bool(exc.details.get("failover"))


def unavailable(message: str) -> ImageException:
    """A deployment that cannot serve now (5xx, never reached): the next one is tried."""
    return GeneratorError(message, failover=True)
