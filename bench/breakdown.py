"""Where a detail read's time goes: CPU per `GET /image/{guid}` inside the app, with no network, with one
piece taken out at a time. It explains figure 1; it is not a figure itself.

    python -m bench.breakdown MODE ITERATIONS     (run by bench/run.py, with PIXYPROXY_* set to seeded stores
                                                   and BENCH_GUIDS naming a JSON file of guids)

MODE: full, no-log-lines (request log level above INFO), no-metrics (a recorder that records nothing),
memory-repository (the repository's get answers one ready ImageDetail).
Prints one JSON line: {"mode": ..., "cpu_us": best of 5 rounds}.
"""

import asyncio
import json
import logging
import os
import sys
import time
from pathlib import Path
from uuid import UUID

MODES = ("full", "no-log-lines", "no-metrics", "memory-repository")


class NoMetrics:
    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        pass


async def measure(mode: str, iterations: int) -> float:
    from pixyproxy.entrypoints.app import create_app
    from pixyproxy.entrypoints.middleware.boundary import RequestBoundary

    guids = json.loads(Path(os.environ["BENCH_GUIDS"]).read_text())
    app = create_app()
    if mode == "no-metrics":
        (boundary,) = [m for m in app.user_middleware if m.cls is RequestBoundary]
        boundary.kwargs["recorder"] = NoMetrics()
    if mode == "no-log-lines":
        logging.getLogger("pixyproxy.request").setLevel(logging.WARNING)

    startup: asyncio.Queue = asyncio.Queue()
    await startup.put({"type": "lifespan.startup"})
    started = asyncio.Event()

    async def lifespan_send(message) -> None:
        if message["type"] == "lifespan.startup.complete":
            started.set()

    lifespan = asyncio.create_task(
        app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, startup.get, lifespan_send)
    )
    await started.wait()
    if mode == "memory-repository":
        repository = app.state.container.repository()
        ready = await repository.get(UUID(guids[0]))

        async def get(guid, owner=None):
            return ready

        repository.get = get

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    statuses: list[int] = []

    async def send(message) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    def scope(path: str) -> dict:
        return {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
                "method": "GET", "scheme": "http", "path": path, "raw_path": path.encode(),
                "query_string": b"", "root_path": "", "headers": [(b"host", b"127.0.0.1")],
                "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000), "state": {}}  # fmt: skip

    paths = [f"/image/{g}" for g in guids]
    for i in range(min(300, iterations)):
        await app(scope(paths[i % len(paths)]), receive, send)
    best = float("inf")
    for _ in range(5):
        started_cpu = time.process_time()
        for i in range(iterations):
            await app(scope(paths[i % len(paths)]), receive, send)
        best = min(best, (time.process_time() - started_cpu) / iterations * 1e6)
    if set(statuses) != {200}:
        raise RuntimeError(f"{mode}: answers {sorted(set(statuses))}")
    await startup.put({"type": "lifespan.shutdown"})
    await lifespan
    return best


def main() -> None:
    mode, iterations = sys.argv[1], int(sys.argv[2])
    if mode not in MODES:
        raise SystemExit(f"mode must be one of {', '.join(MODES)}")
    from pixyproxy.entrypoints.logging_setup import configure_logging

    # The log lines go where the served app's go in the benchmark: a file, not a terminal.
    sys.stderr = open(os.environ.get("BENCH_LOG", os.devnull), "a")  # noqa: SIM115
    configure_logging("INFO")
    try:
        import uvloop

        cpu = uvloop.run(measure(mode, iterations))
    except ImportError:
        cpu = asyncio.run(measure(mode, iterations))
    print(json.dumps({"mode": mode, "cpu_us": round(cpu, 1)}), file=sys.__stdout__)


if __name__ == "__main__":
    main()
