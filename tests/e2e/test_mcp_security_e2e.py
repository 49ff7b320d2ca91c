"""DNS-rebinding protection of /mcp against the real server: a Host that is not one of this server's names,
or a browser's Origin from another site, is refused with the protocol's error before any MCP handling;
the loopback names, PIXYPROXY_MCP_ALLOWED_HOSTS / _ORIGINS and the CORS origins are answered."""

import httpx
import pytest

from tests.e2e.mcp_support import ACCEPT, OPENING
from tests.e2e.server import run_server

ENV = {
    "PIXYPROXY_MCP_ALLOWED_HOSTS": "pixyproxy.example.com,other.example:8443",
    "PIXYPROXY_MCP_ALLOWED_ORIGINS": "https://chat.example",
    "PIXYPROXY_CORS_ORIGINS": "https://app.example",
}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with run_server(tmp_path_factory.mktemp("mcp-security"), ENV, timeout=60) as running:
        yield running


def opening(server, **headers: str) -> httpx.Response:
    return httpx.post(f"{server.base_url}/mcp", json=OPENING, headers={**ACCEPT, **headers}, timeout=30)


@pytest.mark.parametrize(
    "host",
    [
        "evil.example",
        "evil.example:80",
        "127.0.0.1.evil.example",
        "localhost:80@evil.example",
        "other.example:1",
    ],
)
def test_a_foreign_host_is_refused_with_the_protocols_error(server, host):
    answer = opening(server, Host=host)
    assert answer.status_code == 421
    body = answer.json()
    assert body["jsonrpc"] == "2.0" and body["id"] is None and body["error"]["code"] == -32600
    assert "PIXYPROXY_MCP_ALLOWED_HOSTS" in body["error"]["message"]
    assert body["error"]["data"] == {
        "code": "misdirected_request",
        "request_id": answer.headers["x-request-id"],
    }
    assert "mcp-session-id" not in answer.headers
    # Only /mcp checks: the HTTP API is protected by its keys and CORS, not by names.
    assert httpx.get(f"{server.base_url}/healthz", headers={"Host": host}).status_code == 200


@pytest.mark.parametrize("origin", ["http://evil.example", "http://localhost.evil.example", "null"])
def test_a_foreign_origin_is_refused_with_the_protocols_error(server, origin):
    answer = opening(server, Origin=origin)
    assert answer.status_code == 403
    body = answer.json()
    assert body["error"]["code"] == -32600 and body["error"]["data"]["code"] == "forbidden"
    assert "PIXYPROXY_MCP_ALLOWED_ORIGINS" in body["error"]["message"]


@pytest.mark.parametrize(
    "headers",
    [
        {},  # httpx sends Host: 127.0.0.1:<port>
        {"Host": "localhost"},
        {"Host": "localhost:8001", "Origin": "http://localhost:3000"},
        {"Host": "[::1]:8001", "Origin": "http://127.0.0.1:5173"},
        {"Host": "pixyproxy.example.com"},
        {"Host": "PixyProxy.Example.com:443", "Origin": "https://pixyproxy.example.com"},
        {"Host": "other.example:8443", "Origin": "https://chat.example"},
        {"Origin": "https://app.example"},  # a CORS origin
    ],
    ids=lambda h: " ".join(f"{k}={v}" for k, v in h.items()) or "plain",
)
def test_the_servers_own_names_and_origins_are_answered(server, headers):
    answer = opening(server, **headers)
    assert answer.status_code == 200, answer.text
    assert answer.headers["mcp-session-id"]


def test_a_star_turns_the_checks_off(tmp_path):
    env = {"PIXYPROXY_MCP_ALLOWED_HOSTS": "*", "PIXYPROXY_MCP_ALLOWED_ORIGINS": "*"}
    with run_server(tmp_path, env, timeout=60) as server:
        assert opening(server, Host="anything.example", Origin="http://anything.example").status_code == 200
