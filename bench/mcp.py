"""MCP overhead: p50 of `tools/call generate_image` at /mcp minus p50 of `POST /image/`, on the offline
generator (latency 0), one worker. Goal: <= 10 ms.

Both are sent by one HTTP client in this process over one keep-alive connection, alternating request by
request, so a loaded machine weighs on both alike. The MCP call is a plain POST in an initialized session
(the server answers as an SSE stream, read to its end); what the official client adds on its side is not
the server's overhead and is left out. The call's answer carries a 512-px WebP preview the plain POST does
not: that encode is part of what is measured.

    python -m bench.mcp                # 200 of each, printed; a `BENCH_FIGURE {json}` line
    python -m bench.mcp --rounds 30    # shorter
    git archive HEAD~1 | tar -x -C /tmp/before && python -m bench.mcp --before /tmp/before
                                       # that tree's server too, round by round in turn with this one's
"""

import argparse
import json
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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


KINDS = ("plain", "mcp", "models", "list_models")


@dataclass
class Side:
    """One tree's server under test, its client and session, and its timings."""

    label: str
    http: httpx.Client
    session: dict[str, str]
    times: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in KINDS})

    def post_image(self, i: int) -> None:
        answer = self.http.post("/image/", json={"prompt": f"bench plain {i}"})
        assert answer.status_code == 200, answer.text

    def call_tool(self, i: int, name: str = "generate_image") -> None:
        arguments = {"prompt": f"bench mcp {i}"} if name == "generate_image" else {}
        params = {"name": name, "arguments": arguments}
        message = {"jsonrpc": "2.0", "id": i + 1, "method": "tools/call", "params": params}
        answer = self.http.post("/mcp", json=message, headers=self.session)
        assert answer.status_code == 200 and '"isError":true' not in answer.text, answer.text[:300]

    def round(self, i: int) -> None:
        self.times["plain"].append(timed(lambda: self.post_image(i)))
        self.times["mcp"].append(timed(lambda: self.call_tool(i)))
        # The protocol's own cost: a tool that does next to nothing against its HTTP twin.
        self.times["models"].append(timed(lambda: self.http.get("/v1/models")))
        self.times["list_models"].append(timed(lambda: self.call_tool(-i - 2, "list_models")))

    def figures(self) -> dict[str, float]:
        p50 = {kind: statistics.median(values) for kind, values in self.times.items()}
        return {
            "post_image_p50_ms": round(p50["plain"], 2),
            "tools_call_p50_ms": round(p50["mcp"], 2),
            "overhead_p50_ms": round(p50["mcp"] - p50["plain"], 2),
            # The median of each round's own difference: steadier when the machine's load comes and goes.
            "paired_overhead_p50_ms": round(
                statistics.median(m - p for m, p in zip(self.times["mcp"], self.times["plain"], strict=True)),
                2,
            ),
            "protocol_p50_ms": round(p50["list_models"] - p50["models"], 2),
        }


def run(rounds: int, before: Path | None = None, before_python: str = sys.executable) -> dict[str, Any]:
    """This tree's server, and with `before` that tree's too, measured round by round in turn."""
    trees = [("after", servers.ROOT, sys.executable)]
    if before is not None:
        trees.insert(0, ("before", before, before_python))
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        sides = []
        for label, root, python in trees:
            workdir = Path(tmp) / label
            workdir.mkdir()
            env = {"PYTHONPATH": str(root)}
            server = stack.enter_context(servers.pixyproxy_server(workdir, env, name=label, python=python))
            http = stack.enter_context(httpx.Client(base_url=server.base_url, timeout=60))
            sides.append(Side(label, http, open_session(http)))
        for i in range(10):  # warm both paths (imports, the first encode, connection pools)
            for side in sides:
                side.post_image(i)
                side.call_tool(i)
        for i in range(rounds):
            for side in sides:
                side.round(i)
    return {"rounds": rounds, "goal_ms": GOAL_MS, **{side.label: side.figures() for side in sides}}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--before", type=Path, help="another tree (an exported commit) to measure too")
    parser.add_argument("--before-python", default=sys.executable, help="the Python to run it with")
    args = parser.parse_args()
    figures = run(args.rounds, args.before, args.before_python)
    for label in ("before", "after"):
        if label not in figures:
            continue
        side = figures[label]
        print(
            f"{label}: POST /image/ p50 {side['post_image_p50_ms']} ms, tools/call generate_image p50 "
            f"{side['tools_call_p50_ms']} ms: overhead {side['overhead_p50_ms']} ms (goal <= {GOAL_MS} ms; "
            f"paired {side['paired_overhead_p50_ms']} ms); "
            f"the protocol alone (tools/call list_models - GET /v1/models) {side['protocol_p50_ms']} ms"
        )
    print("BENCH_FIGURE " + json.dumps({"name": "mcp_generate_overhead", **figures}))


if __name__ == "__main__":
    main()
