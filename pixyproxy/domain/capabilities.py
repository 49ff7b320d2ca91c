"""What a model takes: each option it accepts (and which values), the sizes it can draw, edits, previews.

A request is checked against its model's capabilities before any provider is called: an option the model
does not take is refused by name (a 422 naming the option and the model), never forwarded and never
silently ignored. Capabilities are data, listed as they are by GET /models.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pixyproxy.domain.errors import InvalidImageRequest
from pixyproxy.domain.models import OPTION_NAMES, GenerationRequest

ANY = None  # an option taken with any value of its shape


@dataclass(frozen=True)
class SizeRule:
    """The sizes a model draws: `fixed` ones, or (free) any WIDTHxHEIGHT within the bounds."""

    fixed: tuple[str, ...] = ()
    free: bool = False
    min_side: int = 16
    max_side: int = 4096
    multiple_of: int = 1
    max_ratio: float | None = None  # longer side / shorter side
    max_pixels: int | None = None
    auto: bool = True

    def problem(self, size: str) -> str | None:
        """Why `size` cannot be drawn, or None."""
        if size == "auto":
            return None if self.auto else "auto is not taken; name a size"
        if size in self.fixed:
            return None
        if not self.free:
            return f"takes {', '.join(self.fixed) or 'no size'}{' or auto' if self.auto else ''}"
        width, height = (int(n) for n in size.split("x"))
        if not all(self.min_side <= side <= self.max_side for side in (width, height)):
            return f"each side must be between {self.min_side} and {self.max_side}"
        if width % self.multiple_of or height % self.multiple_of:
            return f"each side must be a multiple of {self.multiple_of}"
        if self.max_ratio and max(width, height) > self.max_ratio * min(width, height):
            return f"the ratio of the sides must be at most {self.max_ratio:g}:1"
        if self.max_pixels and width * height > self.max_pixels:
            return f"at most {self.max_pixels:,} pixels"
        return None

    def describe(self) -> dict[str, Any]:
        if not self.free:
            return {"sizes": [*self.fixed, *(["auto"] if self.auto else [])]}
        described: dict[str, Any] = {"min_side": self.min_side, "max_side": self.max_side}
        if self.multiple_of > 1:
            described["multiple_of"] = self.multiple_of
        if self.max_ratio:
            described["max_ratio"] = self.max_ratio
        if self.max_pixels:
            described["max_pixels"] = self.max_pixels
        if self.fixed:
            described["sizes"] = list(self.fixed)
        return described


ANY_SIZE = SizeRule(free=True)


@dataclass(frozen=True)
class Capabilities:
    """options: option name -> the values taken (ANY: every value of its shape); absent: not taken."""

    options: Mapping[str, tuple[Any, ...] | None]
    sizes: SizeRule = ANY_SIZE
    edits: bool = True
    partial_images: bool = True
    # A provider whose table of models is unknown to us (a compatible server): everything is passed on
    # and the provider's own refusal is the answer.
    open: bool = False
    notes: Mapping[str, str] = field(default_factory=dict)  # option -> why, shown with a refusal

    def check(self, request: GenerationRequest, model: str) -> None:
        """Raise InvalidImageRequest naming the first option `model` does not take (or not that value)."""
        if self.open:
            return
        # A job's (or a stream's) previews: refused by name where the model streams none, never dropped.
        if getattr(request, "partial_images", None) and not self.partial_images:
            raise InvalidImageRequest(
                f"partial_images: model {model!r} streams no previews; leave partial_images out",
                param="partial_images",
            )
        for name, value in request.options().items():
            if name not in self.options:
                why = self.notes.get(name, "")
                raise InvalidImageRequest(
                    f"{name}: model {model!r} does not take {name}{'; ' + why if why else ''}", param=name
                )
            taken = self.options[name]
            if name == "size":
                problem = self.sizes.problem(value)
                if problem is not None:
                    raise InvalidImageRequest(
                        f"size: model {model!r} cannot draw {value}: {problem}", param=name
                    )
            elif taken is not None and value not in taken:
                shown = ", ".join(str(v) for v in taken)
                raise InvalidImageRequest(f"{name}: model {model!r} takes {shown}; not {value}", param=name)

    def describe(self) -> dict[str, Any]:
        """What GET /models shows: each option with its values (null: any), the sizes, edits, previews."""
        options: dict[str, Any] = {}
        for name in OPTION_NAMES:
            if self.open or name in self.options:
                values = None if self.open else self.options[name]
                options[name] = list(values) if values is not None else None
        if "size" in options and not self.open:
            options["size"] = self.sizes.describe()
        return {
            "options": options,
            "edits": self.edits,
            "partial_images": self.partial_images,
            "checked": not self.open,
        }

    def restricted_to(self, allowed: Mapping[str, Sequence[Any] | None]) -> "Capabilities":
        """These capabilities narrowed (or, for an open provider, declared) by a catalogue entry's
        `options`: only the options named, with the values listed."""
        options: dict[str, tuple[Any, ...] | None] = {}
        for name, values in allowed.items():
            if name not in OPTION_NAMES:
                raise ValueError(f"unknown option {name!r}; options are {', '.join(OPTION_NAMES)}")
            options[name] = tuple(values) if values is not None else None
        sizes, listed = self.sizes, options.get("size")
        if listed is not None:
            sizes = SizeRule(fixed=tuple(str(s) for s in listed if s != "auto"), auto="auto" in listed)
        return Capabilities(options, sizes, self.edits, self.partial_images, False, self.notes)


# Everything OpenAI's Images API defines; the offline generator draws each of them.
ALL_QUALITIES = ("auto", "low", "medium", "high", "xhigh", "max", "standard", "hd")
ALL_FORMATS = ("png", "webp", "jpeg", "gif", "svg")
OPEN = Capabilities(options={name: ANY for name in OPTION_NAMES}, open=True)
