"""What tenancy costs on the hot reads, and what a budget check costs a generation (in-process ASGI calls,
no network; offline generator, SQLite). Run by hand: `.venv/bin/python -m bench.tenancy`.

Reads: GET /image/{guid} and /content with keys off, with a user key that owns the image, and with an admin
key (the owner is compared on the row already read: no second query). Generations: POST /image/ without
budgets, with budgets counted in memory, and in Redis (PIXYPROXY_BENCH_REDIS_URL, default database 7).
"""

import asyncio
import json
import logging
import os
import tempfile
import time

from dependency_injector import providers

from pixyproxy.container import Container
from pixyproxy.entrypoints.app import create_app
from pixyproxy.settings import Settings

KEYS = "ann:user:ann-bench-key,root:admin:root-bench-key"
REDIS = os.environ.get("PIXYPROXY_BENCH_REDIS_URL", "redis://127.0.0.1:6379/7")


def scope(path: str, method: str = "GET", key: str | None = None, body: bool = False) -> dict:
    headers = [(b"host", b"127.0.0.1")]
    if key:
        headers.append((b"authorization", f"Bearer {key}".encode()))
    if body:
        headers.append((b"content-type", b"application/json"))
    return {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
        "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "", "headers": headers,
        "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 8001), "state": {},
    }  # fmt: skip


_lifespans: list[asyncio.Future] = []


async def started(app) -> None:
    ready, sent = asyncio.Event(), []

    async def receive():
        if not sent:
            sent.append(1)
            return {"type": "lifespan.startup"}
        await asyncio.Event().wait()

    async def send(message):
        if message["type"] == "lifespan.startup.complete":
            ready.set()

    task = asyncio.ensure_future(
        app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, receive, send)
    )
    await ready.wait()
    _lifespans.append(task)  # kept: the app lives until the benchmark ends


async def per_request(app, request: dict, body: bytes = b"", n: int = 2000, rounds: int = 5) -> float:
    statuses = set()

    async def receive():
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message):
        if message["type"] == "http.response.start":
            statuses.add(message["status"])

    for _ in range(min(n, 200)):
        await app(dict(request), receive, send)
    best = float("inf")
    for _ in range(rounds):
        t = time.perf_counter()
        for _ in range(n):
            await app(dict(request), receive, send)
        best = min(best, (time.perf_counter() - t) / n * 1e6)
    assert statuses == {200}, statuses
    return best


def app_with(workdir: str, **settings) -> tuple:
    container = Container()
    container.settings.override(
        providers.Object(
            Settings(
                database_url=f"sqlite:///{workdir}/db.sqlite",
                storage_url=f"file:{workdir}/images",
                **settings,
            )
        )
    )
    return create_app(container), container


async def reads() -> None:
    for label, options, key in (
        ("keys off", {}, None),
        ("user key, own image", {"api_keys": KEYS}, "ann-bench-key"),
        ("admin key", {"api_keys": KEYS}, "root-bench-key"),
    ):
        app, container = app_with(tempfile.mkdtemp(), **options)
        await started(app)
        from pixyproxy.domain.models import Caller

        detail = await container.generate_image()({"prompt": "bench"}, Caller("ann"))
        for path in (f"/image/{detail.guid}", f"/image/{detail.guid}/content"):
            us = await per_request(app, scope(path, key=key))
            what = "content" if path.endswith("/content") else "detail"
            print(f"{label:22s} GET {what:8s} {us:7.1f} us/request")


async def generations() -> None:
    body = json.dumps({"prompt": "a fox", "size": "64x64"}).encode()
    budgets = {"budget_images_per_day": 10**9}
    for label, options in (
        ("no budget", {}),
        ("budget in memory", budgets),
        ("budget in Redis", {**budgets, "redis_url": REDIS}),
    ):
        app, _ = app_with(tempfile.mkdtemp(), api_keys=KEYS, **options)
        await started(app)
        try:
            us = await per_request(
                app, scope("/image/", "POST", "ann-bench-key", True), body, n=300, rounds=3
            )
        except Exception as exc:  # no Redis here
            print(f"{label:22s} POST /image/ skipped: {type(exc).__name__}")
            continue
        print(f"{label:22s} POST /image/  {us:7.1f} us/request")


async def budget_checks(n: int = 2000) -> None:
    """The budget's own cost per generation: reserve (one read, one increment) and settle (one increment)."""
    from pixyproxy.adapters.limits_counters import LimitsUsageCounter, limits_storage
    from pixyproxy.domain.models import Caller
    from pixyproxy.domain.usage import Budget
    from pixyproxy.domain.usecases.budgets import Budgets

    for label, url in (("memory", None), ("Redis", REDIS)):
        budgets = Budgets(LimitsUsageCounter(limits_storage(url)), Budget(10**9, 10**12))
        try:
            await budgets.reserve(Caller("bench"))
        except Exception as exc:
            print(f"budget check ({label}) skipped: {type(exc).__name__}")
            continue
        t = time.perf_counter()
        for _ in range(n):
            await budgets.settle(await budgets.reserve(Caller("bench")), 4210)
        print(
            f"budget check ({label:6s})            {(time.perf_counter() - t) / n * 1e6:7.1f} us/generation"
        )


def main() -> None:
    logging.disable(logging.CRITICAL)
    asyncio.run(reads())
    asyncio.run(generations())
    asyncio.run(budget_checks())


if __name__ == "__main__":
    main()
