"""OpenAI's Images API (or any compatible server) as an ImageGenerator, through the official SDK."""

from pixyproxy.adapters.openai.generator import OpenAIImageGenerator

__all__ = ["OpenAIImageGenerator"]
