"""Azure OpenAI as a catalogue provider: the openai SDK's AsyncAzureOpenAI (the deployment in the path,
`api-version`, the `api-key` header) through the same adapter as OpenAI (adapters/openai). `model` is
the Azure deployment's name; what it takes is the table of the OpenAI model it deploys, named by
`base_model` (default: the deployment's name when it is an OpenAI model id, else open). A content filter
refusal is a 422 content_policy_violation naming the filter's categories."""

from pixyproxy.adapters.providers import openai as openai_provider
from pixyproxy.adapters.providers.base import ProviderContext, required_key
from pixyproxy.domain.capabilities import Capabilities
from pixyproxy.domain.catalogue import ModelEntry

FIELDS: frozenset[str] = frozenset({"base_model"})
REQUIRED = ("base_url", "api_version")
NEEDS_KEY = True
DEFAULT_KEY_ENV = "AZURE_OPENAI_API_KEY"


def capabilities(model: str) -> Capabilities:
    return openai_provider.capabilities(model)


def entry_capabilities(entry: ModelEntry) -> Capabilities:
    return openai_provider.capabilities(str(entry.extras.get("base_model") or entry.provider_model))


def build(entry: ModelEntry, context: ProviderContext, *, alternatives: bool):
    from pixyproxy.adapters.openai import OpenAIImageGenerator

    key = required_key(entry, context, DEFAULT_KEY_ENV)
    return OpenAIImageGenerator(
        model=entry.provider_model,
        timeout_seconds=context.timeout(entry),
        connect_timeout_seconds=context.connect_timeout_seconds,
        max_retries=context.retries(entry, alternatives),
        api_key=key,
        base_url=entry.base_url,
        azure_api_version=entry.api_version,
        response_format=None,
    )
