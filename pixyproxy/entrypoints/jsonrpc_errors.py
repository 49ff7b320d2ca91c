"""A refusal of an HTTP request to /mcp (no key, a body too large, a rate limit) in JSON-RPC's error
shape, so an MCP client reports it as a protocol error; the HTTP status stays what the API answers."""

from typing import Any

MCP_PATHS = frozenset({"/mcp", "/mcp/"})
INVALID_REQUEST, INTERNAL_ERROR = -32600, -32603


def is_mcp_path(path: str) -> bool:
    return path in MCP_PATHS


def jsonrpc_error(status: int, code: str, detail: str, request_id: str) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": None,
        "error": {
            "code": INTERNAL_ERROR if status >= 500 else INVALID_REQUEST,
            "message": detail,
            "data": {"code": code, "request_id": request_id},
        },
    }
