"""Every fenced ```python and ```sh example in README.md and docs/*.md runs, as written, against one
embedded server: a guide whose example breaks fails here. An example that truly needs a real provider, a
cluster or a key carries `<!-- example: skip (reason) -->` on the line just before its fence; each skip
is reported with its file, line and reason."""

import base64
import contextlib
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.server import RunningServer, run_server

ROOT = Path(__file__).resolve().parents[2]
GUIDES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w*)\s*$")
SKIP = re.compile(r"^<!--\s*example:\s*skip\s*\((?P<reason>.+)\)\s*-->\s*$")
# The address the guides write; the examples run against the test's server on a free port instead.
DOCUMENTED = re.compile(r"(127\.0\.0\.1|localhost):8001\b")
# -e: a failing command fails the example; no pipefail, as in a reader's shell (`curl ... | head` is fine).
RUNNERS = {"sh": ["bash", "-e"], "python": [sys.executable]}
WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"docs-examples-secret-32-bytes-xx").decode()
TIMEOUT_SECONDS = 60


@dataclass(frozen=True)
class Example:
    guide: Path
    line: int  # of the opening fence
    language: str
    code: str
    skip: str | None

    @property
    def name(self) -> str:
        return f"{self.guide.relative_to(ROOT)}:{self.line}"


def examples() -> Iterator[Example]:
    for guide in GUIDES:
        lines = guide.read_text().splitlines()
        index = 0
        while index < len(lines):
            opened = FENCE.match(lines[index])
            if not opened or not opened.group(1):
                index += 1
                continue
            end = next(i for i in range(index + 1, len(lines)) if lines[i].startswith("```"))
            if opened.group(1) in RUNNERS:
                marker = SKIP.match(lines[index - 1]) if index else None
                code = "\n".join(lines[index + 1 : end]) + "\n"
                skip = marker.group("reason") if marker else None
                yield Example(guide, index + 1, opened.group(1), code, skip)
            index = end + 1


EXAMPLES = list(examples())


@pytest.fixture(scope="module")
def docs_server(tmp_path_factory) -> Iterator[RunningServer]:
    with run_server(tmp_path_factory.mktemp("docs-server")) as server:
        yield server


@pytest.mark.parametrize("example", EXAMPLES, ids=[example.name for example in EXAMPLES])
def test_the_example_runs(example: Example, docs_server: RunningServer, tmp_path: Path):
    if example.skip:
        pytest.skip(f"{example.name}: {example.skip}")
    address = docs_server.base_url.removeprefix("http://")
    code = DOCUMENTED.sub(address, example.code)
    # Run from a folder of its own that has the project's virtualenv where the guides say (.venv).
    (tmp_path / ".venv").symlink_to(sys.prefix)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIXYPROXY_", "DB_"))}
    env.update(
        PIXYPROXY_URL=docs_server.base_url, PATH=f"{Path(sys.prefix) / 'bin'}{os.pathsep}{env['PATH']}"
    )
    # The secret jobs.md has the reader set before its receiver example.
    env["PIXYPROXY_WEBHOOK_SECRET"] = WEBHOOK_SECRET
    script = tmp_path / f"example.{example.language}"
    script.write_text(code)
    out, err = tmp_path / "stdout", tmp_path / "stderr"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        # A session of its own, ended whole afterwards: nothing it starts in the background outlives it.
        process = subprocess.Popen(
            [*RUNNERS[example.language], str(script)],
            cwd=tmp_path,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,
        )
        try:
            returncode = process.wait(timeout=TIMEOUT_SECONDS)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert returncode == 0, (
        f"{example.name} ({example.language}) exited {returncode}\n--- code\n{code}"
        f"--- stdout\n{out.read_text(errors='replace')[-3000:]}"
        f"--- stderr\n{err.read_text(errors='replace')[-3000:]}"
    )


def test_the_guides_have_examples_and_skips_say_why():
    assert len(EXAMPLES) > 20
    assert all(example.skip is None or example.skip.strip() for example in EXAMPLES)
