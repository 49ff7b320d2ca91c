"""API keys: with keys configured, every route but the public ones needs `Authorization: Bearer <key>`
or `X-API-Key: <key>`; anything else is refused with 401 (raised, rendered by the error middleware).

Only SHA-256 digests of keys are held in memory. A presented key is hashed and compared with every
configured digest by `hmac.compare_digest`, without stopping at a match, so the time taken says nothing
about which digest (or how much of one) matched. Keys are never logged or echoed.

A pure ASGI middleware, installed only when keys are configured: with none, requests pay nothing.
"""

import hashlib
import hmac
import logging
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from starlette.exceptions import HTTPException

from pixyproxy.domain.models import Caller

log = logging.getLogger(__name__)

# Liveness and readiness stay open for orchestrators; the docs show only what the API looks like, and a
# browser loads /openapi.json without the key, so /docs needs them open to work at all.
PUBLIC_PATHS = frozenset(
    {
        "/healthz",
        "/healthz/",
        "/readyz",
        "/readyz/",
        "/docs",
        "/docs/oauth2-redirect",
        "/redoc",
        "/openapi.json",
    }
)
# The scope keys where the middleware leaves who the caller is: a digest prefix (never the key), and
# the domain's Caller for the use cases.
CLIENT_SCOPE_KEY = "pixyproxy.client"
CALLER_SCOPE_KEY = "pixyproxy.caller"
UNAUTHORIZED = "a valid API key is required: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'"
_HEX_DIGEST = re.compile(r"^[0-9a-fA-F]{64}$")
SCHEMES = {
    "BearerApiKey": {
        "type": "http",
        "scheme": "bearer",
        "description": "An API key sent as `Authorization: Bearer <key>`.",
    },
    "HeaderApiKey": {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": "The same API key sent as `X-API-Key: <key>`.",
    },
}


def key_digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def load_key_digests(keys: str | None, keys_file: Path | None) -> list[bytes]:
    """Digests of the comma-separated `keys` plus those listed (hex, one per line) in `keys_file`."""
    digests = [key_digest(key.strip()) for key in (keys or "").split(",") if key.strip()]
    if keys_file is not None:
        try:
            lines = Path(keys_file).read_text().splitlines()
        except OSError as exc:
            raise ValueError(f"cannot read the API key file {keys_file}: {exc.strerror}") from exc
        for number, line in enumerate(lines, 1):
            entry = line.split("#", 1)[0].strip()
            if not entry:
                continue
            if not _HEX_DIGEST.match(entry):  # never echo the line: it may be a key pasted by mistake
                raise ValueError(f"{keys_file}:{number}: not a SHA-256 hex digest of a key")
            digests.append(bytes.fromhex(entry))
    return digests


def presented_key(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """The key a request carries: the first `Authorization: Bearer`, else the first `X-API-Key`."""
    bearer = header_key = None
    for name, value in headers:
        if name == b"authorization" and bearer is None:
            scheme, _, token = value.decode("latin-1").strip().partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                bearer = token.strip()
        elif name == b"x-api-key" and header_key is None:
            header_key = value.decode("latin-1").strip() or None
    return bearer if bearer is not None else header_key


class ApiKeyMiddleware:
    def __init__(
        self,
        app,
        digests: list[bytes],
        public_paths: frozenset[str] = PUBLIC_PATHS,
    ) -> None:
        if not digests:
            raise ValueError("ApiKeyMiddleware needs at least one key")
        self.app = app
        self.digests = list(digests)
        self.public_paths = public_paths

    def identify(self, key: str | None) -> str | None:
        """A stable, non-secret name for the matching key (a digest prefix), or None."""
        if key is None:
            return None
        candidate = key_digest(key)
        matched = None
        for digest in self.digests:  # no early exit: every digest is compared every time
            if hmac.compare_digest(digest, candidate):
                matched = digest
        return f"key:{matched.hex()[:16]}" if matched is not None else None

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["path"] in self.public_paths:
            await self.app(scope, receive, send)
            return
        key = presented_key(scope["headers"])
        client = self.identify(key)
        if client is None:
            log.warning(
                "refused %s %s: %s API key",
                scope["method"],
                scope["path"],
                "no" if key is None else "a wrong",
            )
            raise HTTPException(401, UNAUTHORIZED, {"WWW-Authenticate": "Bearer"})
        scope[CLIENT_SCOPE_KEY] = client
        scope[CALLER_SCOPE_KEY] = Caller(name=client)
        await self.app(scope, receive, send)


def document_security(schema: dict[str, Any], public_paths: frozenset[str] = PUBLIC_PATHS) -> None:
    """Declare the key schemes in an OpenAPI schema, require them on every non-public operation, add 401."""
    schema.setdefault("components", {}).setdefault("securitySchemes", {}).update(SCHEMES)
    unauthorized = {
        "description": "No API key, or not a valid one.",
        "headers": {"WWW-Authenticate": {"schema": {"type": "string"}, "description": "`Bearer`"}},
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorModel"}}},
    }
    for path, item in schema.get("paths", {}).items():
        for method, operation in item.items():
            if method not in ("get", "head", "post", "put", "patch", "delete", "options"):
                continue
            if path in public_paths:
                operation["security"] = []
            else:
                operation["security"] = [{name: []} for name in SCHEMES]
                operation.setdefault("responses", {}).setdefault("401", unauthorized)
