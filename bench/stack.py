"""`python -m bench.stack`: reads against the limit of the stack they run on, side by side in one run.

    python -m bench.stack [--before DIR --before-python PY] [--rounds 3] [--into docs/benchmarks.md]

On SQLite and on MySQL (a fresh database on 127.0.0.1:3306, dropped at the end), with the local
folder for the bytes, each round loads in turn: PixyProxy under uvicorn, PixyProxy under
Granian (`serve --server granian`), the code before (a directory, uvicorn; optional), a bare FastAPI app
with one route returning the same bytes from memory (bench/bare_fastapi.py), and a raw ASGI app doing
the same (bench/baseline.py). Figures: GET /image/{guid} req/s and GET /image/{guid}/content MB/s (a
200 KB PNG), each as a ratio to the bare FastAPI app; wrk with 32 connections where installed.
"""

import argparse
import contextlib
import statistics
import sys
import tempfile
import uuid
from contextlib import ExitStack
from pathlib import Path

import pymysql

from bench import report, run, servers
from bench.load import LoadResult, tool_name

SECTION = "## Stack limit: reads against a bare FastAPI app"
RESULTS = run.ROOT / "bench" / "stack_results.md"
SEEDED = ["meta:1000:1024", f"content:1:{run.CONTENT_BYTES}"]  # 1,000 details and one 200 KB PNG
MYSQL = "mysql://root@127.0.0.1:3306"
STORE_NAMES = {"sqlite": "SQLite", "mysql": "MySQL"}
HEAD = "| server | rate | ÷ bare FastAPI | p50 | server CPU per request |"
RULE = "| --- | --- | --- | --- | --- |"


def bare_fastapi(workdir: Path, detail: bytes, content: bytes):
    (workdir / "bare.json").write_bytes(detail)
    (workdir / "bare.png").write_bytes(content)
    command = [sys.executable, "-m", "bench.bare_fastapi", "--port", "{port}"]
    command += ["--detail-file", str(workdir / "bare.json"), "--content-file", str(workdir / "bare.png")]
    return servers.start_server("bare-fastapi", command, workdir, {})


def _median(results: list[LoadResult], metric) -> float:
    return statistics.median(metric(r) for r in results)


def _rows(results: dict[str, list[LoadResult]], metric, unit: str, reference: str) -> list[str]:
    base = _median(results[reference], metric)
    lines = []
    for label, rounds in results.items():
        value = _median(rounds, metric)
        cpu = statistics.median(r.server_cpu_s / r.requests * 1e6 for r in rounds)
        p50 = statistics.median(r.p50_ms for r in rounds)
        lines.append(f"| {label} | {value:,.0f} {unit} | {value / base:.2f} | {p50:.1f} ms | {cpu:,.0f} µs |")
    return lines


def store_env(store: str, folder: Path, databases: list[str]) -> dict[str, str]:
    """One side's stores: SQLite in its folder, or a fresh MySQL database (dropped at the end)."""
    url = f"sqlite:///{folder / 'bench.db'}"
    if store == "mysql":
        name = f"pixybench_stack_{uuid.uuid4().hex[:10]}"
        with contextlib.closing(pymysql.connect(host="127.0.0.1", user="root")) as connection:
            connection.cursor().execute(f"CREATE DATABASE `{name}`")
        databases.append(name)
        url = f"{MYSQL}/{name}"
    return {
        "PIXYPROXY_DATABASE_URL": url,
        "PIXYPROXY_STORAGE_URL": f"file:{folder / 'images'}",
        "PIXYPROXY_LOG_LEVEL": "INFO",
    }


def measure_store(args, log, store: str, work: Path, stack: ExitStack, databases: list[str]) -> list[str]:
    cfg = run.Settings(args.rounds, args.seconds, args.warmup, 1000, 0, False, False)
    here = work / store
    here.mkdir()
    env = store_env(store, here, databases)
    data = run.seed(here, env, SEEDED)
    detail_paths = [f"/image/{g}" for g in data["meta"]]
    content_paths = [f"/image/{data['content'][0]}/content"]
    sides: dict[str, servers.Server] = {
        "PixyProxy, uvicorn": stack.enter_context(
            servers.pixyproxy_server(here, env, name=f"uvicorn-{store}")
        ),
        "PixyProxy, Granian": stack.enter_context(
            servers.pixyproxy_server(here, env, name=f"granian-{store}", server="granian")
        ),
    }
    paths = {label: (detail_paths, content_paths) for label in sides}
    if args.before:  # its own data, seeded by its own code: its schema is older than this tree's
        old = here / "before"
        old.mkdir()
        before_env = {**store_env(store, old, databases), "PYTHONPATH": str(args.before)}
        seeded = run.seed(old, before_env, SEEDED, python=args.before_python)
        sides["before, uvicorn"] = stack.enter_context(
            servers.pixyproxy_server(old, before_env, name=f"before-{store}", python=args.before_python)
        )
        paths["before, uvicorn"] = (
            [f"/image/{g}" for g in seeded["meta"]],
            [f"/image/{seeded['content'][0]}/content"],
        )
    _, detail = run.fetch(sides["PixyProxy, uvicorn"].base_url + detail_paths[0])
    _, content = run.fetch(sides["PixyProxy, uvicorn"].base_url + content_paths[0])
    sides["bare FastAPI"] = stack.enter_context(bare_fastapi(here, detail, content))
    sides["raw ASGI"] = stack.enter_context(
        servers.baseline_server(here, detail, "application/json", "raw-json")
    )
    for label in ("bare FastAPI", "raw ASGI"):
        paths[label] = (detail_paths, content_paths)
    log(f"… detail reads, {store}")
    details = run.alternate(cfg, [(label, s, paths[label][0]) for label, s in sides.items()])
    sides["raw ASGI"] = stack.enter_context(servers.baseline_server(here, content, "image/png", "raw-png"))
    log(f"… content reads, {store}")
    contents = run.alternate(cfg, [(label, s, paths[label][1]) for label, s in sides.items()])
    name = STORE_NAMES[store]
    return [
        f"Detail reads, {name} (`GET /image/{{guid}}`, {len(detail)}-byte body):",
        "",
        HEAD,
        RULE,
        *_rows(details, run.rps, "req/s", "bare FastAPI"),
        "",
        f"Content, {name} and the local folder (`GET /image/{{guid}}/content`, a {len(content):,}-byte PNG):",
        "",
        HEAD,
        RULE,
        *_rows(contents, run.mbps, "MB/s", "bare FastAPI"),
        "",
    ]


def measure(args: argparse.Namespace, log) -> list[str]:
    databases: list[str] = []
    lines = [
        SECTION,
        "",
        f"`python -m bench.stack --stores {args.stores} --rounds {args.rounds} --seconds {args.seconds}"
        + (" --before <tree>`" if args.before else "`")
        + f"; load average at the start {run.load_average()};"
        + f" {tool_name()} with {run.CONNECTIONS} connections.",
        "",
    ]
    try:
        with tempfile.TemporaryDirectory(prefix="pixybench-stack-") as tmp:
            for store in args.stores.split(","):
                with ExitStack() as stack:  # one store's servers at a time
                    lines += measure_store(args, log, store, Path(tmp), stack, databases)
    finally:
        drop_databases(databases)
    return lines


def drop_databases(databases: list[str]) -> None:
    """The MySQL databases store_env created."""
    for name in databases:
        with contextlib.closing(pymysql.connect(host="127.0.0.1", user="root")) as connection:
            connection.cursor().execute(f"DROP DATABASE IF EXISTS `{name}`")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.stack")
    parser.add_argument("--before", type=Path, help="a tree of the code before (served by uvicorn)")
    parser.add_argument("--before-python", default=sys.executable)
    parser.add_argument("--stores", default="sqlite,mysql", help="sqlite, mysql or both")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--into", type=Path, help="replace the section in this Markdown file")
    args = parser.parse_args(argv)
    lines = measure(args, lambda line: print(line, file=sys.stderr, flush=True))
    text = "\n".join(lines)
    RESULTS.write_text(text + "\n")
    print(text)
    if args.into:
        args.into.write_text(report.replace_section(args.into.read_text(), text))
    return 0


if __name__ == "__main__":
    sys.exit(main())
