"""A fake of the Gemini API's generateContent with image output, from Google's public documentation:
real HTTP on a random 127.0.0.1 port, driven through the real google-genai SDK.

- `POST /v1beta/models/{model}:generateContent` (or /v1/, which the pinned SDK calls), the key in
  `x-goog-api-key` (a wrong or missing one is 400 INVALID_ARGUMENT "API key not valid", as Google
  answers); an unknown model 404 NOT_FOUND.
- The body: `contents[].parts[]` of `text` and `inlineData {mimeType, data}` (proto JSON: snake_case
  names are accepted too, as Google does); `generationConfig`
  `responseModalities` (without IMAGE: a text-only answer) and `imageConfig {aspectRatio, imageSize}`
  (an aspect ratio or size Gemini does not draw: 400 INVALID_ARGUMENT).
- The answer: `candidates[0].content.parts` with a text part and an `inlineData` PNG of the size the
  image config means, `finishReason` STOP, and `usageMetadata` (prompt and candidate tokens by modality).
- `GET /v1beta/models/{model}` (models.get): the model's card, with the same key and model refusals.
- A prompt with "forbidden" finishes IMAGE_SAFETY, with "prohibited" IMAGE_PROHIBITED_CONTENT: no image.
- Failures scripted per request (`fail_next`): rate_limit (429 RESOURCE_EXHAUSTED), server_error (500
  INTERNAL), unavailable (503 UNAVAILABLE).
"""

import base64
import io
import json
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from PIL import Image
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.support.local_server import LocalServer

KEY = "fake-gemini-key-0000"
MODELS = ("gemini-nano-banana-2.1", "gemini-3-pro-image")
RATIOS = {
    "1:1": (1024, 1024),
    "2:3": (848, 1264),
    "3:2": (1264, 848),
    "3:4": (896, 1200),
    "4:3": (1200, 896),
    "4:5": (928, 1152),
    "5:4": (1152, 928),
    "9:16": (768, 1376),
    "16:9": (1376, 768),
    "21:9": (1584, 672),
}
SCALE = {"1K": 1, "2K": 2, "4K": 4}
FAILURES = {
    "rate_limit": (429, "RESOURCE_EXHAUSTED"),
    "server_error": (500, "INTERNAL"),
    "unavailable": (503, "UNAVAILABLE"),
}


@dataclass
class Recorded:
    model: str
    headers: dict[str, str]
    body: Any


def _error(code: int, status: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message, "status": status}}, code)


class FakeGemini(LocalServer):
    def __init__(self) -> None:
        super().__init__()
        self.requests: list[Recorded] = []
        self._script: deque[str] = deque()
        self.app = Starlette(
            routes=[
                Route("/{version}/models/{call}", self._call, methods=["POST"]),
                Route("/{version}/models/{model}", self._model, methods=["GET"]),
            ]
        )

    def fail_next(self, kind: str, times: int = 1) -> None:
        assert kind in FAILURES, kind
        self._script.extend([kind] * times)

    def reset(self) -> None:
        self.requests.clear()
        self._script.clear()

    async def _model(self, request: Request) -> JSONResponse:
        """models.get: the model's card, after the same key and model checks as a call."""
        model = request.path_params["model"]
        self.requests.append(Recorded(model, dict(request.headers), None))
        if request.path_params["version"] not in ("v1", "v1beta"):
            return _error(404, "NOT_FOUND", "Not found.")
        if request.headers.get("x-goog-api-key") != KEY:
            return _error(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.")
        if model not in MODELS:
            return _error(404, "NOT_FOUND", f"models/{model} is not found for API version v1beta.")
        return JSONResponse(
            {
                "name": f"models/{model}",
                "version": "001",
                "displayName": model,
                "inputTokenLimit": 32768,
                "outputTokenLimit": 32768,
                "supportedGenerationMethods": ["generateContent", "countTokens"],
            }
        )

    async def _call(self, request: Request) -> JSONResponse:
        model, _, method = request.path_params["call"].partition(":")
        if request.path_params["version"] not in ("v1", "v1beta"):
            return _error(404, "NOT_FOUND", "Not found.")
        raw = await request.body()
        try:
            body = json.loads(raw)
        except ValueError:
            return _error(400, "INVALID_ARGUMENT", "Invalid JSON payload received.")
        self.requests.append(Recorded(model, dict(request.headers), body))
        if method != "generateContent":
            return _error(404, "NOT_FOUND", f"Method {method} not found.")
        if request.headers.get("x-goog-api-key") != KEY:
            return _error(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.")
        if model not in MODELS:
            return _error(404, "NOT_FOUND", f"models/{model} is not found for API version v1beta.")
        if self._script:
            code, status = FAILURES[self._script.popleft()]
            return _error(code, status, "scripted failure")
        contents = body.get("contents")
        if not isinstance(contents, list) or not contents or not contents[0].get("parts"):
            return _error(
                400, "INVALID_ARGUMENT", "* GenerateContentRequest.contents: contents is not specified"
            )
        parts = contents[0]["parts"]
        prompt = " ".join(p.get("text", "") for p in parts if "text" in p)
        images = [p["inlineData"] for p in parts if "inlineData" in p]
        for image in images:  # bytes are base64 in JSON, standard or URL-safe (as the SDK sends them)
            if (image.get("mimeType") or image.get("mime_type")) not in (
                "image/png",
                "image/jpeg",
                "image/webp",
            ):
                return _error(400, "INVALID_ARGUMENT", "Unsupported MIME type of an inline image.")
            try:
                base64.b64decode(image["data"].replace("-", "+").replace("_", "/"), validate=True)
            except ValueError:
                return _error(
                    400, "INVALID_ARGUMENT", "Invalid value at 'contents[0].parts[1].inline_data.data'"
                )
        config = body.get("generationConfig") or {}
        image_config = config.get("imageConfig") or {}
        ratio, tier = image_config.get("aspectRatio", "1:1"), image_config.get("imageSize", "1K")
        if ratio not in RATIOS:
            return _error(400, "INVALID_ARGUMENT", f"Unsupported aspect ratio: {ratio}")
        if tier not in SCALE:
            return _error(400, "INVALID_ARGUMENT", f"Unsupported image size: {tier}")
        words = len(prompt.split())
        usage = {
            "promptTokenCount": words + 258 * len(images),
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": words}]
            + ([{"modality": "IMAGE", "tokenCount": 258 * len(images)}] if images else []),
            "totalTokenCount": words + 258 * len(images) + 1290 + 12,
        }
        if "forbidden" in prompt or "prohibited" in prompt:
            reason = "IMAGE_SAFETY" if "forbidden" in prompt else "IMAGE_PROHIBITED_CONTENT"
            candidate = {"content": {"role": "model", "parts": []}, "finishReason": reason, "index": 0}
            return JSONResponse({"candidates": [candidate], "usageMetadata": usage, "modelVersion": model})
        out_parts: list[dict[str, Any]] = [{"text": f"Here is {prompt}, drawn."}]
        if "IMAGE" in (config.get("responseModalities") or []):
            width, height = (n * SCALE[tier] for n in RATIOS[ratio])
            picture = Image.new("RGB", (width // 4, height // 4), (200, 160, 40)).resize((width, height))
            out = io.BytesIO()
            picture.save(out, format="PNG", compress_level=1)
            out_parts.append(
                {"inlineData": {"mimeType": "image/png", "data": base64.b64encode(out.getvalue()).decode()}}
            )
        usage |= {
            "candidatesTokenCount": 1290 + 12,
            "candidatesTokensDetails": [
                {"modality": "IMAGE", "tokenCount": 1290},
                {"modality": "TEXT", "tokenCount": 12},
            ],
        }
        candidate = {"content": {"role": "model", "parts": out_parts}, "finishReason": "STOP", "index": 0}
        return JSONResponse(
            {
                "candidates": [candidate],
                "usageMetadata": usage,
                "modelVersion": model,
                "responseId": str(time.time()),
            }
        )
