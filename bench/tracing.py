"""What traces cost a detail read (`GET /image/{guid}`), in process, side by side: CPU per request with
OTEL_EXPORTER_OTLP_ENDPOINT unset (nothing wrapped) and set (the SDK's spans, batched to an exporter that
drops them, so no network is measured). Rounds alternate; the best of each is kept.

    .venv/bin/python -m bench.tracing [ITERATIONS] [unset|set ...]

`unset` alone also runs on a checkout from before traces existed (bench/tracing.py copied into it), for
the side-by-side figure that unset costs nothing.
"""

import asyncio
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import httpx
from dependency_injector import providers

from pixyproxy.container import Container
from pixyproxy.entrypoints.app import create_app
from pixyproxy.entrypoints.logging_setup import configure_logging
from pixyproxy.settings import Settings

ROUNDS = 5


def app_for(folder: Path, traced: bool):
    container = Container()
    settings = Settings(
        _env_file=None,
        database_url=f"sqlite:///{folder / 'db.sqlite'}",
        storage_url=f"file:{folder / 'images'}",
    )
    container.settings.override(providers.Object(settings))
    if traced:  # imported only here: the checkout from before traces has no SDK to import
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

        class Dropped(SpanExporter):
            def export(self, spans):
                return SpanExportResult.SUCCESS

        provider = TracerProvider()
        provider.add_span_processor(BatchSpanProcessor(Dropped()))
        container.tracer.override(providers.Object(provider.get_tracer("bench")))
    return create_app(container)


async def started(app) -> tuple[asyncio.Queue, asyncio.Task]:
    queue: asyncio.Queue = asyncio.Queue()
    await queue.put({"type": "lifespan.startup"})
    ready = asyncio.Event()

    async def send(message) -> None:
        if message["type"] == "lifespan.startup.complete":
            ready.set()

    task = asyncio.create_task(
        app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, queue.get, send)
    )
    await ready.wait()
    return queue, task


def scope(path: str) -> dict:
    return {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
            "method": "GET", "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
            "root_path": "", "headers": [(b"host", b"127.0.0.1")], "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8000), "state": {}}  # fmt: skip


async def main(iterations: int, modes: Sequence[str] = ("unset", "set")) -> dict[str, float]:
    folder = Path(tempfile.mkdtemp(prefix="pixyproxy-bench-tracing-"))
    apps = {mode: app_for(folder, traced=mode == "set") for mode in modes}
    lifespans = {name: await started(app) for name, app in apps.items()}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(apps[modes[0]]), base_url="http://bench"
    ) as http:
        made = [await http.post("/image/", json={"prompt": f"bench {i}"}) for i in range(20)]
    guids = [response.json()["guid"] for response in made]
    statuses: set[int] = set()

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message) -> None:
        if message["type"] == "http.response.start":
            statuses.add(message["status"])

    best = dict.fromkeys(apps, float("inf"))
    for round_number in range(ROUNDS + 1):  # the first round warms up
        for name, app in apps.items():
            cpu = time.process_time()
            for i in range(iterations):
                await app(scope(f"/image/{guids[i % len(guids)]}"), receive, send)
            if round_number:
                best[name] = min(best[name], (time.process_time() - cpu) / iterations * 1e6)
    assert statuses == {200}, statuses
    for queue, task in lifespans.values():
        await queue.put({"type": "lifespan.shutdown"})
        await task
    return {f"{name}_cpu_us": round(value, 1) for name, value in best.items()}


if __name__ == "__main__":
    log = open("/dev/null", "a")  # noqa: SIM115 (the request lines: as served, to a file)
    sys.stderr = log
    configure_logging("INFO")
    iterations = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    modes = sys.argv[2:] or ["unset", "set"]
    print(json.dumps(asyncio.run(main(iterations, modes))), file=sys.__stdout__)
