"""Building the routing generator: the catalogue from PIXYPROXY_MODELS_FILE (YAML) or, without one, from
today's settings (PIXYPROXY_GENERATOR, PIXYPROXY_OPENAI_MODEL, OPENAI_*) as a catalogue of one model.

A file that is wrong stops the start with one line naming the entry and the field (CatalogueError); a
key variable an entry names but the environment lacks is named, never printed.
"""

from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from pixyproxy.adapters.deployment_slots import Slots
from pixyproxy.adapters.providers import MODULES, provider_module
from pixyproxy.adapters.providers.base import ProviderContext
from pixyproxy.adapters.routing import Route, RoutingGenerator
from pixyproxy.domain.capabilities import Capabilities
from pixyproxy.domain.catalogue import Catalogue, CatalogueFile, ModelEntry
from pixyproxy.domain.ports.cooldowns import Cooldowns
from pixyproxy.domain.ports.metrics import MetricsRecorder
from pixyproxy.domain.usage_prices import default_model_price


class CatalogueError(ValueError):
    """The models file cannot be used; the message is one line naming where."""


def read_catalogue_file(path: Path) -> CatalogueFile:
    where = f"PIXYPROXY_MODELS_FILE {path}"
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CatalogueError(f"{where}: cannot be read ({exc.strerror or exc})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark is not None else ""
        raise CatalogueError(f"{where}:{line} is not valid YAML") from None
    if not isinstance(raw, dict):
        raise CatalogueError(f"{where}: must be a mapping with `models:` (and `default:`, `aliases:`)")
    try:
        file = CatalogueFile.model_validate(raw)
    except ValidationError as exc:
        raise CatalogueError(f"{where}: {_first_error(exc, raw)}") from None
    for index, entry in enumerate(file.models):
        _check_entry(where, index, entry)
    return _prepared(where, file, path.parent)


def _prepared(where: str, file: CatalogueFile, base: Path) -> CatalogueFile:
    """Each entry as its provider's `prepare_entry` reads it (files it names, relative to the models
    file, checked and made absolute); a ValueError from it names the entry and the field."""
    models = []
    for index, entry in enumerate(file.models):
        prepare = getattr(provider_module(entry.provider), "prepare_entry", None)
        try:
            models.append(prepare(entry, base) if prepare is not None else entry)
        except ValueError as exc:
            raise CatalogueError(f"{where}: models[{index}] ({entry.name}): {exc}") from None
    return file.model_copy(update={"models": models})


def _first_error(exc: ValidationError, raw: dict[str, Any]) -> str:
    error = exc.errors()[0]
    loc = list(error.get("loc", ()))
    if not loc:  # a model validator's own message names its place
        return str(error.get("msg", "")).removeprefix("Value error, ")
    place = str(loc[0])
    if loc[0] == "models" and len(loc) > 1 and isinstance(loc[1], int):
        entry = (raw.get("models") or [None])[loc[1]] if isinstance(raw.get("models"), list) else None
        named = f" ({entry.get('name')})" if isinstance(entry, dict) and entry.get("name") else ""
        place = f"models[{loc[1]}]{named}"
        loc = loc[2:]
    else:
        loc = loc[1:]
    field = ".".join(str(p) for p in loc)
    message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
    return f"{place}: {field + ': ' if field else ''}{message}"


def _check_entry(where: str, index: int, entry: ModelEntry) -> None:
    place = f"{where}: models[{index}] ({entry.name})"
    if entry.provider not in MODULES:
        raise CatalogueError(
            f"{place}: provider: must be one of {', '.join(MODULES)}; not {entry.provider!r}"
        )
    module = provider_module(entry.provider)
    for name in entry.extras:
        if name not in module.FIELDS:
            raise CatalogueError(f"{place}: {name}: not a field of {entry.provider} entries")
    for name in getattr(module, "REQUIRED", ()):
        if getattr(entry, name, None) is None and name not in entry.extras:
            raise CatalogueError(f"{place}: {name}: required for {entry.provider} entries")
    if entry.options is not None:
        try:
            entry_capabilities(entry).restricted_to(entry.options)
        except ValueError as exc:
            raise CatalogueError(f"{place}: options: {exc}") from None


def legacy_file(generator: str, openai_model: str) -> CatalogueFile:
    """Today's settings as a catalogue of one model."""
    if generator == "openai":
        entry = ModelEntry(name=openai_model, provider="openai")
    else:
        entry = ModelEntry(name="pixyproxy-offline", provider="offline")
    return CatalogueFile(models=[entry])


def build_routing(
    file: CatalogueFile,
    context: ProviderContext,
    cooldowns: Cooldowns,
    cooldown_seconds: float,
    *,
    legacy: bool = False,
    recorder: MetricsRecorder | None = None,
) -> RoutingGenerator:
    """The routing generator over every entry's adapter (each built now, its SDK imported now)."""
    catalogue = Catalogue.of(file, passthrough=legacy and file.models[0].provider == "openai")
    check_keys(file, context.environment)
    routes: dict[str, list[Route]] = {}
    for name, deployments in catalogue.deployments.items():
        chain = len(deployments) + sum(len(catalogue.deployments[f]) for f in catalogue.fallbacks(name))
        for deployment in deployments:
            entry = deployment.entry
            module = provider_module(entry.provider)
            adapter = module.build(entry, context, alternatives=chain > 1)
            price = None if legacy else entry.price or default_model_price(entry.provider_model)
            limit = Slots(entry.max_concurrency) if entry.max_concurrency else None
            routes.setdefault(name, []).append(Route(deployment, adapter, entry.provider, price, limit))
    return RoutingGenerator(
        catalogue,
        routes,
        capabilities_of(catalogue),
        cooldowns,
        cooldown_seconds,
        estimate_costs=not legacy,
        recorder=recorder,
    )


def capabilities_of(catalogue: Catalogue) -> Callable[[str], Capabilities]:
    """What each catalogue name takes: its provider's table for its model, narrowed by `options`; a
    passthrough name, its provider's table for that name."""
    table: dict[str, Capabilities] = {}
    for name in catalogue.names:
        entry = catalogue.entry_for(name)
        caps = entry_capabilities(entry)
        table[name] = caps.restricted_to(entry.options) if entry.options is not None else caps
    default_provider = catalogue.entry_for(catalogue.default).provider

    def capabilities(name: str) -> Capabilities:
        found = table.get(name)
        return found if found is not None else provider_module(default_provider).capabilities(name)

    return capabilities


def entry_capabilities(entry: ModelEntry) -> Capabilities:
    """What an entry's model takes: its provider's table (by the entry, where the provider looks at more
    than the model id, as Azure's base_model)."""
    module = provider_module(entry.provider)
    by_entry = getattr(module, "entry_capabilities", None)
    return by_entry(entry) if by_entry is not None else module.capabilities(entry.provider_model)


def check_keys(file: CatalogueFile, environment: Callable[[str], str | None]) -> None:
    """Each entry's key variable (its api_key_env, or its provider's usual one) is set; named if not."""
    for index, entry in enumerate(file.models):
        module = provider_module(entry.provider)
        variable = entry.api_key_env or getattr(module, "DEFAULT_KEY_ENV", None)
        if module.NEEDS_KEY and variable and not environment(variable):
            raise CatalogueError(
                f"PIXYPROXY_MODELS_FILE: models[{index}] ({entry.name}): api_key_env: the variable "
                f"{variable} is not set"
            )
        check_environment = getattr(module, "check_environment", None)
        problem = check_environment(entry, environment) if check_environment is not None else None
        if problem:
            raise CatalogueError(f"PIXYPROXY_MODELS_FILE: models[{index}] ({entry.name}): {problem}")
