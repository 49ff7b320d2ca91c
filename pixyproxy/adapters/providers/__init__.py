"""The providers a catalogue entry can name. Each is one module here (imported only when a catalogue
names it) with `capabilities(model)`, `build(entry, context)`, the entry fields of its own (`FIELDS`)
and whether it needs a key (`NEEDS_KEY`); adding a provider is its module and one line below."""

import importlib
from types import ModuleType

MODULES = {
    "offline": "pixyproxy.adapters.providers.offline",
    "openai": "pixyproxy.adapters.providers.openai",
    "azure": "pixyproxy.adapters.providers.azure",
    "gemini": "pixyproxy.adapters.providers.gemini",
    "bfl": "pixyproxy.adapters.providers.bfl",
    "a1111": "pixyproxy.adapters.providers.a1111",
    "comfyui": "pixyproxy.adapters.providers.comfyui",
}


def provider_module(name: str) -> ModuleType:
    return importlib.import_module(MODULES[name])
