"""OpenAI's Images API (or any compatible server) as a catalogue provider: the official SDK's AsyncOpenAI
(adapters/openai). What each OpenAI model takes is the pinned SDK's own documentation of its types
(openai/types/image_generate_params.py); a model it does not know (a compatible server's) is open: what
the client asks is sent and the server's refusal is the answer."""

import re

from pixyproxy.adapters.providers.base import ProviderContext
from pixyproxy.domain.capabilities import ANY, OPEN, Capabilities, SizeRule
from pixyproxy.domain.catalogue import ModelEntry

FIELDS: frozenset[str] = frozenset()
NEEDS_KEY = True
DEFAULT_KEY_ENV = "OPENAI_API_KEY"

STANDARD_SIZES = SizeRule(fixed=("1024x1024", "1536x1024", "1024x1536"))
# gpt-image-2 and later: any WIDTHxHEIGHT, sides multiples of 16, at most 3:1, up to 3840x2160.
FREE_SIZES = SizeRule(
    fixed=("1024x1024", "1536x1024", "1024x1536"),
    free=True,
    min_side=16,
    max_side=3840,
    multiple_of=16,
    max_ratio=3.0,
    max_pixels=3840 * 2160,
)
_COMMON = {
    "size": ANY,
    "quality": ("auto", "low", "medium", "high"),
    "background": ("auto", "transparent", "opaque"),
    "output_format": ("png", "webp", "jpeg"),
    "output_compression": ANY,
    "moderation": ("auto", "low"),
}
_LATEST = {
    **_COMMON,
    "quality": ("auto", "low", "medium", "high", "xhigh", "max"),
    "output_format": ("png", "webp", "jpeg", "gif", "svg"),
    "complexity": ("low", "medium", "high"),
    "frame_count": ANY,
    "frame_duration_ms": ANY,
    "svg": ANY,
}
NO_NEGATIVE = "OpenAI's image models take no negative prompt; say what to leave out in the prompt"
_NOTES = {
    name: "gif, svg, complexity and the frame options are for the gpt-image-2.5 and 2.6 models"
    for name in ("complexity", "frame_count", "frame_duration_ms", "svg")
} | {"negative_prompt": NO_NEGATIVE}
FAMILIES: list[tuple[re.Pattern[str], Capabilities]] = [
    (
        re.compile(r"^gpt-image-2\.[56]-"),
        Capabilities(_LATEST, FREE_SIZES, notes={"negative_prompt": NO_NEGATIVE}),
    ),
    (re.compile(r"^gpt-image-2(-\d{4}-\d{2}-\d{2})?$"), Capabilities(_COMMON, FREE_SIZES, notes=_NOTES)),
    (
        re.compile(r"^(gpt-image-1(\.5|-mini)?|chatgpt-image-latest)$"),
        Capabilities(_COMMON, STANDARD_SIZES, notes=_NOTES),
    ),
]


def capabilities(model: str) -> Capabilities:
    return next((caps for pattern, caps in FAMILIES if pattern.match(model)), OPEN)


def build(entry: ModelEntry, context: ProviderContext, *, alternatives: bool):
    from pixyproxy.adapters.openai import OpenAIImageGenerator

    return OpenAIImageGenerator(
        model=entry.provider_model,
        size=context.default_size,
        quality=context.default_quality,
        timeout_seconds=context.timeout(entry),
        connect_timeout_seconds=context.connect_timeout_seconds,
        max_retries=context.retries(entry, alternatives),
        # None: the SDK reads OPENAI_API_KEY and OPENAI_BASE_URL itself, as without a catalogue.
        api_key=context.key(entry) if entry.api_key_env else None,
        base_url=entry.base_url,
    )
