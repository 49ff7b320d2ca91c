"""API keys: with keys configured, every route but the public ones needs `Authorization: Bearer <key>`
or `X-API-Key: <key>`; anything else is refused with 401 (raised, rendered by the request guard).

Each key has a name and a role (docs/security.md): `name:role:sha256hex` lines in the keys file, bare
digests (a user named by the digest's first 8 hex digits), or PIXYPROXY_API_KEYS entries `key` or
`name:role:key`. Only SHA-256 digests of keys are held in memory. A presented key is hashed and
compared with every configured digest by `hmac.compare_digest`, without stopping at a match, so the
time taken says nothing about which digest (or how much of one) matched. Keys are never logged or echoed.

A check the request guard runs, installed only when keys are configured: with none, requests pay nothing.
"""

import hashlib
import hmac
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.exceptions import HTTPException

from pixyproxy.domain.models import Caller
from pixyproxy.entrypoints.api_docs import PUBLIC_PATHS as DOCS_PATHS
from pixyproxy.entrypoints.gallery import PUBLIC_PATHS as GALLERY_PATHS

log = logging.getLogger(__name__)

# Liveness and readiness stay open for orchestrators; the docs show only what the API looks like, and a
# browser loads /openapi.json without the key, so /docs needs them open to work at all.
PUBLIC_PATHS = (
    frozenset({"/healthz", "/healthz/", "/readyz", "/readyz/"}) | DOCS_PATHS | GALLERY_PATHS
)  # the gallery page holds no data, and must load before it can ask for a key
# The scope keys where the check leaves who the caller is: `key:<name>` (never the key), and the
# domain's Caller (name and role) for the use cases.
# Every tenant's usage shows there: an admin key or the scrape key (PIXYPROXY_METRICS_KEY) only.
METRICS_PATHS = frozenset({"/metrics", "/metrics/"})
METRICS_FORBIDDEN = "/metrics shows every key's usage: it needs an admin key or the metrics scrape key"
CLIENT_SCOPE_KEY = "pixyproxy.client"
CALLER_SCOPE_KEY = "pixyproxy.caller"
UNAUTHORIZED = "a valid API key is required: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'"
_HEX_DIGEST = re.compile(r"^[0-9a-fA-F]{64}$")
KEY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
ROLES = frozenset({"user", "admin"})
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


@dataclass(frozen=True)
class ApiKey:
    """One configured key: its digest (never the key) and who holds it."""

    digest: bytes
    caller: Caller


def _unnamed(digest: bytes) -> ApiKey:
    """A key given without a name is a user named by its digest's first 8 hex digits."""
    return ApiKey(digest, Caller(name=digest.hex()[:8], role="user"))


def _named(name: str, role: str, digest: bytes, where: str) -> ApiKey:
    if not KEY_NAME.match(name):
        raise ValueError(f"{where}: a key's name is 1-64 letters, digits, '.', '_' or '-'")
    if role not in ROLES:
        raise ValueError(f"{where}: a key's role is one of {', '.join(sorted(ROLES))}")
    return ApiKey(digest, Caller(name=name, role=role))


def _env_key(entry: str, number: int) -> ApiKey:
    """`key` (a user named by digest prefix) or `name:role:key`: an entry with a colon is the latter, so a
    mistyped role stops the start instead of making the whole entry one valid key."""
    if ":" not in entry:
        return _unnamed(key_digest(entry))
    where = f"PIXYPROXY_API_KEYS entry {number}"
    name, _, rest = entry.partition(":")
    role, _, key = rest.partition(":")
    if not key:  # never echo the entry: it holds a key
        raise ValueError(f"{where}: write a key alone or as name:role:key")
    return _named(name, role, key_digest(key), where)


def load_keys(keys: str | None, keys_file: Path | None) -> list[ApiKey]:
    """The comma-separated `keys` plus the lines of `keys_file`: `name:role:sha256hex` or a bare
    `sha256hex` (# starts a comment). Two keys with one name, or one digest twice, stop the start."""
    entries = [entry.strip() for entry in (keys or "").split(",")]
    found = [_env_key(entry, number) for number, entry in enumerate(entries, 1) if entry]
    if keys_file is not None:
        try:
            lines = Path(keys_file).read_text().splitlines()
        except OSError as exc:
            raise ValueError(f"cannot read the API key file {keys_file}: {exc.strerror}") from exc
        for number, line in enumerate(lines, 1):
            entry = line.split("#", 1)[0].strip()
            if not entry:
                continue
            where = f"{keys_file}:{number}"
            *parts, digest = entry.rsplit(":", 2)
            # Never echo the line: it may be a key pasted by mistake.
            if not _HEX_DIGEST.match(digest) or len(parts) not in (0, 2):
                raise ValueError(f"{where}: not a SHA-256 hex digest of a key (or name:role:digest)")
            raw = bytes.fromhex(digest)
            found.append(_named(parts[0], parts[1], raw, where) if parts else _unnamed(raw))
    names: dict[str, ApiKey] = {}
    for key in found:
        other = names.setdefault(key.caller.name, key)
        if other is not key:
            what = "the same key twice" if other.digest == key.digest else "two keys"
            raise ValueError(f"API keys: {what} named {key.caller.name!r}; each key needs its own name")
    return found


def load_key_digests(keys: str | None, keys_file: Path | None) -> list[bytes]:
    """Digests of the configured keys (see load_keys)."""
    return [key.digest for key in load_keys(keys, keys_file)]


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


class ApiKeyCheck:
    """The key check, run by the request guard (guard.py) before anything reads the request: it refuses
    (raises) or leaves the caller in the scope."""

    def __init__(
        self,
        keys: list[ApiKey] | None = None,
        public_paths: frozenset[str] = PUBLIC_PATHS,
        digests: list[bytes] | None = None,
        metrics_key: str | None = None,
    ) -> None:
        keys = [*(keys or ()), *(_unnamed(d) for d in digests or ())]
        if not keys and not metrics_key:
            raise ValueError("the API key check needs at least one key")
        self.keys = keys
        self.digests = [key.digest for key in keys]
        # With only a scrape key configured, /metrics is all there is to guard.
        self.public_paths = public_paths if keys else None
        self.metrics_digest = key_digest(metrics_key) if metrics_key else None

    def caller_for(self, key: str | None) -> Caller | None:
        """Who holds the presented key, or None."""
        if key is None:
            return None
        candidate = key_digest(key)
        matched = None
        for entry in self.keys:  # no early exit: every digest is compared every time
            if hmac.compare_digest(entry.digest, candidate):
                matched = entry.caller
        return matched

    def identify(self, key: str | None) -> str | None:
        """A stable, non-secret name for the matching key (`key:<its name>`), or None."""
        caller = self.caller_for(key)
        return f"key:{caller.name}" if caller is not None else None

    def is_metrics_key(self, key: str | None) -> bool:
        if key is None or self.metrics_digest is None:
            return False
        return hmac.compare_digest(self.metrics_digest, key_digest(key))

    async def admit(self, scope) -> None:
        if scope["path"] in METRICS_PATHS:
            self._admit_scrape(scope)
            return
        if self.public_paths is None or scope["path"] in self.public_paths:
            return
        key = presented_key(scope["headers"])
        caller = self.caller_for(key)
        if caller is None:
            log.warning(
                "refused %s %s: %s API key",
                scope["method"],
                scope["path"],
                "no" if key is None else "a wrong",
            )
            raise HTTPException(401, UNAUTHORIZED, {"WWW-Authenticate": "Bearer"})
        scope[CLIENT_SCOPE_KEY] = f"key:{caller.name}"
        scope[CALLER_SCOPE_KEY] = caller

    def _admit_scrape(self, scope) -> None:
        """/metrics: the scrape key or an admin key; a user key is known but not enough (403)."""
        key = presented_key(scope["headers"])
        caller = self.caller_for(key)
        if self.is_metrics_key(key) or (caller is not None and caller.is_admin):
            return
        if caller is None:
            log.warning(
                "refused %s %s: %s key", scope["method"], scope["path"], "no" if key is None else "a wrong"
            )
            raise HTTPException(401, UNAUTHORIZED, {"WWW-Authenticate": "Bearer"})
        log.warning("refused %s %s: key %s is not an admin key", scope["method"], scope["path"], caller.name)
        raise HTTPException(403, METRICS_FORBIDDEN)


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
