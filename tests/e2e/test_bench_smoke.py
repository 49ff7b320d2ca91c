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
