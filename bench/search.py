"""Word search at 10^6 rows: what `q` costs against an unfiltered first page, on MySQL and on SQLite.

    python -m bench.search [--rows 1000000] [--requests 100] [--store mysql|sqlite|both]
                           [--keep | --database NAME] [--mysql-url URL] [--smoke]

Rows get prompts from a fixed vocabulary (a place, a time of day, "watercolour, study tagN", one in
100,000 "zeppelin"), so each query's share of matches is known. They are loaded with the schema before
the word index (MySQL: built inside the server, bench/list_depth.py's way; SQLite: executemany), then the
word index's own migration indexes them, as an upgrade would; its time is shown. Each query is timed as
list_page() through the adapter (page of 100), its samples alternating with an unfiltered first page's so
that drift on a shared machine hits both alike; the ratio is to those. Goal: every query within 3x (the
worst is the figure). One query is shown apart, not in the goal: two common words never in one prompt,
whose answer is known to be empty only after the rarer word's postings are all read.

On MySQL the database is the bench's own on BENCH_MYSQL_URL (default mysql://root@127.0.0.1:3306),
dropped at the end unless --keep; --database NAME measures one kept earlier, without loading.
`python -m bench.variants` runs the MySQL half as its figure 4.
"""

import argparse
import asyncio
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

GOAL_SEARCH_RATIO = 3.0


LOAD_CHUNK = (
    "INSERT INTO images (guid, filename, prompt, created_at, updated_at, content_type, size_bytes, "
    "width, height, model, size, quality, sha256, owner) "
    "SELECT g, CONCAT(g, '.png'), "
    "CONCAT('a ', ELT(1 + MOD(k, 10), 'lighthouse', 'harbour', 'forest', 'mountain', 'desert', 'city', "
    "'river', 'garden', 'castle', 'island'), ' at ', "
    "ELT(1 + MOD(k, 7), 'dawn', 'dusk', 'noon', 'night', 'storm', 'fog', 'snow'), "
    "', watercolour, study tag', MOD(k, 1000), IF(MOD(k, 100000) = 7, ' zeppelin', '')), "
    "TIMESTAMPADD(MICROSECOND, k * 1000, %(base)s), TIMESTAMPADD(MICROSECOND, k * 1000, %(base)s), "
    "'image/png', 1234567, 1024, 1024, 'pixyproxy-offline', '1024x1024', 'high', SHA2(g, 256), "
    "IF(MOD(k, 10000) = 3, 'small', CONCAT('tenant', MOD(k, 100))) "
    "FROM (SELECT n + %(start)s AS k, "
    "CONCAT('00000000-0000-4000-8000-', LPAD(HEX(n + %(start)s), 12, '0')) AS g "
    "FROM bench_numbers WHERE n < %(count)s) numbered"
)
# adapters/mysql/init.py: the retired FULLTEXT index (skipped: it would only slow the load) and the
# posting table, whose migration indexes the loaded rows as it would an existing deployment's.
FULLTEXT_VERSION, WORD_INDEX_VERSION = 3, 5
# Owners: one image in 10,000 is the small tenant's, the rest are spread over tenant0..tenant99.
# (label, q, share of rows that match, owner: a user key's search is narrowed to its own images)
QUERIES = [
    ("rare word (10 rows)", "zeppelin", 1e-5, None),
    ("one word in 1000", "tag123", 1e-3, None),
    ("two words, 1 in 70", "lighthouse dusk", 1 / 70, None),
    ("one word in 10", "lighthouse", 0.1, None),
    ("a word in every row", "watercolour", 1.0, None),
    ("common word + rare word", "watercolour zeppelin", 1e-5, None),
    ("three words, 1 in 7000", "study dusk tag123", 1 / 7000, None),
    ("one tenant of 100, every row's word", "watercolour", 0.01, "tenant7"),
    ("a tenant of 100 images, its word", "mountain", 1e-4, "small"),
]
# Shown, not in the goal: words each common but never together. The rarer one's postings are read to the
# end (100,000 look-ups here) before the answer is known to be empty; no word index avoids that.
NEVER_TOGETHER = ("two common words never together", "lighthouse harbour", 0.0, None)


def migrate(repository) -> None:
    """Run a repository's init() (its migrations) once, close it, and forget the Alembic stamp, so the
    next init() runs the baseline again (the bench patches the legacy steps to stand for an old release)."""
    from sqlalchemy import create_engine, text

    async def run() -> None:
        try:
            await repository.init()
        finally:
            await repository.close()

    asyncio.run(run())
    url = repository.db.url
    driver = "sqlite+pysqlite" if url.get_backend_name() == "sqlite" else "mysql+pymysql"
    engine = create_engine(url.set(drivername=driver))
    try:
        with engine.begin() as connection:
            connection.execute(text("DROP TABLE alembic_version"))
    finally:
        engine.dispose()


def search_at_scale(rows: int, url: str, count: int, keep: bool = False, database: str | None = None) -> dict:
    """Figure 4: load `rows` rows into a database of its own (or measure `database`, one kept earlier by
    --keep, as it is), then time the queries."""
    from bench.list_depth import bench_database, server_url

    if database is not None:
        return {"load_s": None, "index_s": None, **_measure_mysql(url.rstrip("/") + "/" + database, count)}
    server = server_url(url)
    with bench_database(server, keep=keep) as created:
        load_s, index_s = load_search_rows(server, created, url.rstrip("/") + "/" + created, rows)
        return {
            "load_s": load_s,
            "index_s": index_s,
            **_measure_mysql(url.rstrip("/") + "/" + created, count),
        }


def load_search_rows(server: dict, database: str, db_url: str, rows: int) -> tuple[float, float]:
    """The schema without the word index, the rows (built inside the server), then the index's migration
    on the full table, as an existing deployment upgrades. Returns (seconds in all, seconds indexing)."""
    from bench.list_depth import make_numbers, make_repository, run
    from pixyproxy.adapters.sql.migrations import legacy_mysql as schema

    def init() -> None:
        migrate(make_repository(db_url))

    started = time.monotonic()
    fulltext, word_index = schema.MIGRATIONS[FULLTEXT_VERSION], schema.MIGRATIONS.pop(WORD_INDEX_VERSION)
    schema.MIGRATIONS[FULLTEXT_VERSION] = (fulltext[0], ())
    try:
        init()
    finally:
        schema.MIGRATIONS[FULLTEXT_VERSION], schema.MIGRATIONS[WORD_INDEX_VERSION] = fulltext, word_index
    make_numbers(server, database)
    for start in range(0, rows, 100_000):
        chunk = min(100_000, rows - start)
        run(server, database, (LOAD_CHUNK, {"base": "2026-01-01 00:00:00", "start": start, "count": chunk}))
        print(f"  loaded {start + chunk:,} / {rows:,}", file=sys.stderr, flush=True)
    indexed = time.monotonic()
    init()  # migration 5: the posting table, filled from the rows just loaded
    index_seconds = time.monotonic() - indexed
    run(server, database, ("ANALYZE TABLE images", None), ("ANALYZE TABLE image_words", None))
    return time.monotonic() - started, index_seconds


def _measure_mysql(db_url: str, count: int) -> dict:
    from bench.list_depth import make_repository, run, server_url

    database = db_url.rsplit("/", 1)[1]
    (((rows,),),) = run(server_url(db_url), database, ("SELECT COUNT(*) FROM images", None))
    return measure_search(lambda: make_repository(db_url), rows, count)


def sqlite_search_at_scale(rows: int, count: int) -> dict:
    """The SQLite half: a database file of its own in a temporary folder, loaded, indexed, measured."""
    from bench.list_depth import make_repository
    from pixyproxy.adapters.sql.migrations import legacy_sqlite as sqlite_repository

    with tempfile.TemporaryDirectory(prefix="pixybench-search-") as folder:
        path = Path(folder) / "images.db"

        def init() -> None:
            migrate(make_repository(f"sqlite:///{path}"))

        started = time.monotonic()
        index_step = sqlite_repository.MIGRATION_STEPS.pop(WORD_INDEX_VERSION)
        try:
            init()  # version 4: the schema before the word index
        finally:
            sqlite_repository.MIGRATION_STEPS[WORD_INDEX_VERSION] = index_step
        with sqlite3.connect(path) as db:
            for start in range(0, rows, 100_000):
                db.executemany(
                    SQLITE_INSERT, (_sqlite_row(k) for k in range(start, min(rows, start + 100_000)))
                )
                print(f"  loaded {min(rows, start + 100_000):,} / {rows:,}", file=sys.stderr, flush=True)
        indexed = time.monotonic()
        init()  # the word index's migration, on the full table
        index_seconds = time.monotonic() - indexed
        load_seconds = time.monotonic() - started
        measured = measure_search(lambda: make_repository(f"sqlite:///{path}"), rows, count)
    return {"load_s": load_seconds, "index_s": index_seconds, **measured}


SQLITE_INSERT = (
    "INSERT INTO images (guid, filename, prompt, created_at, updated_at, content_type, size_bytes, width, "
    "height, model, size, quality, sha256, owner) VALUES (?, ?, ?, ?, ?, 'image/png', 1234567, 1024, 1024, "
    "'pixyproxy-offline', '1024x1024', 'high', ?, ?)"
)
PLACES = (
    "lighthouse",
    "harbour",
    "forest",
    "mountain",
    "desert",
    "city",
    "river",
    "garden",
    "castle",
    "island",
)
TIMES = ("dawn", "dusk", "noon", "night", "storm", "fog", "snow")


def _sqlite_row(k: int) -> tuple:
    """Row k as LOAD_CHUNK builds it on MySQL: the same prompt, k milliseconds after the base time."""
    from datetime import UTC, datetime, timedelta

    guid = f"00000000-0000-4000-8000-{k:012X}"
    prompt = f"a {PLACES[k % 10]} at {TIMES[k % 7]}, watercolour, study tag{k % 1000}"
    prompt += " zeppelin" if k % 100_000 == 7 else ""
    at = (datetime(2026, 1, 1, tzinfo=UTC) + timedelta(milliseconds=k)).isoformat(timespec="microseconds")
    owner = "small" if k % 10_000 == 3 else f"tenant{k % 100}"
    return (guid, f"{guid}.png", prompt, at, at, "ab" * 32, owner)


async def word_led_p50(repository, filters, count: int = 5) -> float:
    """The same query with the word forced to lead (the owner checked per candidate, as before the
    owner's index could lead): what that choice saves."""
    from pixyproxy.adapters.sql import word_postings

    chosen = word_postings.plan
    word_postings.plan = lambda words, f, reach: ("word", chosen(words, f, reach)[1])
    try:
        samples = []
        for _ in range(count):
            begun = time.perf_counter()
            await repository.list_page(100, None, filters)
            samples.append((time.perf_counter() - begun) * 1000)
        return statistics.median(samples)
    finally:
        word_postings.plan = chosen


def measure_search(make_repository: Callable, rows: int, count: int) -> dict:
    """p50 of list_page() (page of 100) for each query, its samples alternating with an unfiltered
    first page's so that drift on a shared machine hits both alike."""
    from pixyproxy.domain.search import parse_filter

    async def measure() -> tuple[list[float], list[dict]]:
        repository = make_repository()
        plain_all, results = [], []
        try:
            for label, q, share, owner in [*QUERIES, NEVER_TOGETHER]:
                filters = replace(parse_filter(q=q), owner=owner)
                await repository.list_page(100, None, filters)  # warm: pool, caches
                plain, searched = [], []
                for _ in range(count if q != NEVER_TOGETHER[1] else min(count, 10)):
                    for filtered, samples in ((None, plain), (filters, searched)):
                        begun = time.perf_counter()
                        await repository.list_page(100, None, filtered)
                        samples.append((time.perf_counter() - begun) * 1000)
                plain_all += plain
                ms, base = statistics.median(searched), statistics.median(plain)
                found = len((await repository.list_page(100, None, filters)).items)
                word_led = await word_led_p50(repository, filters) if owner else None
                results.append(
                    {"label": label, "q": q + (f" (owner {owner})" if owner else ""), "p50_ms": ms}
                    | {"matches": round(rows * share)}
                    | {
                        "plain_p50_ms": base,
                        "ratio": ms / base,
                        "page": found,
                        "in_goal": q != NEVER_TOGETHER[1],
                        "word_led_p50_ms": word_led,
                    }
                )
        finally:
            await repository.close()
        return plain_all, results

    plain_all, results = asyncio.run(measure())
    return {"rows": rows, "plain_p50_ms": statistics.median(plain_all), "queries": results}


def report(store: str, search: dict, where: str) -> dict:
    """Print one store's figure; returns its BENCH_FIGURE."""
    loaded = (
        f"loaded in {search['load_s']:.0f} s, the word index {search['index_s']:.0f} s of it"
        if search["load_s"] is not None
        else where
    )
    print(
        f"q search at {search['rows']:,} rows ({store}, list_page through the adapter, page of 100; "
        f"{loaded}): unfiltered first page p50 {search['plain_p50_ms']:.2f} ms"
    )
    for result in search["queries"]:
        print(
            f"   q={result['q']!r:34} {result['label']:36} ~{result['matches']:>9,} matches: "
            f"p50 {result['p50_ms']:6.2f} ms = {result['ratio']:4.1f}x of {result['plain_p50_ms']:.2f} ms "
            f"(page of {result['page']}){'' if result['in_goal'] else '; not in the goal'}"
        )
        if result["word_led_p50_ms"] is not None:
            print(
                f"      the word leading instead of the owner's index: p50 {result['word_led_p50_ms']:.2f} ms"
            )
    worst = max(r["ratio"] for r in search["queries"] if r["in_goal"])
    return {
        "name": f"q p50 / unfiltered p50, worst query ({store})",
        "value": worst,
        "goal": GOAL_SEARCH_RATIO,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=100, help="samples per query")
    parser.add_argument("--store", choices=("mysql", "sqlite", "both"), default="both")
    parser.add_argument(
        "--mysql-url", default=os.environ.get("BENCH_MYSQL_URL", "mysql://root@127.0.0.1:3306")
    )
    parser.add_argument("--keep", action="store_true", help="keep the MySQL database for a look")
    parser.add_argument("--database", help="measure this MySQL database (kept by --keep); no load")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, to check the bench runs")
    args = parser.parse_args(argv)
    if args.smoke:
        args.rows, args.requests = 20_000, 5
    figures = []
    if args.store in ("mysql", "both"):
        search = search_at_scale(args.rows, args.mysql_url, args.requests, args.keep, args.database)
        figures.append(report("MySQL", search, f"database {args.database} as kept"))
    if args.store in ("sqlite", "both"):
        figures.append(report("SQLite", sqlite_search_at_scale(args.rows, args.requests), ""))
    for figure in figures:
        print("BENCH_FIGURE " + json.dumps(figure))
    return 0


if __name__ == "__main__":
    sys.exit(main())
