"""Checks schemathesis runs on every response besides its own (loaded via SCHEMATHESIS_HOOKS).

Every response carries X-Request-ID; every error is the one JSON shape with that id; PNG content is
served with nosniff. Each checked error is counted in the file PIXYPROXY_ST_SEEN names, so the test
can tell these checks really ran.
"""

import json
import os

import schemathesis

ERROR_KEYS = {"detail", "code", "request_id"}


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
