"""List depth on MySQL: does a page of GET /image/ cost the same at 10^6 rows as at 10^4?

    python -m bench.list_depth [--small 10000] [--large 1000000] [--requests 400] [--smoke]

Builds two databases of its own on the MySQL server (BENCH_MYSQL_URL or --mysql-url; default
mysql://root@127.0.0.1:3306), bulk-loads them inside the server (INSERT ... SELECT, no row crosses the
network), starts one `pixyproxy serve` on each, and measures p50 latency of
  * the first page:  GET /image/?limit=100
  * a deep page:     GET /image/?limit=100&cursor=<the cursor at 90 % depth of the chain>
alternating between the two servers request by request, so drift on a shared machine hits both alike.
It also times the repository's list_page() alone (no HTTP) and counts the index entries MySQL reads
for the deep page (Handler_read_* deltas). The databases are dropped at the end (unless --keep).

Prints the figures, and one `BENCH_FIGURE {json}` line that `python -m bench` collects (figure 5:
the larger of the two page ratios, 10^6 ÷ 10^4; goal ≤ 1.5).
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
import uuid
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import aiomysql

from bench import servers
from pixyproxy.adapters.sql.database import Database
from pixyproxy.adapters.sql.images import SQLImageRepository
from pixyproxy.domain.cursor import encode_cursor
from pixyproxy.domain.models import PagePosition
from pixyproxy.settings import Settings

GOAL = 1.5
PAGE = 100
CHUNK = 100_000
BASE_TIME = datetime(2026, 1, 1)

# Rows are built by the server from a numbers table; the guid is a valid UUID derived from n, so the
# filename matches it exactly as the service writes it.
FILL_NUMBERS = (
    "INSERT INTO bench_numbers (n) SELECT a.d + 10 * b.d + 100 * c.d + 1000 * e.d + 10000 * f.d "
    "FROM bench_digits a, bench_digits b, bench_digits c, bench_digits e, bench_digits f"
)
LOAD_CHUNK = (
    "INSERT INTO images (guid, filename, prompt, created_at, updated_at, content_type, size_bytes, "
    "width, height, model, size, quality, sha256) "
    "SELECT g, CONCAT(g, '.png'), CONCAT('a lighthouse at dusk, watercolour, study number ', k), "
    "TIMESTAMPADD(MICROSECOND, k * 1000, %(base)s), TIMESTAMPADD(MICROSECOND, k * 1000, %(base)s), "
    "'image/png', 1234567, 1024, 1024, 'pixyproxy-offline', '1024x1024', 'high', SHA2(g, 256) "
    "FROM (SELECT n + %(start)s AS k, "
    "CONCAT('00000000-0000-4000-8000-', LPAD(HEX(n + %(start)s), 12, '0')) AS g "
    "FROM bench_numbers WHERE n < %(count)s) numbered"
)
POSITION_AT = (
    "SELECT created_at, id FROM images FORCE INDEX (ix_images_created_at_id) "
    "ORDER BY created_at DESC, id DESC LIMIT 1 OFFSET %(offset)s"
)


def server_url(url: str) -> dict:
    parts = urlsplit(url)
    return dict(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 3306,
        user=parts.username or "root",
        password=parts.password or "",
    )


async def _run(server: dict, database: str | None, statements: list[tuple[str, dict | None]]) -> list:
    connection = await aiomysql.connect(**server, db=database, autocommit=True)
    try:
        results = []
        async with connection.cursor() as cursor:
            for sql, params in statements:
                await cursor.execute(sql, params)
                results.append(await cursor.fetchall())
        return results
    finally:
        connection.close()


def make_repository(url: str) -> SQLImageRepository:
    """The repository as the service builds it: its pool and timeouts at their settings' defaults."""
    fields = Settings.model_fields
    options = {
        name.removeprefix("mysql_"): f.default for name, f in fields.items() if name.startswith("mysql_")
    }
    options["sqlite_busy_timeout_seconds"] = fields["sqlite_busy_timeout_seconds"].default
    return SQLImageRepository(Database(url, **options))


def run(server: dict, database: str | None, *statements: tuple[str, dict | None]) -> list:
    return asyncio.run(_run(server, database, list(statements)))


@contextmanager
def bench_database(server: dict, keep: bool):
    name = f"pixybench_list_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    # Identifiers cannot be parameters: the server quotes the (generated) name in a prepared statement.
    create = (
        "SET @ddl = CONCAT('CREATE DATABASE `', %(name)s, '` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin')",
        {"name": name},
    )
    drop = ("SET @ddl = CONCAT('DROP DATABASE IF EXISTS `', %(name)s, '`')", {"name": name})
    execute = [("PREPARE ddl FROM @ddl", None), ("EXECUTE ddl", None), ("DEALLOCATE PREPARE ddl", None)]
    run(server, None, create, *execute)
    try:
        yield name
    finally:
        if keep:
            print(f"kept database {name}")
        else:
            run(server, None, drop, *execute)


def make_numbers(server: dict, database: str) -> None:
    """bench_numbers: 0..99,999, which the load statements turn into rows inside the server."""
    run(
        server,
        database,
        ("CREATE TABLE bench_digits (d INT NOT NULL)", None),
        ("INSERT INTO bench_digits VALUES (0),(1),(2),(3),(4),(5),(6),(7),(8),(9)", None),
        ("CREATE TABLE bench_numbers (n INT NOT NULL PRIMARY KEY)", None),
        (FILL_NUMBERS, None),
    )


def load(url: str, server: dict, database: str, rows: int) -> float:
    """Create the schema through the adapter's own init, then `rows` rows; returns seconds taken."""
    started = time.monotonic()
    repository = make_repository(url)

    async def init() -> None:
        try:
            await repository.init()
        finally:
            await repository.close()

    asyncio.run(init())
    make_numbers(server, database)
    for start in range(0, rows, CHUNK):
        count = min(CHUNK, rows - start)
        run(server, database, (LOAD_CHUNK, {"base": BASE_TIME, "start": start, "count": count}))
        print(f"  {database}: {start + count:,} / {rows:,} rows", file=sys.stderr, flush=True)
    run(server, database, ("ANALYZE TABLE images", None))
    return time.monotonic() - started


def deep_cursor(server: dict, database: str, rows: int) -> str:
    """The cursor a client holds after following the chain to 90 % depth."""
    offset = max(0, int(rows * 0.9) - 1)
    ((created_at, ident),) = run(server, database, (POSITION_AT, {"offset": offset}))[0]
    return encode_cursor(PagePosition(created_at=created_at.replace(tzinfo=UTC), id=ident))


def index_reads(server: dict, database: str, cursor: str) -> dict[str, int]:
    """Handler_read_* deltas of one deep-page query on our own connection: what MySQL actually read."""
    import re

    from pixyproxy.adapters.sql.dialect import KEYSET_AFTER, NEWEST_FIRST_INDEX
    from pixyproxy.adapters.sql.images import NEWEST_FIRST, SELECT
    from pixyproxy.domain.cursor import decode_cursor

    # The repository's own deep-page statement, its :name markers as aiomysql's %(name)s.
    statement = f"{SELECT}{NEWEST_FIRST_INDEX['mysql']} WHERE {KEYSET_AFTER['mysql']} {NEWEST_FIRST}"
    LIST_AFTER = re.sub(r"(?<![:\w]):(\w+)", r"%(\1)s", statement)

    position = decode_cursor(cursor)
    params = {
        "limit": PAGE + 1,
        "created_at": position.created_at.astimezone(UTC).replace(tzinfo=None),
        "id": position.id,
    }
    status = "SHOW SESSION STATUS LIKE 'Handler_read%'"
    # s1, s2, query, s3: (s3 - s2) - (s2 - s1) leaves what the query read, without SHOW's own reads.
    s1, s2, _, s3 = run(
        server, database, (status, None), (status, None), (LIST_AFTER, params), (status, None)
    )
    first, second, third = ({k: int(v) for k, v in s} for s in (s1, s2, s3))
    delta = {k: (third[k] - second[k]) - (second[k] - first[k]) for k in third}
    return {k: v for k, v in delta.items() if v}


def repository_p50(url: str, cursor: str | None, count: int) -> float:
    """p50 ms of list_page() through the adapter alone (no HTTP)."""
    from pixyproxy.domain.cursor import decode_cursor

    after = decode_cursor(cursor) if cursor else None

    async def measure() -> float:
        repository = make_repository(url)
        try:
            await repository.list_page(PAGE, after)
            samples = []
            for _ in range(count):
                started = time.perf_counter()
                page = await repository.list_page(PAGE, after)
                samples.append(time.perf_counter() - started)
                assert len(page.items) == PAGE
            return statistics.median(samples) * 1000
        finally:
            await repository.close()

    return asyncio.run(measure())


def get(connection: http.client.HTTPConnection, path: str) -> float:
    started = time.perf_counter()
    connection.request("GET", path)
    response = connection.getresponse()
    body = response.read()
    elapsed = time.perf_counter() - started
    if response.status != 200 or len(json.loads(body)) != PAGE:
        raise RuntimeError(f"GET {path} answered {response.status}: {body[:200]!r}")
    return elapsed


def p50_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.list_depth", description=__doc__.splitlines()[0], epilog=__doc__
    )
    parser.add_argument("--small", type=int, default=10_000, help="rows in the small table (10^4)")
    parser.add_argument("--large", type=int, default=1_000_000, help="rows in the large table (10^6)")
    parser.add_argument("--requests", type=int, default=400, help="timed requests per page and table")
    parser.add_argument(
        "--mysql-url", default=os.environ.get("BENCH_MYSQL_URL", "mysql://root@127.0.0.1:3306")
    )
    parser.add_argument("--smoke", action="store_true", help="10^3 vs 10^4 rows, 40 requests: a quick check")
    parser.add_argument("--keep", action="store_true", help="keep the databases (their names are printed)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.small, args.large, args.requests = 1_000, 10_000, 40
    server = server_url(args.mysql_url)
    try:
        run(server, None, ("SELECT 1", None))
    except Exception as exc:
        print(f"MySQL at {server['host']}:{server['port']} is not reachable: {exc}", file=sys.stderr)
        return 2

    ((version,),) = run(server, None, ("SELECT VERSION()", None))[0]
    sizes = {"small": args.small, "large": args.large}
    results: dict[str, dict] = {}
    with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="pixybench-list-") as tmp:
        work = Path(tmp)
        services = {}
        for label, rows in sizes.items():
            database = stack.enter_context(bench_database(server, args.keep))
            url = f"{args.mysql_url.rstrip('/')}/{database}"
            seconds = load(url, server, database, rows)
            cursor = deep_cursor(server, database, rows)
            results[label] = {
                "rows": rows,
                "load_s": seconds,
                "cursor": cursor,
                "reads": index_reads(server, database, cursor),
                "repo_first_ms": repository_p50(url, None, max(20, args.requests // 4)),
                "repo_deep_ms": repository_p50(url, cursor, max(20, args.requests // 4)),
            }
            folder = work / label
            folder.mkdir()
            env = {"PIXYPROXY_DATABASE_URL": url, "PIXYPROXY_STORAGE_URL": f"file:{folder / 'images'}"}
            services[label] = stack.enter_context(servers.pixyproxy_server(folder, env, name=f"list-{label}"))

        # Alternate request by request between the two servers: both see the same machine.
        samples: dict[tuple[str, str], list[float]] = {}
        connections = {
            label: http.client.HTTPConnection("127.0.0.1", service.port, timeout=30)
            for label, service in services.items()
        }
        paths = {
            label: {
                "first": f"/image/?limit={PAGE}",
                "deep": f"/image/?limit={PAGE}&cursor={results[label]['cursor']}",
            }
            for label in sizes
        }
        for warmup in (True, False):
            for _ in range(max(10, args.requests // 10) if warmup else args.requests):
                for page in ("first", "deep"):
                    for label in sizes:
                        elapsed = get(connections[label], paths[label][page])
                        if not warmup:
                            samples.setdefault((label, page), []).append(elapsed)
        for connection in connections.values():
            connection.close()

    ratios = {
        page: p50_ms(samples[("large", page)]) / p50_ms(samples[("small", page)])
        for page in ("first", "deep")
    }
    value = max(ratios.values())
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"{stamp}, {os.cpu_count()} cores, {version}, {args.requests} timed requests per page and table",
    ]
    for label in sizes:
        r = results[label]
        lines.append(
            f"{r['rows']:>9,} rows (loaded in {r['load_s']:.1f} s): HTTP p50 first page "
            f"{p50_ms(samples[(label, 'first')]):.2f} ms, "
            f"deep page {p50_ms(samples[(label, 'deep')]):.2f} ms; "
            f"list_page() alone {r['repo_first_ms']:.2f} / {r['repo_deep_ms']:.2f} ms; "
            f"deep page reads {r['reads']}"
        )
    lines.append(
        f"ratio {args.large:,} ÷ {args.small:,} rows: first page {ratios['first']:.2f}x, "
        f"deep page {ratios['deep']:.2f}x (goal ≤ {GOAL})"
    )
    print("\n".join(lines))
    figure = {
        "number": 5,
        "name": f"List depth: p50 GET /image/?limit=100, {args.large:,} rows ÷ {args.small:,} rows (MySQL)",
        "value": round(value, 3),
        "unit": "x",
        "goal": f"≤ {GOAL}",
        "met": value <= GOAL,
        "detail": lines,
    }
    print("BENCH_FIGURE " + json.dumps(figure, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
