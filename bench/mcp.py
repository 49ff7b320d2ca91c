"""MCP overhead: p50 of `tools/call generate_image` at /mcp minus p50 of `POST /image/`, on the offline
generator (latency 0), one worker. Goal: <= 10 ms.

Both are sent by one HTTP client in this process over one keep-alive connection, alternating request by
request, so a loaded machine weighs on both alike. The MCP call is a plain POST in an initialized session
(the server answers as an SSE stream, read to its end); what the official client adds on its side is not
the server's overhead and is left out. The call's answer carries a 512-px WebP preview the plain POST does
not: that encode is part of what is measured.

    python -m bench.mcp                # 200 of each, printed; a `BENCH_FIGURE {json}` line
    python -m bench.mcp --rounds 30    # shorter
"""

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from bench import servers

GOAL_MS = 10.0
ACCEPT = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
VERSION = "2025-06-18"


def open_session(http: httpx.Client) -> dict[str, str]:
    """Initialize an MCP session; the headers every later message carries."""
    opening = {
        "jsonrpc": "2.0",
        "id": 0,
        "method": "initialize",
        "params": {
            "protocolVersion": VERSION,
            "capabilities": {},
            "clientInfo": {"name": "bench", "version": "1"},
        },
    }
    answer = http.post("/mcp", json=opening, headers=ACCEPT)
    answer.raise_for_status()
    headers = {**ACCEPT, "Mcp-Session-Id": answer.headers["mcp-session-id"], "MCP-Protocol-Version": VERSION}
    http.post("/mcp", json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=headers)
    return headers


def timed(send) -> float:
    started = time.perf_counter()
    send()
    return (time.perf_counter() - started) * 1000


def run(rounds: int) -> dict[str, float]:
    with (
        tempfile.TemporaryDirectory() as tmp,
        servers.pixyproxy_server(Path(tmp), {}) as server,
        httpx.Client(base_url=server.base_url, timeout=60) as http,
    ):
        session = open_session(http)
        plain: list[float] = []
        mcp: list[float] = []
        models: list[float] = []
        list_models: list[float] = []

        def post_image(i: int) -> None:
            answer = http.post("/image/", json={"prompt": f"bench plain {i}"})
            assert answer.status_code == 200, answer.text

        def call_tool(i: int) -> None:
            message = {
                "jsonrpc": "2.0",
                "id": i + 1,
                "method": "tools/call",
                "params": {"name": "generate_image", "arguments": {"prompt": f"bench mcp {i}"}},
            }
            answer = http.post("/mcp", json=message, headers=session)
            assert answer.status_code == 200 and '"isError":true' not in answer.text, answer.text[:300]

        for i in range(10):  # warm both paths (imports, the first encode, connection pools)
            post_image(i)
            call_tool(i)

        def call_list_models(i: int) -> None:
            params = {"name": "list_models"}
            message = {"jsonrpc": "2.0", "id": -i - 1, "method": "tools/call", "params": params}
            assert http.post("/mcp", json=message, headers=session).status_code == 200

        for i in range(rounds):
            plain.append(timed(lambda i=i: post_image(i)))
            mcp.append(timed(lambda i=i: call_tool(i)))
            # The protocol's own cost: a tool that does next to nothing against its HTTP twin.
            models.append(timed(lambda: http.get("/v1/models")))
            list_models.append(timed(lambda i=i: call_list_models(i)))
    p50_plain, p50_mcp = statistics.median(plain), statistics.median(mcp)
    return {
        "rounds": rounds,
        "post_image_p50_ms": round(p50_plain, 2),
        "tools_call_p50_ms": round(p50_mcp, 2),
        "overhead_p50_ms": round(p50_mcp - p50_plain, 2),
        "protocol_p50_ms": round(statistics.median(list_models) - statistics.median(models), 2),
        "goal_ms": GOAL_MS,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=200)
    figures = run(parser.parse_args().rounds)
    print(
        f"POST /image/ p50 {figures['post_image_p50_ms']} ms, tools/call generate_image p50 "
        f"{figures['tools_call_p50_ms']} ms: overhead {figures['overhead_p50_ms']} ms "
        f"(goal <= {GOAL_MS} ms); "
        f"the protocol alone (tools/call list_models - GET /v1/models) {figures['protocol_p50_ms']} ms"
    )
    print("BENCH_FIGURE " + json.dumps({"name": "mcp_generate_overhead", **figures}))


if __name__ == "__main__":
    main()
