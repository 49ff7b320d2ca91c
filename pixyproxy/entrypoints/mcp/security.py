"""DNS-rebinding protection of /mcp: a request whose Host is not a name this server is reached by, or
whose Origin (sent by browsers) is not an allowed one, is refused before the MCP SDK sees it. A page on
another site whose name an attacker points at 127.0.0.1 would otherwise drive a local PixyProxy's tools
from the visitor's browser.

Allowed: the loopback names (any port), the address the server listens on, and what
PIXYPROXY_MCP_ALLOWED_HOSTS and PIXYPROXY_MCP_ALLOWED_ORIGINS add (PIXYPROXY_CORS_ORIGINS counts as
allowed origins too). "*" in either turns that check off."""

from dataclasses import dataclass

from mcp.server.transport_security import TransportSecuritySettings
from starlette.datastructures import Headers
from starlette.types import Scope

LOOPBACK = ("127.0.0.1", "localhost", "[::1]")
ANY_ADDRESS = ("", "0.0.0.0", "::", "[::]")  # listening on every address: no one name
ANY = "*"


def _names(values: list[str]) -> list[str]:
    """Each name (or origin) as itself and, when it names no port, on any port too."""
    out: list[str] = []
    for value in values:
        value = value.lower()
        out.append(value)
        if ":" not in value.split("://", 1)[-1].rsplit("]", 1)[-1]:
            out.append(f"{value}:*")
    return out


def _listening_name(host: str) -> list[str]:
    if host in ANY_ADDRESS or host in LOOPBACK:
        return []
    return [f"[{host}]" if ":" in host else host]


def security_settings(
    hosts: list[str], origins: list[str], cors_origins: list[str], listen_host: str
) -> TransportSecuritySettings:
    """The Host and Origin values /mcp answers, in the SDK's terms (exact, or `name:*` for any port).
    Checked by `refusal`, before the SDK, so a refusal is a JSON-RPC error like every other at /mcp."""
    if ANY in hosts and ANY in origins:
        return TransportSecuritySettings(enable_dns_rebinding_protection=False)
    names = [*LOOPBACK, *_listening_name(listen_host), *(h for h in hosts if h != ANY)]
    allowed_origins = [f"{scheme}://{name}" for name in names for scheme in ("http", "https")]
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=[ANY] if ANY in hosts else _names(names),
        allowed_origins=[ANY] if ANY in origins else _names([*allowed_origins, *cors_origins, *origins]),
    )


def _allowed(value: str, allowed: list[str]) -> bool:
    if ANY in allowed or value in allowed:
        return True
    return any(
        pattern.endswith(":*") and value.startswith(pattern[:-1]) and value[len(pattern) - 1 :].isdigit()
        for pattern in allowed
    )


@dataclass(frozen=True)
class Refusal:
    status: int
    code: str
    detail: str


def refusal(scope: Scope, settings: TransportSecuritySettings) -> Refusal | None:
    """Why a request to /mcp is refused by its Host or Origin header, or None."""
    if not settings.enable_dns_rebinding_protection:
        return None
    headers = Headers(scope=scope)
    host = headers.get("host", "")
    if not _allowed(host.lower(), settings.allowed_hosts):
        detail = f"Host {host[:100]!r} is not a name /mcp answers to (PIXYPROXY_MCP_ALLOWED_HOSTS)"
        return Refusal(421, "misdirected_request", detail)
    origin = headers.get("origin")
    if origin is not None and not _allowed(origin.lower(), settings.allowed_origins):
        detail = f"Origin {origin[:100]!r} may not use /mcp (PIXYPROXY_MCP_ALLOWED_ORIGINS)"
        return Refusal(403, "forbidden", detail)
    return None
