"""Write the blocking client (pixyproxy/client/sync.py) from the asyncio one (pixyproxy/client/aio.py).

The asyncio client is the one written by hand; the blocking one is the same code with `async`, `await`
and the async names taken out, word by word, then formatted by ruff. Run it after editing aio.py:

    python scripts/unasync.py            # rewrite sync.py
    python scripts/unasync.py --check    # exit 1, with a diff, if sync.py is not what aio.py makes
"""

import ast
import difflib
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "pixyproxy" / "client" / "aio.py"
TARGET = ROOT / "pixyproxy" / "client" / "sync.py"

SYNC_DOCSTRING = '''"""PixyProxyClient: the blocking client.

Generated from client/aio.py by scripts/unasync.py: edit that file, then run `python scripts/unasync.py`.
"""
'''

# (pattern, replacement), applied in order to every line; each must be used, so none goes stale.
SUBSTITUTIONS = [
    (r"\bAsyncGenerator\[(\w+), None\]", r"Generator[\1, None, None]"),
    (r"\bAsync([A-Z]\w*)", r"\1"),  # AsyncPixyProxyClient, AsyncIterator, httpx.AsyncClient, ...
    (r"\basync (def|with|for)\b", r"\1"),
    (r"\bawait ", ""),
    (r"\b__a(enter|exit)__\b", r"__\1__"),
    (r"\ba(close|read|closing)\b", r"\1"),
    (r"\baiter_(bytes|lines)\b", r"iter_\1"),
    (r"\basyncio\.sleep\b", "time.sleep"),
    (r", for asyncio code\b", ""),
]
# Lines of the asyncio client the blocking one has no use for.
DROPPED_LINES = {"import asyncio"}
# Fixes that the word-by-word change makes due, e.g. `for x in y: yield x` -> `yield from y`.
RUFF_FIXES = "UP028,I,F401"


def _body(source: str) -> list[str]:
    """The source's lines after its module docstring."""
    docstring = ast.parse(source).body[0]
    assert isinstance(docstring, ast.Expr) and isinstance(docstring.value, ast.Constant)
    assert docstring.end_lineno is not None
    return source.splitlines(keepends=True)[docstring.end_lineno :]


def unasync(source: str) -> str:
    """The blocking client's code, before formatting; raises if a substitution went unused."""
    compiled = [(re.compile(pattern), replacement) for pattern, replacement in SUBSTITUTIONS]
    used: set[str] = set()
    lines = []
    for line in _body(source):
        if line.strip() in DROPPED_LINES:
            used.add(line.strip())
            continue
        for pattern, replacement in compiled:
            line, count = pattern.subn(replacement, line)
            if count:
                used.add(pattern.pattern)
        lines.append(line)
    unused = [p for p, _ in SUBSTITUTIONS if p not in used] + sorted(DROPPED_LINES - used)
    if unused:
        raise ValueError(f"unasync: nothing matched {unused}; drop them from scripts/unasync.py")
    return SYNC_DOCSTRING + "".join(lines)


def _ruff(*args: str, code: str) -> str:
    command = [sys.executable, "-m", "ruff", *args, "--stdin-filename", str(TARGET), "-"]
    result = subprocess.run(command, input=code, capture_output=True, text=True, cwd=ROOT, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stderr}")
    return result.stdout


def generate(source: str) -> str:
    code = _ruff("check", "--fix", "--unsafe-fixes", "--select", RUFF_FIXES, "--quiet", code=unasync(source))
    return _ruff("format", "--quiet", code=code)


def drift(source: Path = SOURCE, target: Path = TARGET) -> str:
    """A unified diff from `target` to what `source` generates; empty when they agree."""
    expected = generate(source.read_text())
    actual = target.read_text() if target.exists() else ""
    return "".join(
        difflib.unified_diff(
            actual.splitlines(keepends=True),
            expected.splitlines(keepends=True),
            fromfile=f"{target.name} (committed)",
            tofile=f"{target.name} (generated from {source.name})",
        )
    )


def main(argv: list[str]) -> int:
    if "--check" in argv:
        diff = drift()
        if diff:
            print(f"{TARGET} differs from what {SOURCE.name} generates; run python scripts/unasync.py\n")
            print(diff)
            return 1
        return 0
    TARGET.write_text(generate(SOURCE.read_text()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
