"""`python -m bench.sql_layer --before DIR`: the SQL layer, before and after, side by side in one run.

Each tree (`--before`: a directory holding another revision's source, e.g. `git archive main | tar -x
-C DIR`; the after tree is this one) is started as users start it (`pixyproxy serve`, one worker) under
this Python, on SQLite and on MySQL, and measured in alternating rounds:
  * detail reads: sequential GET /image/{guid} on one keep-alive connection (p50, p99, req/s);
  * POST /image/ (offline generator, no latency): p50;
  * SQLite only: /healthz p99 and max while another process holds the file's write lock for 2 s and a
    POST waits for it.
Prints a Markdown table.
"""

import argparse
import contextlib
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx
import pymysql

from bench.servers import free_port

ROOT = Path(__file__).resolve().parents[1]
MYSQL = "mysql://root@127.0.0.1:3306"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] * 1000


@contextlib.contextmanager
def serve(tree: Path, folder: Path, database_url: str):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIXYPROXY_")}
    env.update(
        PYTHONPATH=str(tree),
        PIXYPROXY_DATABASE_URL=database_url,
        PIXYPROXY_OFFLINE_LATENCY_SECONDS="0",
        PIXYPROXY_LOG_LEVEL="WARNING",
    )
    log = open(folder / f"server-{port}.log", "wb")  # noqa: SIM115
    process = subprocess.Popen(
        [sys.executable, "-m", "pixyproxy.entrypoints.cli", "serve", "--port", str(port)],
        cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(400):
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        process.wait(10)
        log.close()


def seed(url: str, count: int) -> tuple[list[str], list[float]]:
    guids, times = [], []
    with httpx.Client(base_url=url, timeout=30) as client:
        for n in range(count):
            started = time.perf_counter()
            response = client.post("/image/", json={"prompt": f"a lighthouse number {n}"})
            times.append(time.perf_counter() - started)
            guids.append(response.json()["guid"])
    return guids, times


def reads(url: str, guids: list[str], count: int) -> list[float]:
    times = []
    with httpx.Client(base_url=url, timeout=30) as client:
        for _ in range(count):
            started = time.perf_counter()
            client.get(f"/image/{random.choice(guids)}").raise_for_status()
            times.append(time.perf_counter() - started)
    return times


def healthz_while_locked(url: str, db_path: Path, hold: float = 2.0) -> list[float]:
    holder = sqlite3.connect(db_path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    started_at = time.monotonic()
    poster = threading.Thread(
        target=lambda: httpx.post(f"{url}/image/", json={"prompt": "waits for the lock"}, timeout=30)
    )
    poster.start()
    times = []
    with httpx.Client(base_url=url, timeout=30) as client:
        while time.monotonic() - started_at < hold:
            began = time.perf_counter()
            client.get("/healthz")
            times.append(time.perf_counter() - began)
    holder.execute("ROLLBACK")
    holder.close()
    poster.join()
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--before", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--reads", type=int, default=400)
    parser.add_argument("--images", type=int, default=100)
    args = parser.parse_args()
    trees = {"before": args.before.resolve(), "after": ROOT}
    rows = []
    with tempfile.TemporaryDirectory(prefix="pixybench-sql-") as scratch:
        for dialect in ("sqlite", "mysql"):
            with contextlib.ExitStack() as stack:
                urls, guids, posts, paths, databases = {}, {}, {}, {}, []
                for label, tree in trees.items():
                    folder = Path(scratch) / f"{dialect}-{label}"
                    folder.mkdir()
                    if dialect == "sqlite":
                        paths[label] = folder / "db.sqlite"
                        database_url = f"sqlite:///{paths[label]}"
                    else:
                        name = f"pixyproxy_test_bench_{uuid.uuid4().hex[:8]}"
                        databases.append(name)
                        database_url = f"{MYSQL}/{name}"
                    urls[label] = stack.enter_context(serve(tree, folder, database_url))
                    guids[label], posts[label] = seed(urls[label], args.images)
                times: dict[str, list[float]] = {label: [] for label in trees}
                locked: dict[str, list[float]] = {label: [] for label in trees}
                for _ in range(args.rounds):
                    for label in trees:
                        times[label] += reads(urls[label], guids[label], args.reads)
                        if dialect == "sqlite":
                            locked[label] += healthz_while_locked(urls[label], paths[label])
                for label in trees:
                    read = times[label]
                    row = [dialect, label, f"{pct(read, 0.5):.2f}", f"{pct(read, 0.99):.2f}"]
                    row += [f"{len(read) / sum(read):.0f}", f"{statistics.median(posts[label]) * 1000:.1f}"]
                    if dialect == "sqlite":
                        row += [f"{pct(locked[label], 0.99):.0f}", f"{max(locked[label]) * 1000:.0f}"]
                    else:
                        row += ["-", "-"]
                    rows.append(row)
            for name in databases:
                with contextlib.closing(pymysql.connect(host="127.0.0.1", user="root")) as connection:
                    connection.cursor().execute(f"DROP DATABASE IF EXISTS `{name}`")
    print(
        "| store | code | detail p50 ms | detail p99 ms | detail req/s (sequential) | POST p50 ms "
        "| /healthz p99 ms, lock held | /healthz max ms, lock held |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
