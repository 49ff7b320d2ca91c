"""A full disk: the service (SQLite and the image folder on one small tmpfs of fixed size) keeps its
reserve, reports not ready, refuses writes with a 503 that changes nothing, and DELETE still frees space;
and when another program fills the disk to its last byte, DELETE still works (SQLite's WAL has no room
to grow: the row's delete must fit what the database already holds).

The tmpfs is mounted for each test only (root needed) and unmounted after it. Where mounting is
impossible the tests are skipped, except under CI=true, where they fail."""

import contextlib
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.server import run_server

DISK_MB, MIN_FREE_MB = 16, 4


@contextlib.contextmanager
def small_disk(where: Path, megabytes: int) -> Iterator[Path]:
    where.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={megabytes}m,mode=0700", "tmpfs", str(where)],
        capture_output=True,
    )
    if mounted.returncode != 0:
        reason = f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def free_mb(path: Path) -> float:
    stats = os.statvfs(path)
    return stats.f_bavail * stats.f_frsize / 2**20


def fill(path: Path, leave_mb: float) -> Path:
    """A ballast file taking the disk down to `leave_mb` free (what another program might have written)."""
    ballast = path / "ballast"
    with open(ballast, "ab") as handle:
        handle.write(b"\0" * max(0, int((free_mb(path) - leave_mb) * 2**20)))
    return ballast


def fill_to_the_last_byte(path: Path) -> Path:
    """What another program can do: write until the file system refuses even one more byte."""
    ballast = path / "ballast-full"
    with open(ballast, "wb", buffering=0) as handle:
        chunk = 1 << 20
        while chunk:
            try:
                handle.write(b"\0" * chunk)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
                chunk //= 2
    assert free_mb(path) == 0
    return ballast


def test_a_full_disk_is_not_ready_refuses_writes_and_deletes_still_work(tmp_path):
    with small_disk(tmp_path / "disk", DISK_MB) as disk:
        env = {
            "PIXYPROXY_DATABASE_URL": f"sqlite:///{disk}/meta.db",
            "PIXYPROXY_STORAGE_URL": f"file://{disk}/images",
            "PIXYPROXY_STORAGE_MIN_FREE_MB": str(MIN_FREE_MB),
        }
        with run_server(tmp_path, env) as server, httpx.Client(base_url=server.base_url, timeout=60) as http:
            made = [http.post("/image/", json={"prompt": f"kept {i}", "size": "1024x1024"}) for i in range(3)]
            assert all(m.status_code == 200 for m in made), made[-1].text
            assert http.get("/readyz").status_code == 200

            ballast = fill(disk, leave_mb=MIN_FREE_MB - 0.5)  # something else filled the disk
            ready = http.get("/readyz")
            assert ready.status_code == 503 and "storage is full" in ready.json()["checks"]["storage"]
            before = http.get("/image/").json()
            files = sorted(p.name for p in (disk / "images").iterdir())
            refused = http.post("/image/", json={"prompt": "no room", "size": "1024x1024"})
            assert refused.status_code == 503 and refused.json()["code"] == "storage_unavailable"
            assert "PIXYPROXY_STORAGE_MIN_FREE_MB" in refused.json()["detail"]
            assert http.get("/image/").json() == before  # no row
            assert sorted(p.name for p in (disk / "images").iterdir()) == files  # no bytes, no temp file

            # Space is freed through the API: the row and bytes go.
            guid = made[0].json()["guid"]
            assert http.delete(f"/image/{guid}").status_code == 204
            assert http.get(f"/image/{guid}").status_code == 404
            assert not (disk / "images" / f"{guid}.png").exists()

            # Still refused, every time, and each DELETE still works while the reserve is kept.
            assert http.post("/image/", json={"prompt": "still no room"}).status_code == 503
            guid = made[1].json()["guid"]
            assert http.delete(f"/image/{guid}").status_code == 204

            ballast.unlink()
            assert http.get("/readyz").status_code == 200
            assert http.post("/image/", json={"prompt": "room again"}).status_code == 200
        assert "Traceback" not in server.log_text()


def test_delete_works_on_a_disk_another_program_filled_to_the_last_byte(tmp_path):
    with small_disk(tmp_path / "disk", DISK_MB) as disk:
        env = {
            "PIXYPROXY_DATABASE_URL": f"sqlite:///{disk}/meta.db",
            "PIXYPROXY_STORAGE_URL": f"file://{disk}/images",
            "PIXYPROXY_STORAGE_MIN_FREE_MB": "1",
        }
        with run_server(tmp_path, env) as server, httpx.Client(base_url=server.base_url, timeout=60) as http:
            made = [http.post("/image/", json={"prompt": f"kept {i}", "size": "1024x1024"}) for i in range(3)]
            assert all(m.status_code == 200 for m in made), made[-1].text
            ballast = fill_to_the_last_byte(disk)
            assert http.get("/readyz").status_code == 503

            for image in made[:2]:
                guid = image.json()["guid"]
                deleted = http.delete(f"/image/{guid}")
                assert deleted.status_code == 204, deleted.text
                assert http.get(f"/image/{guid}").status_code == 404
                assert not (disk / "images" / f"{guid}.png").exists()
            assert free_mb(disk) > 0  # the space came back
            kept = made[2].json()["guid"]
            assert http.get(f"/image/{kept}/content").status_code == 200
            assert [i["guid"] for i in http.get("/image/").json()] == [kept]

            ballast.unlink()
            assert http.get("/readyz").status_code == 200
            assert http.post("/image/", json={"prompt": "room again"}).status_code == 200
        assert "Traceback" not in server.log_text()
