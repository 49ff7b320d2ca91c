"""`python -m bench.sql_layer --before DIR`: the SQL layer, before and after, side by side in one run.

Each tree (`--before`: a directory holding another revision's source, e.g. `git archive main | tar -x
-C DIR`; the after tree is this one) is started as users start it (`pixyproxy serve`, one worker) under
this Python, on SQLite and on MySQL, and measured in alternating rounds (before, after, before, ...):
  * detail reads: sequential GET /image/{guid} on one keep-alive connection (p50, p99, req/s);
  * detail reads under load, as figure 1 of bench/compare.py: req/s with --connections kept-alive
    connections for --seconds (wrk, or bench/pyload.py without it);
  * POST /image/ (offline generator, no latency): sequential p50, --posts per round;
  * SQLite only: /healthz p99 and max while another process holds the file's write lock for 2 s and a
    POST waits for it.
Prints a Markdown table of the medians over the rounds, then after ÷ before round by round (each pair
measured back to back), and the load average at the start and the end.
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

from bench.load import run_load
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


def posts(url: str, count: int) -> list[float]:
    times = []
    with httpx.Client(base_url=url, timeout=30) as client:
        for n in range(count):
            started = time.perf_counter()
            client.post("/image/", json={"prompt": f"a harbour at dawn number {n}"}).raise_for_status()
            times.append(time.perf_counter() - started)
    return times


def loaded_reads(url: str, guids: list[str], connections: int, seconds: float) -> float:
    """Figure 1's measure: detail reads per second with `connections` busy connections."""
    result = run_load(url, [f"/image/{g}" for g in guids], connections, seconds)
    if result.errors:
        raise RuntimeError(f"{result.errors} failed reads under load at {url}")
    return result.requests_per_s


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


def load_average() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def measure(args: argparse.Namespace, trees: dict[str, Path], scratch: str, dialect: str) -> dict:
    """Every figure of one store, round by round: {label: {figure: [value per round]}}."""
    figures: dict[str, dict[str, list]] = {label: {} for label in trees}
    with contextlib.ExitStack() as stack:
        urls: dict[str, str] = {}
        guids: dict[str, list[str]] = {}
        paths: dict[str, Path] = {}
        databases: list[str] = []
        stack.callback(drop_databases, databases)
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
            guids[label], _ = seed(urls[label], args.images)
        for _ in range(args.rounds):
            for label in trees:
                f = figures[label]
                f.setdefault("reads", []).append(reads(urls[label], guids[label], args.reads))
                f.setdefault("loaded", []).append(
                    loaded_reads(urls[label], guids[label], args.connections, args.seconds)
                )
                f.setdefault("posts", []).append(posts(urls[label], args.posts))
                if dialect == "sqlite":
                    f.setdefault("locked", []).append(healthz_while_locked(urls[label], paths[label]))
    return figures


def drop_databases(names: list[str]) -> None:
    for name in names:
        with contextlib.closing(pymysql.connect(host="127.0.0.1", user="root")) as connection:
            connection.cursor().execute(f"DROP DATABASE IF EXISTS `{name}`")


def summary(dialect: str, label: str, f: dict[str, list]) -> list[str]:
    read = [t for times in f["reads"] for t in times]
    post = [t for times in f["posts"] for t in times]
    row = [dialect, label, f"{pct(read, 0.5):.2f}", f"{pct(read, 0.99):.2f}", f"{len(read) / sum(read):.0f}"]
    row += [f"{statistics.median(f['loaded']):.0f}", f"{pct(post, 0.5):.1f}"]
    if "locked" in f:
        locked = [t for times in f["locked"] for t in times]
        row += [f"{pct(locked, 0.99):.0f}", f"{max(locked) * 1000:.0f}"]
    else:
        row += ["-", "-"]
    return row


def paired(before: dict[str, list], after: dict[str, list]) -> list[str]:
    """after ÷ before, round by round."""

    def per_round(figure: str, value) -> str:
        return ", ".join(
            f"{value(a) / value(b):.2f}x" for a, b in zip(after[figure], before[figure], strict=True)
        )

    def seq_rate(times: list[float]) -> float:
        return len(times) / sum(times)

    lines = [
        f"sequential reads req/s {per_round('reads', seq_rate)}",
        f"reads under load req/s {per_round('loaded', float)}",
        f"POST p50 {per_round('posts', lambda t: pct(t, 0.5))}; after - before ms: "
        + ", ".join(
            f"{pct(a, 0.5) - pct(b, 0.5):+.1f}" for a, b in zip(after["posts"], before["posts"], strict=True)
        ),
    ]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--before", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--reads", type=int, default=400, help="sequential reads per round")
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--posts", type=int, default=40, help="sequential POSTs per round")
    parser.add_argument("--connections", type=int, default=16, help="reads under load: connections")
    parser.add_argument("--seconds", type=float, default=5, help="reads under load: seconds per round")
    parser.add_argument("--stores", default="sqlite,mysql")
    args = parser.parse_args()
    trees = {"before": args.before.resolve(), "after": ROOT}
    started = f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load average {load_average()}"
    rows, ratios = [], []
    with tempfile.TemporaryDirectory(prefix="pixybench-sql-") as scratch:
        for dialect in args.stores.split(","):
            figures = measure(args, trees, scratch, dialect)
            rows += [summary(dialect, label, figures[label]) for label in trees]
            ratios += [f"- {dialect}, {line}" for line in paired(figures["before"], figures["after"])]
    print(f"Started {started}; ended with load average {load_average()}.\n")
    print(
        "| store | code | detail p50 ms | detail p99 ms | detail req/s (sequential) "
        f"| detail req/s ({args.connections} connections) | POST p50 ms "
        "| /healthz p99 ms, lock held | /healthz max ms, lock held |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print("\nAfter ÷ before, round by round:\n")
    print("\n".join(ratios))


if __name__ == "__main__":
    main()
