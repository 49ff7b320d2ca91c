"""`python -m bench.compare`: figures 1, 2, 3 and 5 for two trees of PixyProxy, side by side in one run.

    python -m bench.compare --before /tmp/before --before-python /tmp/before-venv/bin/python [--after HEAD]

--before and --after each name a directory (a git worktree, say) or a revision of this repository,
exported with `git archive` (the default after is HEAD, not the working tree others may be editing).
Each tree's server runs its own code under its own Python (so each has its own dependencies), started
as users start it (`pixyproxy serve`, one worker) on data its own `bench.data` seeded:
  * figure 1: GET /image/{guid} req/s on SQLite and on MySQL,
  * figure 2: GET /image/{guid}/content MB/s on the file store,
  * figure 3: the latency a generation adds: sequential POST /image/ p50 on the offline generator (no
    latency of its own), after minus before, round by round,
each alternating round by round between the before server, the after server and the bare-uvicorn
baseline (bench/baseline.py) that the ratios divide by; and
  * figure 5: each tree's own bench/list_depth.py (10^6 ÷ 10^4 rows on MySQL), before and after in turn.
It also runs each tree's bench/breakdown.py (in-process CPU per detail read, one piece taken out at a
time). The section is printed and written to bench/compare_results.md, which `python -m bench` appends to
docs/benchmarks.md; `--into docs/benchmarks.md` replaces the section there at once.
"""

import argparse
import http.client
import itertools
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from bench import report, run, servers
from bench.load import LoadResult, tool_name, wrk_path

ROOT = run.ROOT
RESULTS = ROOT / "bench" / "compare_results.md"
SECTION = "## Before and after"
BREAKDOWN_MODES = ("full", "no-log-lines", "no-metrics", "memory-repository", "no-hot-path")
FIGURES = (1, 2, 3, 5)
POSTS_PER_ROUND = 200  # sequential POST /image/ per tree and round (figure 3)
BASELINES = itertools.count()  # each baseline its own body file


@dataclass
class Tree:
    label: str
    root: Path
    python: str
    source: str = ""  # which code: a commit, and whether the directory had uncommitted changes

    def env(self, extra: dict[str, str]) -> dict[str, str]:
        # PYTHONPATH names this tree only: servers.clean_env would put the bench's own tree first.
        return {**extra, "PYTHONPATH": str(self.root)}

    def run_module(self, module: str, args: list[str], cwd: Path, env: dict[str, str]):
        return subprocess.run(
            [self.python, "-m", module, *args],
            cwd=cwd,
            env=servers.clean_env(self.env(env)),
            capture_output=True,
            text=True,
        )

    def server(self, workdir: Path, env: dict[str, str], name: str):
        return servers.pixyproxy_server(
            workdir, self.env(env), name=f"{name}-{self.label}", python=self.python
        )

    def seed(self, workdir: Path, env: dict[str, str], specs: list[str]) -> dict[str, list[str]]:
        out = self.run_module("bench.data", specs, workdir, env)
        if out.returncode:
            raise RuntimeError(f"{self.label}: seeding failed:\n{out.stderr[-3000:]}")
        return json.loads(out.stdout.strip().splitlines()[-1])


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(cwd), *args], capture_output=True, text=True, check=True).stdout


def source_tree(spec: str, exports: Path) -> tuple[Path, str]:
    """A directory as it stands, or a revision of this repository exported with `git archive`.

    A revision is exported because the working tree may hold others' unfinished edits.
    """
    path = Path(spec)
    if path.is_dir():
        try:
            commit = git(path, "rev-parse", "--short", "HEAD").strip()
            dirty = git(path, "status", "--porcelain", "--untracked-files=no").strip()
        except (OSError, subprocess.CalledProcessError):
            return path.resolve(), f"{path.resolve()} (not a git checkout)"
        return path.resolve(), f"{path.resolve()} at {commit}" + (
            " with uncommitted changes" if dirty else ""
        )
    commit = git(ROOT, "rev-parse", "--short", spec).strip()
    target = exports / commit
    target.mkdir(exist_ok=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", commit], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)
    return target, f"commit {commit}, exported"


@dataclass
class Side:
    median: float  # req/s or MB/s; for figure 5 the ratio itself
    ratio: float | None = None  # ÷ plain
    cpu_us: float | None = None  # server CPU per request


@dataclass
class Comparison:
    """One figure measured on every tree (and the plain baseline), in the same run."""

    name: str
    unit: str
    goal: float | None  # the goal for the ratio to plain (≥), or for figure 5 (≤)
    sides: dict[str, Side | None] = field(default_factory=dict)  # tree label (and "plain") -> figures
    detail: list[str] = field(default_factory=list)
    lower_is_better: bool = False
    added_at_most: float | None = None  # figure 3: the goal for after minus before, in the unit

    def value(self, label: str) -> float | None:
        side = self.sides.get(label)
        if side is None:
            return None
        return side.median if self.lower_is_better or self.added_at_most is not None else side.ratio


def read_figure(
    cfg: run.Settings,
    trees: list[Tree],
    sides: dict[str, tuple[servers.Server, list[str]]],
    plain_body: tuple[bytes, str],
    workdir: Path,
    name: str,
    metric: Callable[[LoadResult], float],
    unit: str,
    goal: float | None,
) -> Comparison:
    """Alternate round by round: each tree's server, then the plain baseline answering `plain_body`."""
    with servers.baseline_server(workdir, *plain_body, f"baseline-{next(BASELINES)}") as plain:
        order = [(t.label, *sides[t.label]) for t in trees] + [("plain", plain, sides[trees[-1].label][1])]
        results = run.alternate(cfg, order)
    comparison = Comparison(name, unit, goal)
    base = run.median(results["plain"], metric)
    for label, rounds in results.items():
        value = run.median(rounds, metric)
        cpu = statistics.median(r.server_cpu_s / r.requests * 1e6 for r in rounds)
        comparison.sides[label] = Side(value, value / base, cpu)
        comparison.detail.append(run.rounds_line(label, rounds, metric, unit))
    before, after = (results[t.label] for t in (trees[0], trees[-1]))
    paired = [metric(a) / metric(b) for a, b in zip(after, before, strict=True)]
    comparison.detail.append(
        "after ÷ before, round by round (each pair measured back to back): "
        + ", ".join(f"{x:.2f}x" for x in paired)
    )
    return comparison


def post_p50_ms(server: servers.Server, posts: int) -> float:
    """p50 of `posts` sequential POST /image/ on one kept-alive connection, in ms."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    body = json.dumps({"prompt": "a lighthouse at dusk", "size": "256x256"})
    took = []
    try:
        for _ in range(posts):
            started = time.perf_counter()
            connection.request("POST", "/image/", body, {"Content-Type": "application/json"})
            answer = connection.getresponse()
            answer.read()
            took.append((time.perf_counter() - started) * 1000)
            if answer.status != 200:
                raise RuntimeError(f"POST /image/ answered {answer.status}")
    finally:
        connection.close()
    return statistics.median(took)


def post_latency(cfg: run.Settings, trees: list[Tree], served: dict[str, servers.Server]) -> Comparison:
    """Figure 3: the trees in turn, round after round, on the same generator: the difference is the
    latency the change adds to a generation."""
    posts = 20 if cfg.smoke else POSTS_PER_ROUND
    rounds: dict[str, list[float]] = {t.label: [] for t in trees}
    for tree in trees:
        post_p50_ms(served[tree.label], 10)  # warm-up
    for _ in range(cfg.rounds):
        for tree in trees:
            rounds[tree.label].append(post_p50_ms(served[tree.label], posts))
    comparison = Comparison(
        "3. Added latency: sequential POST /image/ p50, offline generator", "ms", None, added_at_most=1.0
    )
    for label, values in rounds.items():
        comparison.sides[label] = Side(statistics.median(values))
        comparison.detail.append(f"{label}: " + ", ".join(f"{v:.2f} ms" for v in values))
    before, after = (rounds[t.label] for t in (trees[0], trees[-1]))
    comparison.detail.append(
        f"after - before, round by round ({posts} POSTs each): "
        + ", ".join(f"{a - b:+.2f} ms" for a, b in zip(after, before, strict=True))
    )
    return comparison


def bodies(sides: dict[str, tuple[servers.Server, list[str]]]) -> dict[str, bytes]:
    found = {}
    for label, (server, paths) in sides.items():
        status, body = run.fetch(server.base_url + paths[0])
        if status != 200:
            raise RuntimeError(f"{label}: GET {paths[0]} answered {status}")
        found[label] = body
    return found


def breakdown(cfg: run.Settings, tree: Tree, workdir: Path, env: dict[str, str], guids: list[str]) -> str:
    """The tree's own bench/breakdown.py on its seeded SQLite store; modes it lacks are left out."""
    guids_file = workdir / f"breakdown-guids-{tree.label}.json"
    guids_file.write_text(json.dumps(guids))
    extra = {**env, "BENCH_GUIDS": str(guids_file), "BENCH_LOG": str(workdir / f"breakdown-{tree.label}.log")}
    cpu: dict[str, float] = {}
    for mode in BREAKDOWN_MODES:
        out = tree.run_module("bench.breakdown", [mode, str(200 if cfg.smoke else 3000)], workdir, extra)
        if out.returncode == 0:
            cpu[mode] = json.loads(out.stdout.strip().splitlines()[-1])["cpu_us"]
        elif "mode must be one of" not in out.stderr and "mode must be one of" not in out.stdout:
            raise RuntimeError(f"{tree.label}: bench/breakdown.py {mode} failed:\n{out.stderr[-2000:]}")
    full = cpu["full"]
    parts = [
        f"{tree.label}: {full:.0f} µs in all",
        f"the two log lines {full - cpu['no-log-lines']:.0f} µs",
        f"metrics {full - cpu['no-metrics']:.0f} µs",
        f"the SQLite read {full - cpu['memory-repository']:.0f} µs",
    ]
    if "no-hot-path" in cpu:
        parts.append(f"(its FastAPI route instead of its hot-path middleware: {cpu['no-hot-path']:.0f} µs)")
    return ", ".join(parts)


def list_depth(cfg: run.Settings, tree: Tree) -> tuple[float, str, list[str]]:
    out = tree.run_module("bench.list_depth", ["--smoke"] if cfg.smoke else [], tree.root, {})
    line = next((x for x in out.stdout.splitlines() if x.startswith("BENCH_FIGURE ")), None)
    if out.returncode or line is None:
        raise RuntimeError(
            f"{tree.label}: bench/list_depth.py exited {out.returncode}:\n{out.stderr[-2000:]}"
        )
    data = json.loads(line.removeprefix("BENCH_FIGURE "))
    return data["value"], data["name"], [f"{tree.label}: {x}" for x in data.get("detail", [])]


def measure(cfg: run.Settings, trees: list[Tree], wanted: set[int], log: Callable[[str], None]) -> dict:
    out: dict = {"comparisons": [], "failures": [], "breakdown": [], "others_seen": 0}

    def attempt(what: str, action: Callable[[], None]) -> None:
        out["others_seen"] = max(out["others_seen"], run.other_test_runs())
        log(f"… {what}")
        started = time.monotonic()
        try:
            action()
        except Exception as exc:
            log(f"   failed: {exc}")
            out["failures"].append(f"{what}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")
        else:
            log(f"   done in {time.monotonic() - started:.0f} s")

    with tempfile.TemporaryDirectory(prefix="pixybench-compare-") as tmp, ExitStack() as stack:
        work = Path(tmp)
        if wanted & {1, 2, 3}:
            local, envs, data, sides = {}, {}, {}, {}
            for tree in trees:
                local[tree.label] = folder = work / f"local-{tree.label}"
                folder.mkdir()
                envs[tree.label] = {
                    "PIXYPROXY_DATABASE_URL": f"sqlite:///{folder / 'bench.db'}",
                    "PIXYPROXY_STORAGE_URL": f"file:{folder / 'images'}",
                    "PIXYPROXY_LOG_LEVEL": "INFO",
                }
                data[tree.label] = tree.seed(
                    folder,
                    envs[tree.label],
                    [f"meta:{cfg.detail_rows}:1024", f"content:1:{run.CONTENT_BYTES}"],
                )
                sides[tree.label] = stack.enter_context(tree.server(folder, envs[tree.label], "local"))

            def detail(store: str, served: dict[str, servers.Server], guids: dict[str, list[str]]) -> None:
                paths = {label: (served[label], [f"/image/{g}" for g in guids[label]]) for label in served}
                found = bodies(paths)
                comparison = read_figure(
                    cfg, trees, paths, (found[trees[-1].label], "application/json"), work,
                    f"1. Detail reads, {store}: GET /image/{{guid}} req/s ÷ plain constant JSON",
                    run.rps, "req/s", 0.6 if store == "SQLite" else 0.5,
                )  # fmt: skip
                comparison.detail.append(
                    f"{len(next(iter(guids.values())))} rows per tree, random guids; bodies "
                    + ", ".join(f"{label} {len(body)} bytes" for label, body in found.items())
                    + f"; plain answers {trees[-1].label}'s"
                )
                out["comparisons"].append(comparison)

            if 1 in wanted:
                meta = {label: data[label]["meta"] for label in data}
                attempt("figure 1 on SQLite", lambda: detail("SQLite", sides, meta))
                for tree in trees:
                    attempt(
                        f"breakdown of a detail read ({tree.label})",
                        lambda tree=tree: out["breakdown"].append(
                            breakdown(cfg, tree, local[tree.label], envs[tree.label], meta[tree.label])
                        ),
                    )
            if 2 in wanted:

                def content() -> None:
                    paths = {
                        t.label: (sides[t.label], [f"/image/{data[t.label]['content'][0]}/content"])
                        for t in trees
                    }
                    found = bodies(paths)
                    comparison = read_figure(
                        cfg, trees, paths, (found[trees[-1].label], "image/png"), work,
                        "2. Content, file store: GET /image/{guid}/content MB/s ÷ plain bytes from memory",
                        run.mbps, "MB/s", 0.5,
                    )  # fmt: skip
                    comparison.detail.append(
                        "PNGs of " + ", ".join(f"{label} {len(b):,}" for label, b in found.items()) + " bytes"
                    )
                    out["comparisons"].append(comparison)

                attempt("figure 2 on the file store", content)
            if 3 in wanted:
                attempt("figure 3", lambda: out["comparisons"].append(post_latency(cfg, trees, sides)))

            if 1 in wanted:

                def mysql() -> None:
                    with ExitStack() as inner:
                        served, guids = {}, {}
                        for tree in trees:
                            url = inner.enter_context(run.mysql_database())
                            folder = work / f"mysql-{tree.label}"
                            folder.mkdir()
                            env = {
                                "PIXYPROXY_DATABASE_URL": url,
                                "PIXYPROXY_STORAGE_URL": f"file:{folder / 'images'}",
                            }
                            seeded = tree.seed(folder, env, [f"meta:{cfg.detail_rows}:1024"])
                            guids[tree.label] = seeded["meta"]
                            served[tree.label] = inner.enter_context(tree.server(folder, env, "mysql"))
                        detail("MySQL", served, guids)

                stack.close()  # the SQLite servers are done: their cores go to the MySQL figure
                attempt("figure 1 on MySQL", mysql)
        stack.close()

        if 5 in wanted:
            comparison = Comparison(
                "5. List depth: p50 GET /image/?limit=100, 10^6 rows ÷ 10^4 rows (MySQL)", "x", 1.5,
                lower_is_better=True,
            )  # fmt: skip

            def depth(tree: Tree) -> None:
                value, name, lines = list_depth(cfg, tree)
                comparison.name = f"5. {name}"
                comparison.sides[tree.label] = Side(value)
                comparison.detail += lines

            for tree in trees:
                attempt(f"figure 5 ({tree.label}'s bench/list_depth.py)", lambda tree=tree: depth(tree))
            out["comparisons"].append(comparison)
    out["comparisons"].sort(key=lambda c: c.name.split(".")[0])  # by figure number, stable within one
    return out


def verdict(c: Comparison, before: str, after: str) -> str:
    b, a = c.value(before), c.value(after)
    if a is None or b is None:
        return "not measured"
    if c.added_at_most is not None:
        return "within goal" if a - b <= c.added_at_most else "NOT within goal"
    if c.lower_is_better:
        return "within goal" if a <= (c.goal or float("inf")) else "NOT within goal"
    return "holds" if a >= b else "LOWER"


def render(
    out: dict, trees: list[Tree], info: dict, cfg: run.Settings, command: str, notes: list[str]
) -> str:
    before, after = trees[0].label, trees[-1].label

    def shown(c: Comparison, label: str) -> str:
        side = c.sides.get(label)
        if side is None:
            return "—" if c.lower_is_better and label == "plain" else "not measured"
        if c.added_at_most is not None:
            return f"{side.median:.2f} {c.unit}"
        if side.ratio is None:
            return f"{side.median:.2f}x"
        return f"{side.median:,.0f} {c.unit} = {side.ratio:.2f}x plain; {side.cpu_us:,.0f} µs CPU/req"

    lines = [
        SECTION,
        "",
        f"Written by `bench/compare.py`: the code before ({trees[0].source}) and after ({trees[-1].source}),"
        " each server on its own code and Python, measured in one run. Figures 1 and 2"
        " alternate round by round between before, after and the plain baseline; figure 5 is each tree's own"
        " bench/list_depth.py, one after the other. Goal for the change: figures 1 and 2 after ≥ before,"
        " figure 5 within its goal.",
        "",
        f"- Date: {info['date']}",
        f"- Machine: {info['cores']} cores ({info['cpu']}), {info['os']}, bench Python {info['python']}",
        f"- Command: `{command}`",
        f"- Load generator: {info['load']}, {run.CONNECTIONS} connections, on the same cores as the servers",
        f"- Rounds: {cfg.rounds} x {cfg.seconds:g} s per side, alternating, after {cfg.warmup:g} s of"
        " warm-up each; the median round is used",
        "",
        f"| Figure | {before} | {after} | plain | {after} ÷ {before} | Goal | Verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in out["comparisons"]:
        b, a = c.value(before), c.value(after)
        change = f"{a / b:.2f}x" if a is not None and b else "—"
        goal = "—" if c.goal is None else (f"≤ {c.goal}" if c.lower_is_better else f"≥ {c.goal}")
        if c.added_at_most is not None:
            change = f"{a - b:+.2f} {c.unit}" if a is not None and b is not None else "—"
            goal = f"{after} - {before} ≤ +{c.added_at_most:g} {c.unit}"
        cells = [shown(c, label) for label in (before, after, "plain")]
        lines.append(f"| {c.name} | {' | '.join(cells)} | {change} | {goal} | {verdict(c, before, after)} |")
    lines += ["", "Per round (server CPU per request: CPU time of the server's processes ÷ requests):", ""]
    for c in out["comparisons"]:
        lines += [f"**{c.name}**", "", *[f"- {d}" for d in c.detail], ""]
    if out["breakdown"]:
        lines += [
            "**Where a detail read's time goes** (each tree's bench/breakdown.py: CPU per request inside the"
            " app on its SQLite store, no network, best of 5):",
            "",
            *[f"- {b}" for b in out["breakdown"]],
            "",
        ]
    if out["failures"]:
        lines += ["**Failures in this run**", "", *[f"- {f}" for f in out["failures"]], ""]
    lines += ["**Notes**", "", *[f"- {n}" for n in notes]]
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.compare", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--before", required=True, help="the code before: a directory, or a revision of this repository"
    )
    parser.add_argument("--before-python", help="its Python (default: the bench's own)")
    parser.add_argument(
        "--after",
        default="HEAD",
        help="the code after: a revision (default HEAD, exported: not the working tree), or a directory",
    )
    parser.add_argument(
        "--after-python", default=sys.executable, help="its Python (default: the bench's own)"
    )
    parser.add_argument("--figures", default="1,2,3,5", help="comma-separated, among 1,2,3,5 (default all)")
    parser.add_argument("--smoke", action="store_true", help="briefly (its numbers mean nothing)")
    parser.add_argument("--rounds", type=int, help="alternating rounds per figure (default 3)")
    parser.add_argument("--seconds", type=float, help="seconds of load per round and side (default 10)")
    parser.add_argument("--python-load", action="store_true", help="use bench/pyload.py even if wrk exists")
    parser.add_argument(
        "--output",
        type=Path,
        help="where to write the section (default bench/compare_results.md; a --smoke run: only here)",
    )
    parser.add_argument(
        "--into", type=Path, help="also replace the section in this file (docs/benchmarks.md)"
    )
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--note", action="append", default=[], help="a note to add to the section")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    wanted = {int(n) for n in args.figures.split(",")}
    if not wanted <= set(FIGURES):
        raise SystemExit(f"--figures: only {', '.join(map(str, FIGURES))}")
    trees = [
        Tree("before", Path(), args.before_python or sys.executable),
        Tree("after", Path(), args.after_python),
    ]
    cfg = run.Settings(
        rounds=args.rounds or (1 if args.smoke else 3),
        seconds=args.seconds or (1.0 if args.smoke else 10.0),
        warmup=0.0 if args.smoke else 2.0,
        detail_rows=100 if args.smoke else run.DETAIL_ROWS,
        big_bytes=0,
        smoke=args.smoke,
        python_load=args.python_load,
    )
    info = run.machine()
    info["load"] = tool_name(args.python_load)
    if not wrk_path():
        print("wrk is not installed (run bench/setup): using the slower Python load generator", flush=True)
    others_before, load_before = run.other_test_runs(), run.load_average()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="pixybench-trees-") as exports:
        for tree, spec in zip(trees, (args.before, args.after), strict=True):
            tree.root, tree.source = source_tree(spec, Path(exports))
            print(f"{tree.label}: {tree.source}, {tree.python}", flush=True)
        out = measure(cfg, trees, wanted, lambda line: print(line, flush=True))
    others = max(others_before, run.other_test_runs(), out["others_seen"])
    notes = report.conditions(time.monotonic() - started, load_before, run.load_average(), others, cfg.smoke)
    notes += args.note
    command = "python -m bench.compare " + " ".join(argv if argv is not None else sys.argv[1:])
    section = render(out, trees, info, cfg, command.strip(), notes)
    print()
    print(section)
    output = args.output or (None if args.smoke else RESULTS)
    if not args.no_write:
        if output is not None:
            output.write_text(section)
            print(f"written to {output}")
        if args.into is not None:
            args.into.write_text(
                report.replace_section(args.into.read_text() if args.into.exists() else "", section)
            )
            print(f"section replaced in {args.into}")
    return 1 if out["failures"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
