"""What is sent to the Images API for a request, and how its answer is read.

No table of what each model takes: models change faster than any table here would. Values are checked
for shape only (the domain's GenerationRequest does that), what the client asked is sent as asked, and
the provider's own refusal comes back as a 422 naming the parameter (failures.py). Options a client did
not ask for are not sent at all, so a compatible server that knows none of them is not troubled.
"""

import binascii
import re
from dataclasses import dataclass
from typing import Any, Literal

import orjson
from pydantic import ValidationError

from pixyproxy.domain.errors import GeneratorError
from pixyproxy.domain.models import GeneratedImage, GenerationRequest, SourceImage

# GPT image models always answer base64 and refuse `response_format`; a name is all that tells them apart.
_BASE64_ONLY = re.compile(r"^(gpt-image|chatgpt-image)")
OPTIONS = (
    "background",
    "output_format",
    "output_compression",
    "moderation",
    "complexity",
    "frame_count",
    "frame_duration_ms",
)
ResponseFormat = Literal["b64_json", "url"]


@dataclass(frozen=True)
class Defaults:
    """What a request that names none gets (PIXYPROXY_OPENAI_*)."""

    model: str
    size: str | None = None
    quality: str | None = None
    # Asked of models other than GPT image ones; None: never (Azure, whose image deployments are GPT image
    # models under a name of the user's choosing).
    response_format: ResponseFormat | None = "b64_json"

    def check(self) -> None:
        """Refuse at start a default of the wrong shape, with the reason (a ValueError)."""
        try:
            GenerationRequest(prompt="x", model=self.model, size=self.size, quality=self.quality)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise ValueError(f"PIXYPROXY_OPENAI_{where.upper()}: {first['msg']}") from None


def answers_base64_only(model: str) -> bool:
    return bool(_BASE64_ONLY.match(model))


def generation_params(
    request: GenerationRequest, defaults: Defaults, safety_identifier: str | None = None
) -> dict[str, Any]:
    model = request.model or defaults.model
    params: dict[str, Any] = {"prompt": request.prompt, "model": model}
    if size := request.size or defaults.size:
        params["size"] = size
    if quality := request.quality or defaults.quality:
        params["quality"] = quality
    for name in OPTIONS:
        value = getattr(request, name)
        if value is not None:
            params[name] = value
    if request.svg is not None:
        params["svg"] = request.svg.model_dump(exclude_none=True)
    # Not an Images API parameter: sent as asked only to a compatible server whose models are not
    # checked (OpenAI's own are refused before any call), and its refusal is the answer.
    if request.negative_prompt is not None:
        params["extra_body"] = {"negative_prompt": request.negative_prompt}
    if safety_identifier:
        params["safety_identifier"] = safety_identifier
    if not answers_base64_only(model) and defaults.response_format is not None:
        params["response_format"] = defaults.response_format
    return params


def edit_params(
    request: GenerationRequest,
    defaults: Defaults,
    images: list[SourceImage],
    mask: SourceImage | None,
    safety_identifier: str | None = None,
) -> dict[str, Any]:
    """As generation_params, plus the files: always a list, so they go as `image[]` parts."""
    params = generation_params(request, defaults, safety_identifier)
    params["image"] = [_file(image) for image in images]
    if mask is not None:
        params["mask"] = _file(mask)
    return params


def _file(image: SourceImage) -> tuple[str, bytes, str]:
    return (image.filename, image.data, image.content_type)


def read_answer(body: bytes) -> tuple[dict[str, Any], dict[str, Any], bytes | None]:
    """(answer, first image item, its bytes when base64; None when it is a URL to fetch)."""
    try:
        answer = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise GeneratorError("the image generator's answer is not JSON") from None
    data = answer.get("data") if isinstance(answer, dict) else None
    item = data[0] if isinstance(data, list) and data else None
    if not isinstance(item, dict):
        raise GeneratorError("the image generator answered without an image")
    b64 = item.get("b64_json")
    if isinstance(b64, str) and b64:
        return answer, item, decode_base64(b64)
    url = item.get("url")
    if isinstance(url, str) and url.startswith(("https://", "http://")):
        return answer, item, None
    raise GeneratorError("the image generator answered without an image")


def decode_base64(b64: str) -> bytes:
    try:
        # What b64decode(validate=True) runs, less its copy of the text into bytes first.
        return binascii.a2b_base64(b64, strict_mode=True)
    except (binascii.Error, ValueError):
        raise GeneratorError("the image generator's base64 image is not valid base64") from None


def generated(
    data: bytes, params: dict[str, Any], answer: dict[str, Any], item: dict[str, Any] | None = None
) -> GeneratedImage:
    """The domain's view of an answer (a JSON body, or a stream's completed event): what the provider
    reports wins over what was asked; usage exactly as reported."""
    revised = (item or {}).get("revised_prompt")
    usage = answer.get("usage")
    return GeneratedImage(
        data=data,
        model=params["model"],
        size=_text(answer.get("size")) or params.get("size"),
        quality=_text(answer.get("quality")) or params.get("quality"),
        revised_prompt=revised if isinstance(revised, str) and revised else None,
        usage=usage if isinstance(usage, dict) and usage else None,
        background=_text(answer.get("background")) or params.get("background"),
        output_format=_text(answer.get("output_format")) or params.get("output_format"),
    )


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
