"""The model catalogue: the models clients may ask for, where each is served (its deployments), what it
falls back to, its aliases and its prices. Read from PIXYPROXY_MODELS_FILE, or made of today's settings
as a catalogue of one model.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from pixyproxy.domain.errors import InvalidImageRequest

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,99}$"


class ModelPrice(BaseModel):
    """US dollars: per image, per megapixel drawn, and per million tokens of each kind."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    per_image: float = Field(default=0.0, ge=0)
    per_megapixel: float = Field(default=0.0, ge=0)
    text_in_per_million: float = Field(default=0.0, ge=0)
    image_in_per_million: float = Field(default=0.0, ge=0)
    image_out_per_million: float = Field(default=0.0, ge=0)
    text_out_per_million: float = Field(default=0.0, ge=0)

    def estimate(self, usage: Mapping[str, Any] | None, size: str | None) -> float:
        """The cost of one image of `size` (WIDTHxHEIGHT) with the provider's usage (OpenAI's shape:
        input_tokens with text/image details, output_tokens with image/text details)."""
        cost = self.per_image
        if self.per_megapixel and size and "x" in size:
            width, height = (int(n) for n in size.split("x"))
            cost += self.per_megapixel * width * height / 1e6
        usage = usage or {}
        spent_in, spent_out = _count(usage, "input_tokens"), _count(usage, "output_tokens")
        details_in = usage.get("input_tokens_details") or {}
        details_out = usage.get("output_tokens_details") or {}
        image_in = _count(details_in, "image_tokens")
        text_in = _count(details_in, "text_tokens") if "text_tokens" in details_in else spent_in - image_in
        text_out = _count(details_out, "text_tokens")
        image_out = (
            _count(details_out, "image_tokens") if "image_tokens" in details_out else spent_out - text_out
        )
        cost += (
            max(0, text_in) * self.text_in_per_million
            + image_in * self.image_in_per_million
            + max(0, image_out) * self.image_out_per_million
            + text_out * self.text_out_per_million
        ) / 1e6
        return round(cost, 6)


def _count(mapping: Mapping[str, Any], name: str) -> int:
    value = mapping.get(name) if isinstance(mapping, Mapping) else None
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) and value > 0 else 0


class ModelEntry(BaseModel):
    """One deployment of a model. Fields beyond these are a provider's own (each provider declares
    which it takes; the loader refuses the rest by name)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    name: str = Field(pattern=NAME_PATTERN, description="What clients ask for.")
    provider: str = Field(description="openai, azure, gemini, bfl, a1111, comfyui or offline.")
    model: str | None = Field(default=None, description="The provider's own id; defaults to name.")
    base_url: str | None = Field(default=None, pattern=r"^https?://")
    api_key_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    api_version: str | None = None
    weight: float = Field(default=1.0, gt=0)
    max_concurrency: int | None = Field(default=None, ge=1)
    fallbacks: list[str] = Field(default_factory=list)
    price: ModelPrice | None = None
    options: dict[str, list[Any] | None] | None = Field(
        default=None,
        description="The options this model takes (and their values); default: the provider's table.",
    )
    timeout_seconds: float | None = Field(default=None, gt=0)
    max_retries: int | None = Field(default=None, ge=0, le=10)
    deployment: str | None = Field(default=None, max_length=100, description="A label; default name#N.")

    @property
    def provider_model(self) -> str:
        return self.model or self.name

    @property
    def extras(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class CatalogueFile(BaseModel):
    """The YAML file's shape."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    default: str | None = None
    models: list[ModelEntry] = Field(min_length=1)
    aliases: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _names_resolve(self) -> "CatalogueFile":
        names = {entry.name for entry in self.models}
        for index, entry in enumerate(self.models):
            for fallback in entry.fallbacks:
                if fallback not in names:
                    raise ValueError(
                        f"models[{index}] ({entry.name}): fallbacks: no model named {fallback!r}"
                    )
        for alias, target in self.aliases.items():
            if target not in names:
                raise ValueError(f"aliases: {alias}: no model named {target!r}")
            if alias in names:
                raise ValueError(f"aliases: {alias}: is already a model's name")
        if self.default is not None and self.default not in names and self.default not in self.aliases:
            raise ValueError(f"default: no model named {self.default!r}")
        return self


@dataclass(frozen=True)
class Deployment:
    """One entry as routing sees it: its label (`name#N` unless given) and the entry."""

    label: str
    entry: ModelEntry


@dataclass
class Catalogue:
    default: str
    deployments: dict[str, list[Deployment]]  # name -> its deployments, in file order
    aliases: dict[str, str] = field(default_factory=dict)
    # Today's openai setting: a name not in the catalogue goes to the default's deployments as it is
    # (the provider decides), as PIXYPROXY_OPENAI_MODEL did before there was a catalogue.
    passthrough: bool = False

    @classmethod
    def of(cls, file: CatalogueFile, passthrough: bool = False) -> "Catalogue":
        deployments: dict[str, list[Deployment]] = {}
        for entry in file.models:
            listed = deployments.setdefault(entry.name, [])
            listed.append(Deployment(entry.deployment or f"{entry.name}#{len(listed) + 1}", entry))
        default = file.default or file.models[0].name
        return cls(file.aliases.get(default, default), deployments, dict(file.aliases), passthrough)

    @property
    def names(self) -> list[str]:
        return list(self.deployments)

    def resolve(self, asked: str | None) -> str:
        """The catalogue name a request's `model` means (an alias followed; absent: the default)."""
        if asked is None:
            return self.default
        if asked in self.deployments:
            return asked
        if asked in self.aliases:
            return self.aliases[asked]
        if self.passthrough:
            return asked
        listed = ", ".join([*self.names, *self.aliases])
        raise InvalidImageRequest(
            f"model: no model {asked!r} here; GET /models lists {listed}", param="model"
        )

    def entry_for(self, name: str) -> ModelEntry:
        """The first deployment's entry (its fallbacks and price speak for the model)."""
        return self.deployments.get(name, self.deployments[self.default])[0].entry

    def fallbacks(self, name: str) -> list[str]:
        return list(self.entry_for(name).fallbacks) if name in self.deployments else []

    def aliases_of(self, name: str) -> list[str]:
        return [alias for alias, target in self.aliases.items() if target == name]
