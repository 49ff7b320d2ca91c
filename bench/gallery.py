"""`python -m bench.gallery`: what the gallery costs, in process (raw ASGI calls, no network).

  * GET /image/{guid} with and without the gallery's routes in the app: the gallery's router comes last,
    so an API request should not pay for it;
  * GET / (gzip), GET / revalidated (304) and GET of the JavaScript, each a static answer from memory.

Rounds alternate between the two apps (in turn first); each figure is the best round's microseconds per
request.
Figures go into the final report (the lead keeps docs/benchmarks.md).
"""

import argparse
import asyncio
import logging
import os
import tempfile
import time
from pathlib import Path

from dependency_injector import providers

from pixyproxy.container import Container
from pixyproxy.entrypoints import app as app_module
from pixyproxy.entrypoints.logging_setup import configure_logging
from pixyproxy.entrypoints.routes import ROUTERS, gallery
from pixyproxy.settings import Settings


def build(folder: Path, with_gallery: bool):
    container = Container()
    container.settings.override(
        providers.Object(
            Settings(
                _env_file=None,
                database_url=f"sqlite:///{folder / 'db.sqlite'}",
                storage_url=f"file:{folder / 'images'}",
            )
        )
    )
    routers = ROUTERS if with_gallery else [r for r in ROUTERS if r is not gallery.router]
    saved, app_module.ROUTERS = app_module.ROUTERS, routers
    try:
        return app_module.create_app(container)
    finally:
        app_module.ROUTERS = saved


def scope(path: str, headers: list[tuple[bytes, bytes]] = (), query: bytes = b"") -> dict:
    return {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": query, "root_path": "",
        "headers": [(b"host", b"127.0.0.1"), *headers], "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 8001), "state": {},
    }  # fmt: skip


async def receive():
    return {"type": "http.request", "body": b"", "more_body": False}


async def per_request(app, request: dict, count: int) -> tuple[float, int]:
    status = []

    async def send(message):
        if message["type"] == "http.response.start":
            status.append(message["status"])

    started = time.perf_counter()
    for _ in range(count):
        await app(dict(request), receive, send)
    return (time.perf_counter() - started) / count * 1e6, status[-1]


async def main(rounds: int, count: int) -> None:
    with open(os.devnull, "w") as devnull:
        await measure(devnull, rounds, count)


async def measure(devnull, rounds: int, count: int) -> None:
    configure_logging("INFO")
    logging.getLogger().handlers[0].stream = devnull  # the request lines cost the same in both apps
    folder = Path(tempfile.mkdtemp(prefix="bench-gallery-"))
    apps = {name: build(folder / name, name == "with gallery") for name in ("with gallery", "without")}
    async with (
        apps["with gallery"].router.lifespan_context(apps["with gallery"]),
        apps["without"].router.lifespan_context(apps["without"]),
    ):
        detail = {}
        for name, app in apps.items():
            made = await app.state.container.generate_image()({"prompt": "bench"})
            detail[name] = scope(f"/image/{made.guid}")
        page_app = apps["with gallery"]
        page = gallery.page_for(page_app)
        script = gallery.ASSET_FILES["gallery.js"]
        cases = {
            "GET /image/{guid}, with gallery": (apps["with gallery"], detail["with gallery"]),
            "GET /image/{guid}, without": (apps["without"], detail["without"]),
            "GET / (gzip)": (page_app, scope("/", [(b"accept-encoding", b"gzip")])),
            "GET / (If-None-Match, 304)": (page_app, scope("/", [(b"if-none-match", page.etag.encode())])),
            "GET /gallery/gallery.js (gzip)": (
                page_app,
                scope("/gallery/gallery.js", [(b"accept-encoding", b"gzip")], f"v={script.version}".encode()),
            ),
        }
        best: dict[str, float] = {}
        statuses: dict[str, int] = {}
        for app, request in cases.values():  # warm up
            await per_request(app, request, 300)
        for round_ in range(rounds):
            order = list(cases.items())
            for name, (app, request) in order if round_ % 2 else reversed(order):  # neither always first
                us, statuses[name] = await per_request(app, request, count)
                best[name] = min(us, best.get(name, us))
    for name in cases:
        print(f"{name:36s} {best[name]:7.1f} us/request  (status {statuses[name]})")
    ratio = best["GET /image/{guid}, with gallery"] / best["GET /image/{guid}, without"]
    print(f"detail read with the gallery's routes / without: {ratio:.3f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--count", type=int, default=2000)
    options = parser.parse_args()
    asyncio.run(main(options.rounds, options.count))
