"""A fake Azure OpenAI resource's image API, from Microsoft's public documentation: real HTTP on a random
127.0.0.1 port, driven through the openai SDK's AsyncAzureOpenAI.

- `POST /openai/deployments/{deployment}/images/generations` (and `/images/edits`, multipart) with
  `?api-version=` (missing: 400 MissingApiVersionParameter; one the resource does not know: 404 Resource
  not found) and the key in the `api-key` header (wrong or missing: 401 "Access denied due to invalid
  subscription key"); a deployment it does not have: 404 DeploymentNotFound.
- `GET /openai/models?api-version=` (Models - List): the models the resource's deployments serve, behind
  the same api-version and key refusals.
- Each deployment serves an OpenAI model and refuses what that model refuses (fake_openai's rules).
- A prompt with "filtered" is refused by the content filter: 400 `content_filter`, its inner error
  ResponsibleAIPolicyViolation with `content_filter_result` per category (violence filtered, medium).
- Failures scripted per request (`fail_next`): rate_limit (429, Retry-After), server_error (500).
"""

import base64
import json
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.support.fake_openai import _gpt_image_refusal, _parse_multipart, _png
from tests.support.local_server import LocalServer

KEY = "fake-azure-key-0000"
API_VERSIONS = ("2025-04-01-preview", "2025-10-01-preview")


@dataclass
class Recorded:
    deployment: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


def _error(status: int, code: str, message: str, **more: Any) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message, **more}}, status)


class FakeAzure(LocalServer):
    def __init__(self, deployments: dict[str, str] | None = None) -> None:
        super().__init__()
        self.deployments = deployments or {"my-gpt-image": "gpt-image-2.6-sunburst"}
        self.requests: list[Recorded] = []
        self._failures: deque[str] = deque()
        path = "/openai/deployments/{deployment}/images/{operation}"
        self.app = Starlette(
            routes=[
                Route(path, self._images, methods=["POST"]),
                Route("/openai/models", self._models, methods=["GET"]),
            ]
        )

    def fail_next(self, kind: str, times: int = 1) -> None:
        assert kind in ("rate_limit", "server_error"), kind
        self._failures.extend([kind] * times)

    def reset(self) -> None:
        self.requests.clear()
        self._failures.clear()

    async def _models(self, request: Request) -> Response:
        """Models - List: what the resource can deploy, behind the same api-version and key checks."""
        self.requests.append(
            Recorded("", request.url.path, dict(request.query_params), dict(request.headers), None)
        )
        refusal = self._refused(request)
        if refusal is not None:
            return refusal
        models = sorted(set(self.deployments.values()))
        return JSONResponse(
            {
                "object": "list",
                "data": [
                    {
                        "id": model,
                        "object": "model",
                        "created_at": 1764547200,
                        "status": "succeeded",
                        "lifecycle_status": "generally-available",
                        "capabilities": {"inference": True, "fine_tune": False},
                    }
                    for model in models
                ],
            }
        )

    def _refused(self, request: Request) -> Response | None:
        version = request.query_params.get("api-version")
        if not version:
            return _error(
                400,
                "MissingApiVersionParameter",
                "The api-version query parameter (?api-version=) is required for all requests.",
            )
        if version not in API_VERSIONS:
            return _error(404, "404", "Resource not found")
        if request.headers.get("api-key") != KEY:
            return _error(
                401,
                "401",
                "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide "
                "a valid key for an active subscription and use a correct regional API endpoint for your "
                "resource.",
            )
        return None

    async def _images(self, request: Request) -> Response:
        deployment, operation = request.path_params["deployment"], request.path_params["operation"]
        raw = await request.body()
        content_type = request.headers.get("content-type", "")
        body: Any = _parse_multipart(content_type, raw) if "multipart" in content_type else json.loads(raw)
        self.requests.append(
            Recorded(deployment, request.url.path, dict(request.query_params), dict(request.headers), body)
        )
        if operation not in ("generations", "edits"):
            return _error(404, "404", "Resource not found")
        refusal = self._refused(request)
        if refusal is not None:
            return refusal
        if deployment not in self.deployments:
            return _error(
                404,
                "DeploymentNotFound",
                "The API deployment for this resource does not exist. If you created the deployment within "
                "the last 5 minutes, please wait a moment and try again.",
            )
        if self._failures:
            if self._failures.popleft() == "rate_limit":
                response = _error(
                    429, "429", "Requests to the Images_Generations Operation have exceeded the rate limit."
                )
                response.headers["retry-after"] = "1"
                return response
            return _error(500, "InternalServerError", "The server had an error processing your request.")
        prompt = str(body.get("prompt", ""))
        if "filtered" in prompt:
            verdicts = {
                "hate": {"filtered": False, "severity": "safe"},
                "self_harm": {"filtered": False, "severity": "safe"},
                "sexual": {"filtered": False, "severity": "safe"},
                "violence": {"filtered": True, "severity": "medium"},
            }
            return _error(
                400,
                "content_filter",
                "The response was filtered due to the prompt triggering Azure OpenAI's content management "
                "policy.",
                param="prompt",
                type=None,
                innererror={"code": "ResponsibleAIPolicyViolation", "content_filter_result": verdicts},
            )
        refusal = _gpt_image_refusal({**body, "model": self.deployments[deployment]})
        if refusal is not None:
            return refusal
        size = str(body.get("size") or "1024x1024")
        size = "1024x1024" if size == "auto" else size
        fmt = str(body.get("output_format") or "png")
        data = _png(size, fmt="png" if fmt in ("gif", "svg") else fmt)
        usage = {
            "input_tokens": 10,
            "input_tokens_details": {"text_tokens": 10, "image_tokens": 0},
            "output_tokens": 1056,
            "output_tokens_details": {"image_tokens": 1056, "text_tokens": 0},
            "total_tokens": 1066,
        }
        answer = {
            "created": int(time.time()),
            "data": [{"b64_json": base64.b64encode(data).decode()}],
            "size": size,
            "output_format": fmt,
            "usage": usage,
        }
        return JSONResponse(answer)
