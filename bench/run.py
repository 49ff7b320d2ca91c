"""`python -m bench`: every performance figure of PixyProxy, measured side by side in one run.

Each figure is a ratio (or a difference) of two measurements taken in the same run on the same machine,
alternating between the two sides round by round, because absolute numbers on a shared machine drift.
The results are printed and written to docs/benchmarks.md (`--output` elsewhere, `--no-write` not at all).
"""

import argparse
import asyncio
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from bench import report, servers
from bench.load import LoadResult, run_load, tool_name, wrk_path
from pixyproxy.container import Container

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = ROOT / "docs" / "benchmarks.md"
ANALYSIS = ROOT / "bench" / "analysis.md"
SOAK = ROOT / "bench" / "soak_results.md"  # written by bench/soak.py: its section, kept at the end
COMPARE = ROOT / "bench" / "compare_results.md"  # written by bench/compare.py: before and after a change
# Kept by hand from the feature benches (bench/jobs.py, webhooks.py, variants.py, openai_compatible.py).
FEATURES = ROOT / "bench" / "features_results.md"
CONNECTIONS = 32
DETAIL_ROWS = 1000
CONTENT_BYTES = 200 * 1024
BIG_BYTES = 16 * 1024 * 1024
MYSQL_URL = os.environ.get("BENCH_MYSQL_URL", "mysql://root@127.0.0.1:3306")


@dataclass
class Figure:
    number: int
    name: str
    value: float | None
    unit: str  # "x" for ratios, "ms", "MB", "s"
    goal: str = "report"
    met: bool | None = None  # None: no goal, or not measured
    detail: list[str] = field(default_factory=list)

    def shown(self) -> str:
        if self.value is None:
            return "not measured"
        if self.unit == "x":
            return f"{self.value:.2f}x"
        return f"{self.value:.1f} {self.unit}"

    def verdict(self) -> str:
        return {True: "met", False: "NOT met", None: "—"}[self.met]


@dataclass
class Settings:
    rounds: int
    seconds: float
    warmup: float
    detail_rows: int
    big_bytes: int
    smoke: bool
    python_load: bool


# -- backends ------------------------------------------------------------------------------------


def has_adapter(selector: str, scheme: str) -> bool:
    if selector == "repository":  # one SQL layer for both databases, chosen by the URL
        return scheme in ("sqlite", "mysql")
    return scheme in getattr(Container, selector).providers


@contextlib.contextmanager
def mysql_database() -> Iterator[str]:
    """A database of our own on the shared MariaDB, dropped afterwards; yields its URL."""
    import aiomysql

    name = f"pixybench_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    host_port = MYSQL_URL.split("@", 1)[1]
    host, _, port = host_port.partition(":")

    async def run(sql: str) -> None:
        connection = await aiomysql.connect(host=host, port=int(port or 3306), user="root", password="")
        try:
            async with connection.cursor() as cursor:
                await cursor.execute(sql)
        finally:
            connection.close()

    asyncio.run(run(f"CREATE DATABASE `{name}`"))
    try:
        yield f"{MYSQL_URL}/{name}"
    finally:
        asyncio.run(run(f"DROP DATABASE IF EXISTS `{name}`"))


@contextlib.contextmanager
def moto_s3(workdir: Path) -> Iterator[dict[str, str]]:
    """A moto S3 server on a free port; yields the environment that points boto3 at it."""
    command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", "{port}"]
    with servers.start_server("moto", command, workdir, {}, ready_path="/") as moto:
        yield {
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": moto.base_url,
            "AWS_ENDPOINT_URL_S3": moto.base_url,
            "PIXYPROXY_STORAGE_URL": f"s3://pixybench-{uuid.uuid4().hex[:8]}",
        }


def seed(
    workdir: Path, env: dict[str, str], specs: list[str], python: str = sys.executable
) -> dict[str, list[str]]:
    """bench.data's stores, seeded by `python` (another tree's, with its PYTHONPATH in env, seeds its own)."""
    out = subprocess.run(
        [python, "-m", "bench.data", *specs],
        cwd=workdir,
        env=servers.clean_env(env),
        capture_output=True,
        text=True,
    )
    if out.returncode:
        raise RuntimeError(f"seeding failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def fetch(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=30) as answer:
        return answer.status, answer.read()


# -- measuring ------------------------------------------------------------------------------------


def alternate(
    cfg: Settings, sides: list[tuple[str, servers.Server, list[str]]]
) -> dict[str, list[LoadResult]]:
    """Load each side (label, server, paths) in turn, round after round; errors abort the figure.

    Each result also records the CPU time the server's processes used during the round.
    """
    for _, server, paths in sides:
        if cfg.warmup:
            run_load(server.base_url, paths, CONNECTIONS, cfg.warmup, force_python=cfg.python_load)
    results: dict[str, list[LoadResult]] = {label: [] for label, _, _ in sides}
    for _ in range(cfg.rounds):
        for label, server, paths in sides:
            cpu_before = servers.process_tree_cpu(server.process.pid)
            result = run_load(server.base_url, paths, CONNECTIONS, cfg.seconds, force_python=cfg.python_load)
            result.server_cpu_s = servers.process_tree_cpu(server.process.pid) - cpu_before
            if result.errors or not result.requests:
                raise RuntimeError(f"{label}: {result.errors} errors in {result.requests} requests")
            results[label].append(result)
    return results


def median(results: list[LoadResult], metric: Callable[[LoadResult], float]) -> float:
    return statistics.median(metric(r) for r in results)


def rounds_line(
    label: str, results: list[LoadResult], metric: Callable[[LoadResult], float], unit: str
) -> str:
    values = ", ".join(f"{metric(r):,.0f}" for r in results)
    p50 = statistics.median(r.p50_ms for r in results)
    p99 = statistics.median(r.p99_ms for r in results)
    cpu = statistics.median(r.server_cpu_s / r.requests * 1e6 for r in results)
    return (
        f"{label}: {values} {unit} per round (latency p50 {p50:.1f} ms, p99 {p99:.1f} ms; "
        f"server CPU {cpu:,.0f} µs per request)"
    )


def ratio_figure(
    number: int,
    name: str,
    results: dict[str, list[LoadResult]],
    top: str,
    bottom: str,
    metric: Callable[[LoadResult], float],
    unit: str,
    goal: float | None,
) -> Figure:
    value = median(results[top], metric) / median(results[bottom], metric)
    figure = Figure(number, name, value, "x", f"≥ {goal}" if goal else "report")
    figure.met = None if goal is None else value >= goal
    figure.detail = [rounds_line(label, results[label], metric, unit) for label in (top, bottom)]
    return figure


def rps(r: LoadResult) -> float:
    return r.requests_per_s


def mbps(r: LoadResult) -> float:
    return r.megabytes_per_s


# -- figures --------------------------------------------------------------------------------------


def detail_reads(
    cfg: Settings, workdir: Path, service: servers.Server, guids: list[str], metadata: str, goal: float
) -> Figure:
    """Figure 1 on one metadata store, against `service`; the plain server answers its detail body."""
    paths = [f"/image/{g}" for g in guids]
    status, body = fetch(service.base_url + paths[0])
    if status != 200:
        raise RuntimeError(f"GET {paths[0]} answered {status}")
    with servers.baseline_server(workdir, body, "application/json", f"baseline-json-{metadata}") as plain:
        results = alternate(cfg, [("PixyProxy", service, paths), ("plain", plain, paths)])
    figure = ratio_figure(
        1,
        f"Detail reads, {metadata}: GET /image/{{guid}} req/s ÷ plain constant JSON",
        results,
        "PixyProxy",
        "plain",
        rps,
        "req/s",
        goal,
    )
    figure.detail.append(f"{len(guids)} rows, random guids; body {len(body)} bytes in both")
    return figure


def breakdown(cfg: Settings, workdir: Path, env: dict[str, str], guids: list[str]) -> list[str]:
    """bench/breakdown.py: in-process CPU per detail read, one piece taken out at a time."""
    guids_file = workdir / "breakdown-guids.json"
    guids_file.write_text(json.dumps(guids))
    extra = {**env, "BENCH_GUIDS": str(guids_file), "BENCH_LOG": str(workdir / "breakdown.log")}
    cpu: dict[str, float] = {}
    for mode in ("full", "no-log-lines", "no-metrics", "memory-repository"):
        out = subprocess.run(
            [sys.executable, "-m", "bench.breakdown", mode, str(200 if cfg.smoke else 3000)],
            cwd=workdir,
            env=servers.clean_env(extra),
            capture_output=True,
            text=True,
        )
        if out.returncode:
            raise RuntimeError(f"bench/breakdown.py {mode} failed:\n{out.stderr[-2000:]}")
        cpu[mode] = json.loads(out.stdout.strip().splitlines()[-1])["cpu_us"]
    full = cpu["full"]
    return [
        f"Where the time goes (bench/breakdown.py: CPU per request inside the app, no network, best of 5):"
        f" {full:.0f} µs in all; the two log lines {full - cpu['no-log-lines']:.0f} µs, metrics"
        f" {full - cpu['no-metrics']:.0f} µs, the SQLite read {full - cpu['memory-repository']:.0f} µs",
    ]


def scale_out(
    cfg: Settings, workdir: Path, env: dict[str, str], one: servers.Server, guids: list[str]
) -> Figure:
    """`one` (1 worker) against the same service started with 2 workers, on the same data."""
    paths = [f"/image/{g}" for g in guids]
    with servers.pixyproxy_server(workdir, env, workers=2, name="pixyproxy-w2") as two:
        results = alternate(cfg, [("2 workers", two, paths), ("1 worker", one, paths)])
    figure = ratio_figure(
        7,
        "Scale-out: figure 1 (SQLite) with --workers 2 ÷ 1 worker",
        results,
        "2 workers",
        "1 worker",
        rps,
        "req/s",
        None,
    )
    figure.detail.append(f"{os.cpu_count()} cores shared by the server workers and the load generator")
    return figure


def content_reads(
    cfg: Settings, workdir: Path, service: servers.Server, guid: str, store: str, goal
) -> Figure:
    paths = [f"/image/{guid}/content"]
    status, body = fetch(service.base_url + paths[0])
    if status != 200:
        raise RuntimeError(f"GET {paths[0]} answered {status}")
    with servers.baseline_server(workdir, body, "image/png", f"baseline-png-{store}") as plain:
        results = alternate(cfg, [("PixyProxy", service, paths), ("plain", plain, paths)])
    figure = ratio_figure(
        2,
        f"Content, {store} store: GET /image/{{guid}}/content MB/s ÷ plain bytes from memory",
        results,
        "PixyProxy",
        "plain",
        mbps,
        "MB/s",
        goal,
    )
    figure.detail.append(f"a {len(body):,}-byte PNG")
    return figure


def memory(cfg: Settings, workdir: Path, env: dict[str, str], guid: str, size: int, store: str) -> Figure:
    path = f"/image/{guid}/content"
    with servers.pixyproxy_server(workdir, env, name=f"pixyproxy-memory-{store}") as service:
        pid = service.process.pid
        status, body = fetch(f"{service.base_url}/image/{guid}")
        if status != 200:
            raise RuntimeError(f"GET /image/{guid} answered {status}")
        size = json.loads(body)["size_bytes"]
        time.sleep(0.3)
        idle = servers.process_tree_rss(pid)
        hwm_reset = servers.reset_peak_rss(pid)
        with servers.RssSampler(pid).in_background(0.002) as sampler:
            result = run_load(service.base_url, [path], CONNECTIONS, 60, force_python=True, once=True)
        peak = max(sampler.peak, servers.process_tree_peak_rss(pid) if hwm_reset else 0)
    if result.errors or result.bytes != CONNECTIONS * size:
        raise RuntimeError(
            f"downloads failed: {result.errors} errors, {result.bytes} of {CONNECTIONS * size} bytes"
        )
    growth = (peak - idle) / 2**20
    figure = Figure(
        6,
        f"Memory, {store} store: peak RSS - idle RSS, {CONNECTIONS} clients downloading a "
        f"{size / 2**20:.0f} MiB image at once",
        growth,
        "MiB",
        "≤ 64 MiB",
        growth <= 64,
    )
    figure.detail = [
        f"idle {idle / 2**20:.1f} MiB, peak {peak / 2**20:.1f} MiB "
        f"({'VmHWM reset before the downloads, and' if hwm_reset else ''} sampled every 2 ms)",
        f"{result.bytes / 2**20:,.0f} MiB served in {result.seconds:.2f} s",
    ]
    return figure


# -- the other developers' scripts (figures 3, 4, 5) ------------------------------------------------


def external(
    script: str, numbers: list[int], cfg: Settings, names: dict[int, str]
) -> tuple[list[Figure], str]:
    """Run bench/<script>.py, which prints its own figures; parse `BENCH_FIGURE {json}` lines if any."""
    if not (ROOT / "bench" / f"{script}.py").exists():
        figures = [
            Figure(n, names[n], None, "", detail=[f"bench/{script}.py is not there yet"]) for n in numbers
        ]
        return figures, ""
    command = [sys.executable, "-m", f"bench.{script}"] + (["--smoke"] if cfg.smoke else [])
    out = subprocess.run(command, cwd=ROOT, env=servers.clean_env({}), capture_output=True, text=True)
    shown = "\n".join(line for line in out.stdout.splitlines() if not line.startswith("BENCH_FIGURE "))
    text = shown + (f"\n[stderr]\n{out.stderr[-2000:]}" if out.returncode else "")
    figures = []
    for line in out.stdout.splitlines():
        if line.startswith("BENCH_FIGURE "):
            data = json.loads(line.removeprefix("BENCH_FIGURE "))
            figures.append(
                Figure(
                    int(data["number"]),
                    data.get("name", names.get(int(data["number"]), "")),
                    data.get("value"),
                    data.get("unit", ""),
                    data.get("goal", "report"),
                    data.get("met"),
                    list(data.get("detail", [])),
                )
            )
    found = {f.number for f in figures}
    for n in numbers:
        if n not in found:
            why = f"bench/{script}.py exited {out.returncode}" if out.returncode else "see its output below"
            figures.append(Figure(n, names[n], None, "", detail=[why]))
    return figures, text


# -- the run ----------------------------------------------------------------------------------------


def other_test_runs() -> int:
    """How many pytest processes not started by this bench were running (others sharing the cores)."""
    mine = set(servers.process_tree(os.getpid()))
    parent = os.getppid()
    while parent > 1:  # and whatever started it (a pytest smoke test is not another developer's run)
        mine.add(parent)
        try:
            parent = int(Path(f"/proc/{parent}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
    count = 0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) not in mine:
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
            except OSError:
                continue
            if b"pytest" in cmdline:
                count += 1
    return count


def measure(cfg: Settings, only: set[int] | None, log: Callable[[str], None]) -> tuple[list[Figure], dict]:
    figures: list[Figure] = []
    extra: dict = {}
    wanted = (lambda n: True) if not only else (lambda n: n in only)

    def attempt(what: str, action: Callable[[], None]) -> None:
        extra["others_seen"] = max(extra.get("others_seen", 0), other_test_runs())
        log(f"… {what}")
        started = time.monotonic()
        try:
            action()
        except Exception as exc:
            log(f"   failed: {exc}")
            extra.setdefault("failures", "")
            extra["failures"] += f"- {what}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}\n"
        else:
            log(f"   done in {time.monotonic() - started:.0f} s")

    with tempfile.TemporaryDirectory(prefix="pixybench-") as tmp:
        work = Path(tmp)

        # SQLite + file: figures 1, 7, 2 and 6.
        if any(wanted(n) for n in (1, 2, 6, 7)):
            local = work / "local"
            local.mkdir()
            env = {
                "PIXYPROXY_DATABASE_URL": f"sqlite:///{local / 'bench.db'}",
                "PIXYPROXY_STORAGE_URL": f"file:{local / 'images'}",
                "PIXYPROXY_LOG_LEVEL": "INFO",
            }
            data = seed(
                local,
                env,
                [f"meta:{cfg.detail_rows}:1024", f"content:1:{CONTENT_BYTES}", f"big:1:{cfg.big_bytes}"],
            )

            if any(wanted(n) for n in (1, 2, 7)):
                with servers.pixyproxy_server(local, env, name="pixyproxy-local") as one:
                    if wanted(1):

                        def fig1() -> None:
                            figure = detail_reads(cfg, local, one, data["meta"], "SQLite", 0.6)
                            figures.append(figure)
                            figure.detail += breakdown(cfg, local, env, data["meta"])

                        attempt("figure 1 on SQLite (and its breakdown)", fig1)
                    if wanted(7):
                        attempt(
                            "figure 7 (workers 2 ÷ 1)",
                            lambda: figures.append(scale_out(cfg, local, env, one, data["meta"])),
                        )
                    if wanted(2):
                        attempt(
                            "figure 2 on the file store",
                            lambda: figures.append(
                                content_reads(cfg, local, one, data["content"][0], "file", 0.5)
                            ),
                        )
            if wanted(6):
                attempt(
                    "figure 6 on the file store",
                    lambda: figures.append(memory(cfg, local, env, data["big"][0], cfg.big_bytes, "file")),
                )

        # MySQL: figure 1.
        if wanted(1):
            if has_adapter("repository", "mysql"):

                def fig1_mysql():
                    with mysql_database() as url:
                        mysql = work / "mysql"
                        mysql.mkdir()
                        env = {
                            "PIXYPROXY_DATABASE_URL": url,
                            "PIXYPROXY_STORAGE_URL": f"file:{mysql / 'images'}",
                        }
                        rows = seed(mysql, env, [f"meta:{cfg.detail_rows}:1024"])["meta"]
                        with servers.pixyproxy_server(mysql, env, name="pixyproxy-mysql") as service:
                            figures.append(detail_reads(cfg, mysql, service, rows, "MySQL", 0.5))

                attempt("figure 1 on MySQL", fig1_mysql)
            else:
                figures.append(
                    Figure(1, "Detail reads, MySQL", None, "", "≥ 0.5", detail=["no MySQL adapter yet"])
                )

        # S3 (moto): figures 2 and 6.
        if wanted(2) or wanted(6):
            if has_adapter("blobs", "s3"):

                def s3_figures():
                    s3 = work / "s3"
                    s3.mkdir()
                    with moto_s3(s3) as s3_env:
                        env = {**s3_env, "PIXYPROXY_DATABASE_URL": f"sqlite:///{s3 / 'bench.db'}"}
                        data = seed(s3, env, [f"content:1:{CONTENT_BYTES}", f"big:1:{cfg.big_bytes}"])
                        if wanted(2):
                            with servers.pixyproxy_server(s3, env, name="pixyproxy-s3") as service:
                                content = data["content"][0]
                                figures.append(content_reads(cfg, s3, service, content, "S3 (moto)", None))
                        if wanted(6):
                            figures.append(memory(cfg, s3, env, data["big"][0], cfg.big_bytes, "S3 (moto)"))

                attempt("figures 2 and 6 on S3 (moto)", s3_figures)
            else:
                figures.append(Figure(2, "Content, S3", None, "", detail=["no S3 adapter yet"]))

        # Figures 3, 4 (generation) and 5 (list depth) come from their own scripts.
        names = {
            3: "Generation overhead: p50 POST /image/ - p50 of the fake generator alone",
            4: "Generation concurrency: 200 concurrent POST /image/, generator latency 1 s",
            5: "List depth: p50 GET /image/?limit=100, 10^6 rows ÷ 10^4 rows (MySQL)",
        }
        for script, numbers in (("generation", [3, 4]), ("list_depth", [5])):
            if any(wanted(n) for n in numbers):

                def run_script(script=script, numbers=numbers):
                    found, text = external(script, numbers, cfg, names)
                    figures.extend(f for f in found if wanted(f.number))
                    if text:
                        extra[f"output_{script}"] = text

                attempt(f"bench/{script}.py (figures {', '.join(map(str, numbers))})", run_script)

    figures.sort(key=lambda f: f.number)
    return figures, extra


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def machine() -> dict[str, str]:
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cores": str(os.cpu_count()),
        "cpu": model,
        "python": platform.python_version(),
        "os": f"{platform.system()} {platform.release()}",
    }


def table(figures: list[Figure]) -> list[str]:
    lines = ["| # | Figure | Measured | Goal | Verdict |", "|---|---|---|---|---|"]
    for f in figures:
        lines.append(f"| {f.number} | {f.name} | {f.shown()} | {f.goal} | {f.verdict()} |")
    return lines


def render(
    figures: list[Figure], extra: dict, info: dict, cfg: Settings, command: str, notes: list[str]
) -> str:
    out = [
        "# Benchmarks",
        "",
        "Every figure is measured by one command, on one machine, in one run; ratios compare two servers",
        "measured alternately in the same run, because absolute numbers on a shared machine drift from run",
        "to run. Reproduce with:",
        "",
        "```sh",
        "bench/setup                # once: installs wrk (else a Python load generator is used)",
        ".venv/bin/python -m bench  # all figures; rewrites this file",
        "```",
        "",
        "`--smoke` runs every figure briefly (CI does, via tests/e2e/test_bench_smoke.py);",
        "`--only 1,6` picks figures; `--help` lists the rest. The MySQL figure uses `BENCH_MYSQL_URL`",
        "(default `mysql://root@127.0.0.1:3306`; a database of its own is created and dropped). S3 figures",
        "run on a moto server the bench starts.",
        "",
        "## Latest run",
        "",
        f"- Date: {info['date']}",
        f"- Machine: {info['cores']} cores ({info['cpu']}), {info['os']}, Python {info['python']}",
        f"- Command: `{command}`",
        f"- Load generator: {info['load']}, {CONNECTIONS} connections, on the same cores as the server",
        f"- Rounds: {cfg.rounds} x {cfg.seconds:g} s per side, alternating, after {cfg.warmup:g} s"
        " of warm-up; the median round is used",
        "",
        *table(figures),
        "",
        "## Details",
        "",
    ]
    for f in figures:
        out.append(f"**{f.number}. {f.name}** — {f.shown()} (goal {f.goal}: {f.verdict()})")
        out.append("")
        out += [f"- {line}" for line in f.detail]
        out.append("")
    if extra.get("failures"):
        out += ["## Failures in this run", "", extra["failures"].rstrip(), ""]
    for key in sorted(k for k in extra if k.startswith("output_")):
        out += [
            f"### Output of bench/{key.removeprefix('output_')}.py",
            "",
            "```",
            extra[key].rstrip(),
            "```",
            "",
        ]
    out += ["## Notes", "", *[f"- {n}" for n in notes], ""]
    if COMPARE.exists():  # the last before/after run (python -m bench.compare), not measured by this one
        out += [COMPARE.read_text().rstrip(), ""]
    if FEATURES.exists():
        out += [FEATURES.read_text().rstrip(), ""]
    if ANALYSIS.exists():  # kept by hand beside the bench: what was tuned, what stands in the way
        out += [ANALYSIS.read_text().rstrip(), ""]
    if SOAK.exists():  # the soak's last figures (python -m bench.soak), which this run does not measure
        out += [SOAK.read_text().rstrip(), ""]
    return "\n".join(out)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="every figure, briefly (under a minute)")
    parser.add_argument("--only", help="comma-separated figure numbers, e.g. 1,6")
    parser.add_argument("--rounds", type=int, help="alternating rounds per figure (default 3)")
    parser.add_argument("--seconds", type=float, help="seconds of load per round and side (default 10)")
    parser.add_argument("--python-load", action="store_true", help="use bench/pyload.py even if wrk exists")
    parser.add_argument(
        "--output",
        type=Path,
        help=f"where to write the markdown (default {DEFAULT_OUTPUT.relative_to(ROOT)};"
        " a --smoke run writes only where this says)",
    )
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--note", action="append", default=[], help="a note to add to the report")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cfg = Settings(
        rounds=args.rounds or (1 if args.smoke else 3),
        seconds=args.seconds or (1.0 if args.smoke else 10.0),
        warmup=0.0 if args.smoke else 2.0,
        detail_rows=100 if args.smoke else DETAIL_ROWS,
        big_bytes=2 * 1024 * 1024 if args.smoke else BIG_BYTES,
        smoke=args.smoke,
        python_load=args.python_load,
    )
    only = {int(n) for n in args.only.split(",")} if args.only else None
    info = machine()
    info["load"] = tool_name(args.python_load)
    if not wrk_path():
        print("wrk is not installed (run bench/setup): using the slower Python load generator", flush=True)
    others_before, load_before = other_test_runs(), load_average()
    started = time.monotonic()
    figures, extra = measure(cfg, only, lambda line: print(line, flush=True))
    others_after, load_after = other_test_runs(), load_average()
    others_during = max(others_before, others_after, extra.pop("others_seen", 0))
    notes = [
        "The load generator runs on the same cores as the servers it loads; both sides of each ratio share"
        " that handicap. With 2 cores, figure 7's second worker competes with the load generator.",
    ]
    notes += report.conditions(time.monotonic() - started, load_before, load_after, others_during, cfg.smoke)
    notes += args.note
    command = "python -m bench " + " ".join(argv if argv is not None else sys.argv[1:])
    text = render(figures, extra, info, cfg, command.strip(), notes)
    print()
    print("\n".join(table(figures)))
    if extra.get("failures"):
        print("\nFailures:\n" + extra["failures"])
    output = args.output or (None if args.smoke else DEFAULT_OUTPUT)
    if output is not None and not args.no_write:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text)
        print(f"\nwritten to {output}")
    return 1 if extra.get("failures") else 0
