"""A small HTTP/1.1 keep-alive load generator, for machines without wrk.

    python -m bench.pyload http://127.0.0.1:8000 paths.json CONNECTIONS SECONDS [--once] [--out FILE]

Prints (or writes to FILE) one JSON object: requests, seconds, bytes (bodies), errors, and a latency
sample in ms. It is slower than wrk, so on a small machine it takes more of the CPU the server would
otherwise have.
"""

import asyncio
import json
import random
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit


async def _connection(
    host: str, port: int, paths: list[str], deadline: float, stats: dict, once: bool
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    requests = [f"GET {p} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode() for p in paths]
    try:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            writer.write(random.choice(requests))
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            remaining = length
            while remaining:
                chunk = await reader.read(min(remaining, 1 << 20))
                if not chunk:
                    raise ConnectionError("closed mid-body")
                remaining -= len(chunk)
            stats["requests"] += 1
            stats["bytes"] += length
            if not head.startswith((b"HTTP/1.1 2", b"HTTP/1.1 3")):
                stats["errors"] += 1
            if len(stats["sample_ms"]) < 20000:
                stats["sample_ms"].append((time.perf_counter() - started) * 1000)
            if once:
                break
    except (OSError, asyncio.IncompleteReadError, ConnectionError):
        stats["errors"] += 1
    finally:
        writer.close()


async def run(base_url: str, paths: list[str], connections: int, seconds: float, once: bool = False) -> dict:
    parts = urlsplit(base_url)
    stats = {"requests": 0, "bytes": 0, "errors": 0, "sample_ms": []}
    started = time.perf_counter()
    deadline = started + seconds
    await asyncio.gather(
        *(_connection(parts.hostname, parts.port, paths, deadline, stats, once) for _ in range(connections))
    )
    stats["seconds"] = time.perf_counter() - started
    return stats


def main() -> None:
    base_url, paths_file, connections, seconds = sys.argv[1:5]
    paths = json.loads(Path(paths_file).read_text())
    once = "--once" in sys.argv  # each connection sends one request (downloads started at once)
    coroutine = run(base_url, paths, int(connections), float(seconds), once)
    try:
        import uvloop

        result = uvloop.run(coroutine)
    except ImportError:
        result = asyncio.run(coroutine)
    text = json.dumps(result)
    if "--out" in sys.argv:
        Path(sys.argv[sys.argv.index("--out") + 1]).write_text(text)
    else:
        print(text)


if __name__ == "__main__":
    main()
