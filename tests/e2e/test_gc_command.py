"""`pixyproxy gc` over a real server's data: a row whose bytes are gone is removed (logged with its
guid, counted in the summary) with the variant left of it, an orphan's bytes too; the rest is kept."""

import os
import subprocess
import sys
import uuid

import httpx

from tests.e2e.server import run_server

IMAGES = "pixyproxy-data/images"


def test_gc_removes_rows_whose_bytes_are_missing_and_says_how_many(tmp_path):
    with (
        run_server(tmp_path, timeout=60) as server,
        httpx.Client(base_url=server.base_url, timeout=30) as http,
    ):
        kept, broken = (http.post("/image/", json={"prompt": p}).json() for p in ("kept", "broken"))
        assert http.get(f"/image/{broken['guid']}/content?width=64&format=webp").status_code == 200
    folder = tmp_path / IMAGES
    (folder / f"{broken['guid']}.png").unlink()  # what a guessed outcome used to leave: a row, no bytes
    orphan = folder / f"{uuid.uuid4()}.png"
    orphan.write_bytes(b"left by a crash")

    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIXYPROXY_", "DB_"))}
    done = subprocess.run(
        [sys.executable, "-m", "pixyproxy.entrypoints.cli", "gc", "--grace-seconds", "0"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    assert "removed 1 row(s) whose bytes were missing" in done.stdout
    assert "removed 1 orphan blob(s)" in done.stdout
    assert broken["guid"] in done.stdout + done.stderr  # the log names it

    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) == [f"{kept['guid']}.png"]
    with (
        run_server(tmp_path, timeout=60) as server,
        httpx.Client(base_url=server.base_url, timeout=30) as http,
    ):
        assert http.get(f"/image/{broken['guid']}").status_code == 404
        assert [i["guid"] for i in http.get("/image/").json()] == [kept["guid"]]
        assert http.get(f"/image/{kept['guid']}/content").status_code == 200
