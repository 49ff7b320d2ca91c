"""Generation jobs: how close the worker gets to its concurrency cap, what a submit costs, and how jobs
spread over replicas.

1. One process (SQLite, the offline generator taking `--latency` s per image, PIXYPROXY_JOB_CONCURRENCY
   64): `--jobs` jobs submitted at once. Wall time from the first submit to the last job's end, against
   the ideal jobs / concurrency x latency (goal: within 1.15x); submit latency p50 and p99 (goal: p50 at
   most 5 ms); RSS growth of the server over the run (goal: at most 64 MB).
2. Two replicas on one MySQL database against one, the generator the bottleneck (a small concurrency
   cap per process, 2 s per image, so the shared two cores are not): jobs per second of two against
   one (goal: at least 1.8x).

Run by hand: `python -m bench.jobs` (part 2 needs MySQL at 127.0.0.1:3306, root without a password, or
--mysql URL; it creates and drops its own database). Prints one JSON object of figures.
"""

import argparse
import asyncio
import json
import sqlite3
import statistics
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path

import aiohttp
import pymysql

from bench.servers import pixyproxy_server, process_tree_rss

# Small images, so drawing them (CPU in the offline generator) is not what is measured.
SIZE = "64x64"
SUBMITTERS = 4  # concurrent submitting connections (--submitters): a burst, not a thousand open requests


async def submit_all(base_urls: list[str], count: int, submitters: int) -> tuple[list[float], float]:
    """Submit `count` jobs at once over `submitters` connections (round robin over the replicas); each
    submit's seconds, and when the first one started (time.time()). aiohttp, the cheapest client here:
    with httpx's async client the client itself was most of each submit's time."""
    latencies: list[float] = []
    queue: asyncio.Queue[int] = asyncio.Queue()
    for index in range(count):
        queue.put_nowait(index)
    connector = aiohttp.TCPConnector(limit=submitters)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def submitter() -> None:
            while not queue.empty():
                index = queue.get_nowait()
                url = f"{base_urls[index % len(base_urls)]}/image/jobs"
                started = time.perf_counter()
                async with http.post(url, json={"prompt": f"bench job {index}", "size": SIZE}) as response:
                    await response.read()
                    latencies.append(time.perf_counter() - started)
                    assert response.status == 202, await response.text()

        # Warm-up requests per replica, not counted: connections and first-request costs.
        for base in base_urls:
            for _ in range(submitters):
                async with http.get(f"{base}/image/jobs?limit=1") as response:
                    assert response.status == 200
        first = time.time()
        await asyncio.gather(*(submitter() for _ in range(submitters)))
    return latencies, first


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def _epoch(value) -> float:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        from datetime import UTC

        value = value.replace(tzinfo=UTC)
    return value.timestamp()


def wait_sqlite(db: Path, count: int, rss, pid: int, timeout: float) -> tuple[float, int]:
    """Until `count` jobs have ended: the last finished_at (epoch) and the peak RSS seen meanwhile.
    Polled: the jobs run in the server process."""
    peak = rss
    deadline = time.monotonic() + timeout
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as connection:
        while True:
            peak = max(peak, process_tree_rss(pid))
            ended, last = connection.execute(
                "SELECT COUNT(*), MAX(finished_at) FROM jobs WHERE status IN ('succeeded', 'failed')"
            ).fetchone()
            if ended >= count:
                failed = connection.execute("SELECT COUNT(*) FROM jobs WHERE status = 'failed'").fetchone()
                assert failed[0] == 0, f"{failed[0]} jobs failed"
                return _epoch(last), peak
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {ended} of {count} jobs ended in {timeout}s")
            time.sleep(0.2)


def one_process(jobs: int, latency: float, concurrency: int, submitters: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-jobs-") as folder:
        workdir = Path(folder)
        env = {
            "PIXYPROXY_OFFLINE_LATENCY_SECONDS": str(latency),
            "PIXYPROXY_JOB_CONCURRENCY": str(concurrency),
            "PIXYPROXY_LOG_LEVEL": "WARNING",
        }
        with pixyproxy_server(workdir, env) as server:
            before = process_tree_rss(server.process.pid)
            latencies, first = asyncio.run(submit_all([server.base_url], jobs, submitters))
            last, peak = wait_sqlite(
                workdir / "pixyproxy-data" / "pixyproxy.db", jobs, before, server.process.pid, 600
            )
    wall = last - first
    ideal = jobs / concurrency * latency
    return {
        "jobs": jobs,
        "latency_s": latency,
        "concurrency": concurrency,
        "submitters": submitters,
        "wall_s": round(wall, 2),
        "ideal_s": round(ideal, 2),
        "wall_over_ideal": round(wall / ideal, 3),
        "submit_p50_ms": round(statistics.median(latencies) * 1000, 2),
        "submit_p99_ms": round(percentile(latencies, 0.99) * 1000, 2),
        "rss_before_mb": round(before / 2**20, 1),
        "rss_growth_mb": round((peak - before) / 2**20, 1),
    }


def mysql_run(mysql, url: str, replicas: int, jobs: int, env: dict) -> float:
    """Jobs per second of `replicas` processes on a fresh database, from first submit to last end."""
    name = "pixyproxy_bench_" + uuid.uuid4().hex[:12]
    with mysql.cursor() as cursor:
        cursor.execute("CREATE DATABASE `" + name + "`")  # a generated name, not input
    try:
        with tempfile.TemporaryDirectory(prefix="bench-jobs-mysql-") as folder:
            workdir = Path(folder)
            full = {**env, "PIXYPROXY_DATABASE_URL": f"{url}/{name}"}
            full["PIXYPROXY_STORAGE_URL"] = f"file:{workdir / 'images'}"
            servers = [pixyproxy_server(workdir, full, name=f"replica{i}") for i in range(replicas)]
            started = [s.__enter__() for s in servers]
            try:
                _, first = asyncio.run(submit_all([s.base_url for s in started], jobs, SUBMITTERS))
                deadline = time.monotonic() + 600
                while True:  # polled: the jobs run in the servers' processes
                    with mysql.cursor() as cursor:
                        cursor.execute(
                            "SELECT COUNT(*), MAX(finished_at) FROM `" + name + "`.jobs "  # noqa: S608 - a generated name
                            "WHERE status IN ('succeeded', 'failed')"
                        )
                        ended, last = cursor.fetchone()
                    if ended >= jobs:
                        break
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"only {ended} of {jobs} jobs ended")
                    time.sleep(0.2)
            finally:
                for server in reversed(servers):
                    server.__exit__(None, None, None)
        return jobs / (_epoch(last) - first)
    finally:
        with mysql.cursor() as cursor:
            cursor.execute("DROP DATABASE IF EXISTS `" + name + "`")


def replicas(url: str, jobs: int, latency: float, concurrency: int) -> dict:
    env = {
        "PIXYPROXY_OFFLINE_LATENCY_SECONDS": str(latency),
        "PIXYPROXY_JOB_CONCURRENCY": str(concurrency),
        "PIXYPROXY_JOB_POLL_SECONDS": "0.1",
        "PIXYPROXY_LOG_LEVEL": "WARNING",
    }
    host_port = url.removeprefix("mysql://").split("@")[-1]
    host, _, port = host_port.partition(":")
    mysql = pymysql.connect(host=host, port=int(port or 3306), user="root", autocommit=True)
    try:
        one = mysql_run(mysql, url, 1, jobs, env)
        two = mysql_run(mysql, url, 2, jobs, env)
    finally:
        mysql.close()
    return {
        "jobs": jobs,
        "latency_s": latency,
        "concurrency_per_replica": concurrency,
        "one_replica_jobs_per_s": round(one, 2),
        "two_replicas_jobs_per_s": round(two, 2),
        "speedup": round(two / one, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--latency", type=float, default=2.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--mysql", default="mysql://root@127.0.0.1:3306")
    parser.add_argument("--replica-jobs", type=int, default=160)
    parser.add_argument("--replica-concurrency", type=int, default=8)
    parser.add_argument("--replica-latency", type=float, default=2.0)
    parser.add_argument("--submitters", type=int, default=SUBMITTERS, help="Connections submitting.")
    parser.add_argument("--skip", choices=["one", "replicas"], action="append", default=[])
    args = parser.parse_args()
    figures = {}
    if "one" not in args.skip:
        figures["one_process"] = one_process(args.jobs, args.latency, args.concurrency, args.submitters)
        print(json.dumps(figures["one_process"]), flush=True)
    if "replicas" not in args.skip:
        figures["replicas"] = replicas(
            args.mysql, args.replica_jobs, args.replica_latency, args.replica_concurrency
        )
        print(json.dumps(figures["replicas"]), flush=True)
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
