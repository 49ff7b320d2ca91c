"""The OpenAI-compatible face's overhead: PixyProxy in front of an OpenAI-compatible server.

p50 of `POST /v1/images/generations` through PixyProxy (PIXYPROXY_GENERATOR=openai, one worker) minus p50
of the same generation asked of the fake OpenAI server directly (latency 0), both measured by one client,
alternating round by round, as figure 3 (bench/generation.py) measures `POST /image/`. Goal: <= 15 ms,
figure 3's. `POST /image/` is measured in the same rounds, so the /v1 face's own part shows beside it
(an answer in OpenAI's shape: the stored image read back and base64-encoded).

Every process is on this machine: the fake (its own process), the service and this load generator (raw
HTTP/1.1 on asyncio, no client library).

    python -m bench.openai_compatible             # printed, with a `BENCH_FIGURE {json}` line
    python -m bench.openai_compatible --smoke     # a quick run that only shows it works
    python -m bench.openai_compatible --noise     # real-sized (~3 MB) images
"""

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from bench.generation import (
    GOAL_OVERHEAD_MS,
    MODEL,
    fake_openai,
    load_average,
    pixyproxy,
    sequential_p50,
    set_latency,
)

V1 = "/v1/images/generations"


def measure(fake_url: str, base_url: str, rounds: int, per_round: int, noise: bool) -> dict:
    set_latency(fake_url, 0.0)
    direct, face, native = [], [], []
    counter = iter(range(10**9))

    def bodies(model: bool = False) -> list[dict]:
        out = [{"prompt": f"a lighthouse number {next(counter)}"} for _ in range(per_round)]
        return [{**b, "model": MODEL} for b in out] if model else out

    asyncio.run(sequential_p50(fake_url, V1, bodies(model=True)))  # warm all three
    asyncio.run(sequential_p50(base_url, V1, bodies()))
    asyncio.run(sequential_p50(base_url, "/image/", bodies()))
    for _ in range(rounds):
        direct += asyncio.run(sequential_p50(fake_url, V1, bodies(model=True)))
        face += asyncio.run(sequential_p50(base_url, V1, bodies()))
        native += asyncio.run(sequential_p50(base_url, "/image/", bodies()))
    p50_direct, p50_face, p50_native = (statistics.median(s) for s in (direct, face, native))
    value = p50_face - p50_direct
    return {
        "name": "OpenAI-compatible overhead: p50 POST /v1/images/generations - p50 of the fake alone",
        "value": round(value, 2),
        "unit": "ms",
        "goal": f"<= {GOAL_OVERHEAD_MS:g} ms",
        "met": value <= GOAL_OVERHEAD_MS,
        "detail": [
            f"p50 POST /v1/images/generations {p50_face:.2f} ms, p50 fake alone {p50_direct:.2f} ms, "
            f"p50 POST /image/ {p50_native:.2f} ms in the same rounds "
            f"({len(face)} + {len(direct)} + {len(native)} sequential requests, {rounds} alternating rounds)",
            "image: 1024x1024 PNG, "
            + ("random pixels (~3 MB, as large as a real answer)" if noise else "one colour (~5 KB)"),
            "the face's own part beyond POST /image/: the stored bytes read back and base64-encoded into "
            "OpenAI's ImagesResponse",
            f"load average after: {load_average()} (on {os.cpu_count()} cores)",
        ],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.openai_compatible", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--rounds", type=int, default=5, help="Alternating rounds.")
    parser.add_argument("--requests", type=int, default=40, help="Sequential requests per round and path.")
    parser.add_argument("--noise", action="store_true", help="Real-sized (~3 MB) images instead of ~5 KB.")
    parser.add_argument("--smoke", action="store_true", help="A quick run that only shows it all works.")
    args = parser.parse_args(argv)
    if args.smoke:
        args.rounds, args.requests = 1, 10
    print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cores", flush=True)
    print(f"# load average before: {load_average()}", flush=True)
    with (
        tempfile.TemporaryDirectory(prefix="pixybench-v1-") as tmp,
        fake_openai(Path(tmp), 0.0, args.noise) as fake_url,
        pixyproxy(Path(tmp), fake_url) as server,
    ):
        figure = measure(fake_url, server.base_url, args.rounds, args.requests, args.noise)
    print("BENCH_FIGURE " + json.dumps(figure), flush=True)
    for line in [f"{figure['name']}: {figure['value']} ms (goal {figure['goal']})", *figure["detail"]]:
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
