"""`python -m bench --smoke` runs and produces every figure (a smoke run: its numbers mean nothing here,
and the goals are not asserted; benchmarks are not tests)."""

import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.services import unavailable

ROOT = Path(__file__).resolve().parents[2]
ROW = re.compile(r"^\| (\d) \| (.+?) \| (.+?) \| (.+?) \| (.+?) \|$")


def mysql_reachable() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 3306), timeout=1).close()
        return True
    except OSError:
        return False


@pytest.mark.timeout(300)
def test_bench_smoke_produces_every_figure(tmp_path):
    if not mysql_reachable():
        unavailable("MySQL (figures 1 on MySQL and 5)")
    output = tmp_path / "benchmarks.md"
    run = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--output", str(output)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    rows = [ROW.match(line) for line in output.read_text().splitlines()]
    measured = {(int(m[1]), m[2]): m[3] for m in rows if m and m[1].isdigit()}
    assert all(value != "not measured" for value in measured.values()), measured
    names = " | ".join(f"{number} {name}" for number, name in measured)
    for expected in ("1 Detail reads, SQLite", "1 Detail reads, MySQL", "2 Content, file", "2 Content, S3",
                     "3 ", "4 ", "5 ", "6 Memory, file", "6 Memory, S3", "7 Scale-out"):  # fmt: skip
        assert expected in names, (expected, names)
    for number, _ in measured:
        assert re.search(r"\d", measured[(number, _)])
    text = output.read_text()
    assert "cores" in text and "Date:" in text
    load = "wrk" if shutil.which("wrk") else "pyload"
    assert load in text


def test_python_load_generator_counts_requests_and_bodies(tmp_path):
    """The fallback for machines without wrk (bench/pyload.py), in several processes at once."""
    from bench import servers
    from bench.load import run_load

    body = b'{"guid": "x"}' * 10
    with servers.baseline_server(tmp_path, body, "application/json", "plain") as plain:
        result = run_load(plain.base_url, [f"/image/{i}" for i in range(2000)], 8, 0.5, force_python=True)
    assert result.tool == "pyload" and result.errors == 0 and result.requests > 10
    assert result.bytes == result.requests * len(body)
    assert 0 < result.p50_ms <= result.p99_ms


@pytest.mark.timeout(120)
def test_bench_compare_measures_both_trees_against_the_plain_baseline(tmp_path):
    """`python -m bench.compare` (before and after a change), briefly: this tree against itself, figure 2."""
    output = tmp_path / "compare.md"
    command = ["bench.compare", "--smoke", "--before", str(ROOT), "--after", str(ROOT), "--figures", "2"]
    command += ["--output", str(output)]
    run = subprocess.run(
        [sys.executable, "-m", *command],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    text = output.read_text()
    row = next(line for line in text.splitlines() if line.startswith("| 2. Content, file store"))
    _, before, after, plain, change, goal, verdict = (cell.strip() for cell in row.strip("|").split("|"))
    for side in (before, after, plain):
        assert re.fullmatch(r"[\d,]+ MB/s = \d+\.\d\dx plain; [\d,]+ µs CPU/req", side), row
    assert plain.split(" = ")[1].startswith("1.00x") and re.fullmatch(r"\d+\.\d\dx", change), row
    assert goal == "≥ 0.5" and verdict in ("holds", "LOWER"), row
    assert f"{ROOT} at " in text and "cores" in text and "Date:" in text


@pytest.mark.timeout(300)
def test_stack_and_generation_limit_benches_measure_every_side(tmp_path):
    """Both stores, both servers: every side of each table is measured (a smoke run; numbers mean
    nothing here)."""
    if not mysql_reachable():
        unavailable("MySQL (the benches' MySQL sides)")
    stack = subprocess.run(
        [sys.executable, "-m", "bench.stack", "--stores", "sqlite,mysql", "--rounds", "1",
         "--seconds", "0.5", "--warmup", "0.2"],
        cwd=ROOT, capture_output=True, text=True, timeout=280,
    )  # fmt: skip
    assert stack.returncode == 0, stack.stdout[-3000:] + stack.stderr[-3000:]
    rows = re.findall(
        r"^\| (PixyProxy, \w+|bare FastAPI|raw ASGI) \| ([\d,]+) (?:req|MB)/s \|", stack.stdout, re.M
    )
    assert len(rows) == 4 * 4, stack.stdout  # four tables (detail, content; SQLite, MySQL), four sides each
    generation = subprocess.run(
        [sys.executable, "-m", "bench.generation_limit", "--rounds", "1", "--requests", "2",
         "--concurrency", "5", "--stores", "sqlite,mysql", "--servers", "uvicorn,granian"],
        cwd=ROOT, capture_output=True, text=True, timeout=280,
    )  # fmt: skip
    assert generation.returncode == 0, generation.stdout[-3000:] + generation.stderr[-3000:]
    sides = re.findall(r"^\| after, (SQLite|MySQL), (uvicorn|granian), (/image/|/v1) \| ([\d,]+) req/s \|"
                       r" [\d.]+ \| ([\d.]+) ms \|", generation.stdout, re.M)  # fmt: skip
    assert len(sides) == 2 * 2 * 2, generation.stdout
    assert all(float(cpu) > 0 for *_, cpu in sides), sides  # the CPU of Granian's child processes too
