"""`python -m bench.soak` for a few seconds: every kind of request is sent and answered, none fails.

A smoke run only (a fixed small rate, no capacity measurement): the soak's figures come from the long
run in docs/benchmarks.md, not from tests.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.report import replace_section
from bench.soak import KINDS, SECTION

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(90)
def test_a_short_soak_sends_every_kind_and_none_fails():
    command = [sys.executable, "-m", "bench.soak", "--minutes", "0.1", "--rate", "40", "--warmup", "2"]
    command += ["--seed-images", "30", "--no-write"]
    run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=80)
    lines = [x for x in run.stdout.splitlines() if x.startswith("SOAK_RESULT ")]
    assert lines, run.stdout[-3000:] + run.stderr[-3000:]
    result = json.loads(lines[-1].removeprefix("SOAK_RESULT "))
    assert result["errors"] == 0, result["error_samples"]
    assert set(result["kinds"]) == set(KINDS)
    for kind, figures in result["kinds"].items():
        assert figures["requests"] > 0 and figures["errors"] == 0, (kind, figures)
        assert 0 < figures["p50_ms"] <= figures["p99_ms"], (kind, figures)
    # 2 + 6 s at 40/s with 2% generations: at least a few, each taking the generator's 1 s
    assert result["kinds"]["generate"]["p50_ms"] >= 1000
    assert result["rss_after_warmup"] > 0 and result["rss_end"] > 0
    assert run.returncode == (0 if result["rss_met"] else 1), run.stderr[-2000:]
    assert f"| {KINDS[0]} |" in run.stdout and SECTION in run.stdout


def test_the_soak_section_is_replaced_in_place_or_appended():
    section = f"{SECTION}\n\nnew figures\n"
    before = "# Benchmarks\n\n## Latest run\n\nx\n"
    appended = replace_section(before, section)
    assert appended == before + "\n" + section
    old = f"# Benchmarks\n\n{SECTION}\n\nold figures\n\n### a sub-heading\n\nold\n\n## After\n\ny\n"
    replaced = replace_section(old, section)
    assert replaced == f"# Benchmarks\n\n{SECTION}\n\nnew figures\n\n## After\n\ny\n"
    assert replace_section(replaced, section) == replaced


def test_python_m_bench_keeps_the_soak_section_at_the_end(tmp_path, monkeypatch):
    from bench import run

    results = tmp_path / "soak_results.md"
    results.write_text(f"{SECTION}\n\nthe soak's figures\n")
    monkeypatch.setattr(run, "SOAK", results)
    info = {**run.machine(), "load": "wrk"}
    settings = run.Settings(1, 1.0, 0.0, 1, 1, True, False)
    text = run.render([], {}, info, settings, "python -m bench", [])
    assert text.rstrip().endswith(f"{SECTION}\n\nthe soak's figures")
    assert replace_section(text, results.read_text()).rstrip() == text.rstrip()
