"""`python -m bench.stack`: reads against the limit of the stack they run on, side by side in one run.

    python -m bench.stack [--before DIR --before-python PY] [--rounds 3] [--into docs/benchmarks.md]

On SQLite and the local folder, each round loads in turn: PixyProxy under uvicorn, PixyProxy under
Granian (`serve --server granian`), the code before (a directory, uvicorn; optional), a bare FastAPI app
with one route returning the same bytes from memory (bench/bare_fastapi.py), and a raw ASGI app doing
the same (bench/baseline.py). Figures: GET /image/{guid} req/s and GET /image/{guid}/content MB/s (a
200 KB PNG), each as a ratio to the bare FastAPI app; wrk with 32 connections where installed.
"""

import argparse
import statistics
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

from bench import report, run, servers
from bench.load import LoadResult, tool_name

SECTION = "## Stack limit: reads against a bare FastAPI app"
RESULTS = run.ROOT / "bench" / "stack_results.md"
SEEDED = ["meta:1000:1024", f"content:1:{run.CONTENT_BYTES}"]  # 1,000 details and one 200 KB PNG


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


def measure(args: argparse.Namespace, log) -> list[str]:
    cfg = run.Settings(args.rounds, args.seconds, args.warmup, 1000, 0, False, False)
    with tempfile.TemporaryDirectory(prefix="pixybench-stack-") as tmp, ExitStack() as stack:
        work = Path(tmp)
        env = {
            "PIXYPROXY_DATABASE_URL": f"sqlite:///{work / 'bench.db'}",
            "PIXYPROXY_STORAGE_URL": f"file:{work / 'images'}",
            "PIXYPROXY_LOG_LEVEL": "INFO",
        }
        data = run.seed(work, env, SEEDED)
        detail_paths = [f"/image/{g}" for g in data["meta"]]
        content_paths = [f"/image/{data['content'][0]}/content"]
        sides: dict[str, servers.Server] = {
            "PixyProxy, uvicorn": stack.enter_context(servers.pixyproxy_server(work, env, name="uvicorn")),
            "PixyProxy, Granian": stack.enter_context(
                servers.pixyproxy_server(work, env, name="granian", server="granian")
            ),
        }
        paths = {label: (detail_paths, content_paths) for label in sides}
        if args.before:  # its own data, seeded by its own code: its schema is older than this tree's
            old = work / "before"
            old.mkdir()
            before_env = {
                "PIXYPROXY_DATABASE_URL": f"sqlite:///{old / 'bench.db'}",
                "PIXYPROXY_STORAGE_URL": f"file:{old / 'images'}",
                "PIXYPROXY_LOG_LEVEL": "INFO",
                "PYTHONPATH": str(args.before),
            }
            seeded = run.seed(old, before_env, SEEDED, python=args.before_python)
            sides["before, uvicorn"] = stack.enter_context(
                servers.pixyproxy_server(old, before_env, name="before", python=args.before_python)
            )
            paths["before, uvicorn"] = (
                [f"/image/{g}" for g in seeded["meta"]],
                [f"/image/{seeded['content'][0]}/content"],
            )
        _, detail = run.fetch(sides["PixyProxy, uvicorn"].base_url + detail_paths[0])
        _, content = run.fetch(sides["PixyProxy, uvicorn"].base_url + content_paths[0])
        sides["bare FastAPI"] = stack.enter_context(bare_fastapi(work, detail, content))
        sides["raw ASGI"] = stack.enter_context(
            servers.baseline_server(work, detail, "application/json", "raw-json")
        )
        for label in ("bare FastAPI", "raw ASGI"):
            paths[label] = (detail_paths, content_paths)
        log("… detail reads")
        details = run.alternate(cfg, [(label, s, paths[label][0]) for label, s in sides.items()])
        raw_png = servers.baseline_server(work, content, "image/png", "raw-png")
        sides["raw ASGI"] = stack.enter_context(raw_png)
        log("… content reads")
        contents = run.alternate(cfg, [(label, s, paths[label][1]) for label, s in sides.items()])
    head = "| server | rate | ÷ bare FastAPI | p50 | server CPU per request |"
    rule = "| --- | --- | --- | --- | --- |"
    return [
        SECTION,
        "",
        f"`python -m bench.stack --rounds {args.rounds} --seconds {args.seconds}"
        + (" --before <tree>`" if args.before else "`")
        + f"; {run.load_average()}; {tool_name()} with {run.CONNECTIONS} connections.",
        "",
        f"Detail reads, SQLite (`GET /image/{{guid}}`, {len(detail)}-byte body):",
        "",
        head,
        rule,
        *_rows(details, run.rps, "req/s", "bare FastAPI"),
        "",
        f"Content, local folder (`GET /image/{{guid}}/content`, a {len(content):,}-byte PNG):",
        "",
        head,
        rule,
        *_rows(contents, run.mbps, "MB/s", "bare FastAPI"),
        "",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.stack")
    parser.add_argument("--before", type=Path, help="a tree of the code before (served by uvicorn)")
    parser.add_argument("--before-python", default=sys.executable)
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
