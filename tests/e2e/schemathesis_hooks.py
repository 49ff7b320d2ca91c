"""Checks schemathesis runs on every response besides its own (loaded via SCHEMATHESIS_HOOKS).

Every response carries X-Request-ID; every error is the one JSON shape with that id (OpenAI's shape on the
OpenAI-compatible /v1 face); PNG content is served with nosniff. Each checked error is counted in the file
PIXYPROXY_ST_SEEN names, so the test can tell these checks really ran.
"""

import json
import os
from urllib.parse import urlsplit

import schemathesis

ERROR_KEYS = {"detail", "code", "request_id"}
OPENAI_ERROR_KEYS = {"message", "type", "param", "code"}


def _first(response, name: str) -> str | None:
    values = response.headers.get(name.lower())
    return values[0] if values else None


@schemathesis.check
def pixyproxy_error_shape(ctx, response, case) -> None:
    request_id = _first(response, "x-request-id")
    if not request_id:
        raise AssertionError("the response has no X-Request-ID header")
    if (
        _first(response, "content-type") == "image/png"
        and _first(response, "x-content-type-options") != "nosniff"
    ):
        raise AssertionError("PNG content without X-Content-Type-Options: nosniff")
    if response.status_code < 400 or response.request.method == "HEAD":
        return
    content_type = _first(response, "content-type") or ""
    if content_type != "application/json":
        raise AssertionError(f"error {response.status_code} is {content_type!r}, not application/json")
    try:
        body = json.loads(response.content)
    except ValueError as exc:
        raise AssertionError(f"error {response.status_code} body is not JSON") from exc
    if urlsplit(response.request.url or "").path.startswith("/v1/"):
        _openai_error_shape(response, body)
        return
    if not isinstance(body, dict) or not set(body) >= ERROR_KEYS:
        raise AssertionError(f"error {response.status_code} is not the error shape: {body!r:.200}")
    if not all(isinstance(body[key], str) and body[key] for key in ERROR_KEYS):
        raise AssertionError(f"error {response.status_code} has empty or non-string fields: {body!r:.200}")
    if body["request_id"] != request_id:
        raise AssertionError("the error's request_id is not the X-Request-ID header")
    if "Traceback" in body["detail"]:
        raise AssertionError("an error shows a traceback")
    seen = os.environ.get("PIXYPROXY_ST_SEEN")
    if seen:
        with open(seen, "a") as handle:
            handle.write(f"{response.status_code} {body['code']}\n")


def _openai_error_shape(response, body) -> None:
    """The OpenAI-compatible face answers errors as OpenAI does: {"error": {message, type, param, code}}."""
    error = body.get("error") if isinstance(body, dict) else None
    if set(body) != {"error"} or not isinstance(error, dict) or set(error) != OPENAI_ERROR_KEYS:
        raise AssertionError(f"/v1 error {response.status_code} is not OpenAI's shape: {body!r:.200}")
    if not (isinstance(error["message"], str) and error["message"] and isinstance(error["type"], str)):
        raise AssertionError(f"/v1 error {response.status_code} has no message or type: {body!r:.200}")
    if "Traceback" in error["message"]:
        raise AssertionError("an error shows a traceback")
    seen = os.environ.get("PIXYPROXY_ST_SEEN")
    if seen:
        with open(seen, "a") as handle:
            handle.write(f"{response.status_code} {error['code']}\n")
