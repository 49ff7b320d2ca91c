"""The offline generator as a catalogue provider: every option of OpenAI's Images API, drawn."""

from pixyproxy.adapters.offline_generator import OfflineImageGenerator
from pixyproxy.adapters.providers.base import ProviderContext
from pixyproxy.domain.capabilities import ALL_FORMATS, ALL_QUALITIES, ANY, Capabilities, SizeRule
from pixyproxy.domain.catalogue import ModelEntry

FIELDS: frozenset[str] = frozenset()
NEEDS_KEY = False
OFFLINE_SIZES = SizeRule(free=True, min_side=16, max_side=3840)


def capabilities(model: str) -> Capabilities:
    return Capabilities(
        options={
            "size": ANY,
            "quality": ALL_QUALITIES,
            "background": ANY,
            "output_format": ALL_FORMATS,
            "output_compression": ANY,
            "moderation": ANY,
            "complexity": ANY,
            "frame_count": ANY,
            "frame_duration_ms": ANY,
            "svg": ANY,
            "negative_prompt": ANY,
        },
        sizes=OFFLINE_SIZES,
    )


def build(entry: ModelEntry, context: ProviderContext, *, alternatives: bool) -> OfflineImageGenerator:
    return OfflineImageGenerator(latency_seconds=context.offline_latency_seconds, model=entry.provider_model)
