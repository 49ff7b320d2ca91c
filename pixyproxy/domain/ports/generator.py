from typing import Protocol

from pixyproxy.domain.models import EditRequest, GeneratedImage, GenerationRequest, OnPartial, SourceImage


class ImageGenerator(Protocol):
    """Turns a prompt into image bytes.

    Failures raise GeneratorError subclasses (GeneratorTimeout, GeneratorRateLimited,
    ContentPolicyViolation); a request the generator cannot serve raises InvalidImageRequest.

    Progress is not a parameter: while generate() or edit() runs, a generator whose provider tells how
    far it has got calls pixyproxy.domain.progress.report_progress(fraction of this image, 0..1), or
    report_steps(step, steps), as often as it is told. A job sets who hears it around each of its images
    (a context variable, so the decorators, routing and fallbacks in between pass it on untouched) and
    shows the combined value as its `progress`; outside a job the call does nothing.
    """

    # Read-only, so a decorator (adapters/metered.py) may pass them on from what it wraps.
    @property
    def name(self) -> str:
        """e.g. "offline", "openai"; logged at start."""
        ...

    @property
    def default_model(self) -> str: ...

    def validate(self, request: GenerationRequest) -> None:
        """Raise InvalidImageRequest for what this generator can tell is wrong before any call. A remote
        generator checks only shapes and leaves the rest to the provider (its refusal is a 422 too)."""
        ...

    async def generate(
        self,
        request: GenerationRequest,
        *,
        safety_identifier: str | None = None,
        partial_images: int = 0,
        on_partial: OnPartial | None = None,
    ) -> GeneratedImage:
        """One image. safety_identifier is forwarded to the provider as it is (a hash, never a key). With
        on_partial and partial_images 1..3, previews are streamed to on_partial before the final image."""
        ...

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
        """A new image from images[0] changed as the prompt says (images[1:] are references); where a mask
        is given, only its fully transparent pixels may change."""
        ...

    async def init(self) -> None:
        """Start-up checks (a remote generator asks which models its server offers); logs, never raises."""
        ...

    async def ping(self) -> None:
        """Raise a GeneratorError subclass when this generator cannot serve (readiness); cheap, no image."""
        ...

    async def close(self) -> None: ...
