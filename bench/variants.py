"""Variants and search: what a first variant request costs, how fast a made one is served, that many
first requests make one encode, and what `q` costs at 10^6 rows on MySQL.

    python -m bench.variants [--images 30] [--seconds 5] [--rows 1000000] [--skip-mysql | --only-mysql]
                             [--keep | --database NAME] [--smoke]

1. First request for a 256-px WebP of a 1024x1024 PNG: `pixyproxy serve` on the embedded default, each
   of --images fresh images asked once for ?width=256&format=webp; p50 and p90 (goal: p50 <= 40 ms).
   The encode alone (domain/variants.render, in this process) is shown beside it.
2. A made variant against an original of about the same size: requests/s under load for the 256-px WebP
   variant and for a stored 256x256 WebP original (goal: variant >= 0.9x the original).
3. 100 concurrent first requests for one variant, in process (so the encodes can be counted): exactly one.
4. `q` at 10^6 rows on MySQL: bench/search.py's MySQL half (its docstring says how). --keep keeps that
   database; --database NAME measures a kept one. `python -m bench.search` runs SQLite's half too.

Prints the figures and one `BENCH_FIGURE {json}` line per goal.
"""

import argparse
import asyncio
import http.client
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench import servers
from bench.load import run_load
from bench.search import report, search_at_scale

GOAL_FIRST_MS = 40.0
GOAL_MADE_RATIO = 0.9
VARIANT = "width=256&format=webp"


def p(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def request(connection: http.client.HTTPConnection, method: str, path: str, body=None) -> tuple[int, bytes]:
    headers = {"Content-Type": "application/json"} if body is not None else {}
    connection.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
    response = connection.getresponse()
    return response.status, response.read()


def create(connection, **fields) -> dict:
    status, body = request(connection, "POST", "/image/", fields)
    if status != 200:
        raise RuntimeError(f"POST /image/ answered {status}: {body[:200]!r}")
    return json.loads(body)


def render_alone_ms(data: bytes, count: int = 20) -> float:
    from pixyproxy.domain.variants import render

    render(data, 256, "webp")
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        render(data, 256, "webp")
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def first_and_made(images: int, seconds: float) -> dict:
    with tempfile.TemporaryDirectory() as tmp, servers.pixyproxy_server(Path(tmp), {}) as server:
        host, port = server.base_url.removeprefix("http://").split(":")
        connection = http.client.HTTPConnection(host, int(port), timeout=60)
        made = [create(connection, prompt=f"variant bench {i}", size="1024x1024") for i in range(images)]
        first = []
        for image in made:
            started = time.perf_counter()
            status, body = request(connection, "GET", f"/image/{image['guid']}/content?{VARIANT}")
            first.append((time.perf_counter() - started) * 1000)
            if status != 200:
                raise RuntimeError(f"variant answered {status}: {body[:200]!r}")
        variant_bytes = len(body)
        _, original = request(connection, "GET", f"/image/{made[0]['guid']}/content")
        # An original of about the variant's size: a stored 256x256 WebP.
        small = create(connection, prompt="variant bench original", size="256x256", output_format="webp")
        connection.close()
        variant_path = f"/image/{made[0]['guid']}/content?{VARIANT}"
        original_path = f"/image/{small['guid']}/content"
        rounds = {"variant": [], "original": []}
        for _ in range(2):  # alternate, so drift on a shared machine hits both alike
            for name, path in (("variant", variant_path), ("original", original_path)):
                rounds[name].append(run_load(server.base_url, [path], connections=16, seconds=seconds))
    best = {name: max(results, key=lambda r: r.requests_per_s) for name, results in rounds.items()}
    return {
        "first_p50_ms": statistics.median(first),
        "first_p90_ms": p(first, 0.9),
        "render_ms": render_alone_ms(original),
        "variant_bytes": variant_bytes,
        "original_bytes": small["size_bytes"],
        "variant_rps": best["variant"].requests_per_s,
        "original_rps": best["original"].requests_per_s,
        "variant_p50_ms": best["variant"].p50_ms,
        "original_p50_ms": best["original"].p50_ms,
        "tool": best["variant"].tool,
        "errors": sum(r.errors for results in rounds.values() for r in results),
    }


def concurrent_first_requests(count: int = 100) -> dict:
    """In process: `count` requests at once for one variant not yet made; the encodes are counted."""
    import httpx

    from pixyproxy.entrypoints.app import create_app
    from tests.support.embedded import embedded_container

    async def measure() -> dict:
        with tempfile.TemporaryDirectory() as tmp:
            container = embedded_container(Path(tmp))
            app = create_app(container)
            async with (
                app.router.lifespan_context(app),
                httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=app), base_url="http://bench", timeout=120
                ) as client,
            ):
                image = (await client.post("/image/", json={"prompt": "x", "size": "1024x1024"})).json()
                url = f"/image/{image['guid']}/content?{VARIANT}"
                started = time.perf_counter()
                answers = await asyncio.gather(*(client.get(url) for _ in range(count)))
                elapsed = time.perf_counter() - started
                stored = [p.name for p in (Path(tmp) / "images").iterdir() if ".w256." in p.name]
                return {
                    "requests": count,
                    "statuses": sorted({a.status_code for a in answers}),
                    "distinct_bodies": len({a.content for a in answers}),
                    "encodes": container.variants().encoded,
                    "variant_files": len(stored),
                    "all_done_ms": elapsed * 1000,
                }

    return asyncio.run(measure())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=30)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=50, help="samples per search query")
    parser.add_argument(
        "--mysql-url", default=os.environ.get("BENCH_MYSQL_URL", "mysql://root@127.0.0.1:3306")
    )
    parser.add_argument("--skip-mysql", action="store_true")
    parser.add_argument("--only-mysql", action="store_true", help="just the search figure")
    parser.add_argument("--keep", action="store_true", help="keep the MySQL database for a look")
    parser.add_argument("--database", help="measure the search on this database (kept by --keep); no load")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, to check the bench runs")
    args = parser.parse_args(argv)
    if args.smoke:
        args.images, args.seconds, args.rows, args.requests = 3, 1.0, 20_000, 5

    figures = []
    if not args.only_mysql:
        served = first_and_made(args.images, args.seconds)
        print(
            f"1. first request, 256-px WebP of a 1024x1024 PNG: p50 {served['first_p50_ms']:.1f} ms, "
            f"p90 {served['first_p90_ms']:.1f} ms (encode alone {served['render_ms']:.1f} ms; goal p50 <= "
            f"{GOAL_FIRST_MS:.0f} ms)"
        )
        ratio = served["variant_rps"] / served["original_rps"]
        print(
            f"2. made variant ({served['variant_bytes']:,} B) {served['variant_rps']:,.0f} req/s "
            f"(p50 {served['variant_p50_ms']:.2f} ms) vs stored original ({served['original_bytes']:,} B) "
            f"{served['original_rps']:,.0f} req/s (p50 {served['original_p50_ms']:.2f} ms): {ratio:.2f}x "
            f"(goal >= {GOAL_MADE_RATIO}x; {served['tool']}, 16 connections, errors {served['errors']})"
        )
        once = concurrent_first_requests(100)
        print(
            f"3. {once['requests']} concurrent first requests: {once['encodes']} encode(s), "
            f"{once['variant_files']} variant file, statuses {once['statuses']}, "
            f"{once['distinct_bodies']} distinct body, all answered in {once['all_done_ms']:.0f} ms"
        )
        figures += [
            {"name": "variant first request p50 ms", "value": served["first_p50_ms"], "goal": GOAL_FIRST_MS},
            {"name": "made variant / original req/s", "value": ratio, "goal": GOAL_MADE_RATIO},
            {"name": "encodes for 100 concurrent first requests", "value": once["encodes"], "goal": 1},
        ]
    if not args.skip_mysql:
        search = search_at_scale(args.rows, args.mysql_url, args.requests, args.keep, args.database)
        print("4. ", end="")
        figures.append(report("MySQL", search, f"database {args.database} as kept"))
    for figure in figures:
        print("BENCH_FIGURE " + json.dumps(figure))
    return 0


if __name__ == "__main__":
    sys.exit(main())
