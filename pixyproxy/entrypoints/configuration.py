"""The configuration as the service starts with it: validated once, the same way by `serve` and `check`,
and shown with every secret masked."""

import json
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from pydantic import SecretStr

from pixyproxy.entrypoints.middleware.api_keys import load_keys
from pixyproxy.settings import ConfigurationError, Settings, load_settings, unknown_variables, variable_name

MASK = "********"


@dataclass(frozen=True)
class Validated:
    settings: Settings
    warnings: list[str]  # unknown variables: worth saying, not worth refusing to start


def validated_settings() -> Validated:
    """The settings, or ConfigurationError with one line per problem (no value of any variable)."""
    warnings = unknown_variables()
    settings = load_settings()
    try:
        env_keys = settings.api_keys.get_secret_value() if settings.api_keys else None
        load_keys(env_keys, settings.api_keys_file)
    except ValueError as exc:
        raise ConfigurationError([str(exc)]) from None
    return Validated(settings, warnings)


@dataclass(frozen=True)
class Shown:
    variable: str
    value: str
    default: bool


def effective_configuration(settings: Settings) -> list[Shown]:
    """Every setting by its variable's name, secrets and URL passwords masked."""
    shown = []
    for field in type(settings).model_fields:
        value = getattr(settings, field)
        shown.append(Shown(variable_name(field), _masked(value), field not in settings.model_fields_set))
    return shown


def _masked(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, SecretStr):
        return MASK if value.get_secret_value() else ""
    if isinstance(value, dict):
        return json.dumps({key: _plain(item) for key, item in value.items()})
    if isinstance(value, str) and "://" in value:
        return masked_url(value)
    return str(value)


def _plain(item: object) -> object:
    dump = getattr(item, "__dict__", None)
    return dump if dump is not None else str(item)


def masked_url(url: str) -> str:
    parts = urlsplit(url)
    if not parts.password:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:{MASK}@{host}"))
