"""The blocking client is generated from the asyncio one (scripts/unasync.py): the committed
pixyproxy/client/sync.py must be exactly what the script makes, so the two never drift apart."""

import importlib.util
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "unasync.py"


def load_script():
    spec = importlib.util.spec_from_file_location("unasync_script", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_committed_sync_client_is_what_the_script_generates() -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_check_reports_a_hand_edit_of_the_sync_client(tmp_path) -> None:
    unasync = load_script()
    edited = tmp_path / "sync.py"
    text = unasync.TARGET.read_text()
    edited.write_text(text.replace("def get(self, guid: GuidLike)", "def get(self, guid: GuidLike | int)"))
    diff = unasync.drift(unasync.SOURCE, edited)
    assert "-    def get(self, guid: GuidLike | int)" in diff
    assert "+    def get(self, guid: GuidLike)" in diff
    assert unasync.drift(unasync.SOURCE, unasync.TARGET) == ""


def test_the_blocking_client_has_no_async_left() -> None:
    code = load_script().TARGET.read_text()
    for word in ("async ", "await ", "asyncio", "Async", "aclose", "aiter_"):
        assert word not in code, word
