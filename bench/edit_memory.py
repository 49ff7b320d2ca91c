"""Memory under the worst edit load: 16 concurrent edit requests of each worst kind, against one server
(embedded default: SQLite, local files, offline generator).

Kinds, each sent by 16 clients at once for `--rounds` rounds, each against a freshly started server:

* `bombs`: POST /v1/images/edits with 16 images and a mask of 96 bytes each whose headers claim
  4096x4096 (refused from the headers: the budget).
* `largest-uploads`: the heaviest upload the budget admits: 4 images of 4096x4096 (solid colour, a few
  KB each) in one POST /v1/images/edits, decoded and edited.
* `stored-references`: POST /image/{guid}/edits naming one stored 2048x2048 image as source and as 14
  references (the most the budget admits of it).

Figures: idle RSS, peak RSS (VmHWM, or sampled) over the load, and RSS settled afterwards (goals: peak at
most idle + 512 MB; settled at most idle + 64 MB). Run by hand: `python -m bench.edit_memory`; prints JSON.
"""

import argparse
import asyncio
import io
import json
import struct
import tempfile
import threading
import time
import zlib
from pathlib import Path

import httpx
from PIL import Image

from bench.servers import pixyproxy_server, process_tree_peak_rss, process_tree_rss, reset_peak_rss

CLIENTS = 16


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def short_bomb() -> bytes:
    header = struct.pack(">IIBBBBB", 4096, 4096, 8, 6, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(b"\x00" * 100))
        + _chunk(b"IEND", b"")
    )


def solid_png(side: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (side, side), (30, 90, 160)).save(out, format="PNG")
    return out.getvalue()


class Sampler(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak, self.running = pid, 0, True

    def run(self) -> None:
        while self.running:
            self.peak = max(self.peak, process_tree_rss(self.pid))
            time.sleep(0.005)


async def load(base_url: str, kind: str, rounds: int, guid: str | None) -> dict[int, int]:
    bomb, big = short_bomb(), solid_png(4096)
    statuses: dict[int, int] = {}
    async with httpx.AsyncClient(base_url=base_url, timeout=600) as http:

        async def one() -> None:
            if kind == "bombs":
                files = [("image[]", ("a.png", bomb, "image/png"))] * 16 + [
                    ("mask", ("m.png", bomb, "image/png"))
                ]
                answer = await http.post("/v1/images/edits", data={"prompt": "x"}, files=files)
            elif kind == "largest-uploads":
                files = [("image[]", ("a.png", big, "image/png"))] * 4
                answer = await http.post("/v1/images/edits", data={"prompt": "x"}, files=files)
            else:
                body = {"prompt": "x", "reference_guids": [guid] * 14}
                answer = await http.post(f"/image/{guid}/edits", json=body)
            statuses[answer.status_code] = statuses.get(answer.status_code, 0) + 1

        for _ in range(rounds):
            await asyncio.gather(*(one() for _ in range(CLIENTS)))
    return statuses


def measure(server_pid: int, base_url: str, kind: str, rounds: int, guid: str | None, settle: float) -> dict:
    idle = process_tree_rss(server_pid)
    hwm = reset_peak_rss(server_pid)
    sampler = Sampler(server_pid)
    sampler.start()
    started = time.perf_counter()
    statuses = asyncio.run(load(base_url, kind, rounds, guid))
    seconds = time.perf_counter() - started
    sampler.running = False
    sampler.join()
    peak = max(sampler.peak, process_tree_peak_rss(server_pid) if hwm else 0)
    time.sleep(settle)
    settled = process_tree_rss(server_pid)
    mb = 2**20
    return {
        "kind": kind,
        "requests": CLIENTS * rounds,
        "statuses": statuses,
        "seconds": round(seconds, 1),
        "idle_mb": round(idle / mb, 1),
        "peak_over_idle_mb": round((peak - idle) / mb, 1),
        "settled_over_idle_mb": round((settled - idle) / mb, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--settle", type=float, default=5.0, help="seconds to wait before the settled RSS")
    args = parser.parse_args()
    figures = []
    for kind in ("bombs", "largest-uploads", "stored-references"):  # a fresh server for each
        with tempfile.TemporaryDirectory() as tmp, pixyproxy_server(Path(tmp), {}) as server:
            body = {"prompt": "a reference", "size": "2048x2048"}
            stored = httpx.post(f"{server.base_url}/image/", json=body, timeout=60)
            stored.raise_for_status()
            guid = stored.json()["guid"]
            figures.append(measure(server.process.pid, server.base_url, kind, args.rounds, guid, args.settle))
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
