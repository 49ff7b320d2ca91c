"""schemathesis against the service's own OpenAPI schema, over HTTP to the real server (offline generator).

Stateless (examples, coverage, fuzzing) and stateful (links inferred from the schema: create, then read,
content, url) phases; every built-in check plus the error-shape check in schemathesis_hooks.py. A fixed
seed keeps CI deterministic; set PIXYPROXY_FUZZ_SEED to explore other cases locally.

positive_data_acceptance is left out on purpose: the schema says what a request looks like, not which
values the configured generator supports (quality, size) or which cursors this service issued, so a
well-formed but unknown value is rightly a 422. use_after_free too: DELETE /image/jobs/{id} cancels a
job, which stays readable by contract (a per-operation setting did not reach the stateful phase); that a
deleted image answers 404 everywhere is tested directly in test_image_life_e2e.py.

/mcp is not in the OpenAPI schema (one JSON-RPC endpoint, its inputs the tools' own schemas): it is
fuzzed by hypothesis in test_mcp_fuzz.py, from those schemas, with the same no-5xx, no-traceback checks.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.server import run_server

HOOKS = Path(__file__).with_name("schemathesis_hooks.py")
SEED = os.environ.get("PIXYPROXY_FUZZ_SEED", "20261124")
KEY = "schemathesis-key-41f9"

CONFIGS = {
    # name: (server env, extra schemathesis args, max examples per operation and phase)
    "open": ({}, [], 40),
    "api-keys": ({"PIXYPROXY_API_KEYS": KEY}, ["--header", f"Authorization: Bearer {KEY}"], 20),
}


@pytest.mark.timeout(300)
@pytest.mark.parametrize("config", list(CONFIGS))
def test_schemathesis_finds_no_failure(tmp_path, config):
    env, extra, examples = CONFIGS[config]
    seen = tmp_path / "errors-checked.txt"
    with run_server(tmp_path, env) as server:
        command = [
            sys.executable, "-m", "schemathesis.cli", "run", f"{server.base_url}/openapi.json",
            "--phases", "examples,coverage,fuzzing,stateful",
            "--checks", "all", "--exclude-checks", "positive_data_acceptance,use_after_free",
            "--max-examples", str(examples), "--seed", SEED,
            "--workers", "1", "--request-timeout", "30", "--no-color",
            *extra,
        ]  # fmt: skip
        result = subprocess.run(
            command,
            cwd=tmp_path,
            env={**os.environ, "SCHEMATHESIS_HOOKS": str(HOOKS), "PIXYPROXY_ST_SEEN": str(seen)},
            capture_output=True,
            text=True,
            timeout=280,
        )
        log = server.log_text()
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-12_000:]
    generated = re.search(r"(\d+) generated, (\d+) passed", output)
    assert generated, output[-3000:]
    assert int(generated.group(1)) >= 150 and generated.group(1) == generated.group(2), output[-3000:]
    assert re.search(r"Stateful \(in", output) and re.search(r"API Links:\s+\d+ covered", output), output
    # The error-shape hook ran on a good number of errors (4xx from the fuzzer at the very least).
    checked = seen.read_text().splitlines() if seen.exists() else []
    assert len(checked) >= 50, checked[:20]
    # Links fed the guids of created images to the edits route, so edits really ran, not only their 404s.
    assert re.search(r"REQUEST END POST /image/[0-9a-f-]{36}/edits/? 200 ", log), log[-3000:]
    # No 500 reached a client, and nothing went wrong out of its sight either.
    assert "unhandled error" not in log and "Traceback" not in log, log[-5000:]
