"""ComfyUI previews to an SSE client: how long after the fake ComfyUI sends a binary preview frame over its
WebSocket the job's `partial_image` event reaches a client of `GET /image/jobs/{id}/events`.

The fake (tests/support/fake_comfyui.py) runs in this process and stamps each frame as it sends it; the
PixyProxy server is its own process (`pixyproxy serve`, the embedded default plus a comfyui model); the
SSE client here stamps each event as its data line arrives. Both stamps are this process's
perf_counter. Jobs run one after another (ComfyUI runs one prompt at a time), each with 3 previews of
`--steps` sampler steps of `--step-ms` each; a job's stream is open before its prompt may run.

    .venv/bin/python -m bench.comfyui_previews [--jobs 60] [--steps 3] [--step-ms 100]
"""

import argparse
import json
import os
import shutil
import statistics
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import httpx

from tests.e2e.server import run_server
from tests.support.fake_comfyui import FakeComfyUI

WORKFLOWS = Path(__file__).parents[1] / "tests" / "support" / "workflows"
PREVIEWS = 3


def models_file(workdir: Path, base_url: str) -> Path:
    shutil.copytree(WORKFLOWS, workdir / "workflows")
    path = workdir / "models.yaml"
    path.write_text(
        textwrap.dedent(
            f"""\
            default: my-sdxl
            models:
              - name: my-sdxl
                provider: comfyui
                base_url: {base_url}
                workflow: workflows/sdxl_api.json
                inputs: {{prompt: "6.text", width: "5.width", height: "5.height", seed: "3.seed"}}
            """
        )
    )
    return path


def one_job(http: httpx.Client, fake: FakeComfyUI, sent: list[float], index: int) -> list[float]:
    """The latencies (seconds) of one job's previews, in the order sent."""
    sent.clear()
    fake.gate = threading.Event()
    body = {"prompt": f"a lighthouse {index}", "size": "512x512", "partial_images": PREVIEWS}
    job = http.post("/image/jobs", json=body)
    job.raise_for_status()
    arrived: dict[int, float] = {}
    with http.stream("GET", f"/image/jobs/{job.json()['id']}/events") as stream:
        fake.gate.set()  # the stream is open: the prompt may run now
        name = None
        for line in stream.iter_lines():
            if line.startswith("event:"):
                name = line.split(":", 1)[1].strip()
            elif line.startswith("data:") and name == "partial_image":
                arrived[json.loads(line[5:])["index"]] = time.perf_counter()
            elif line.startswith("data:") and name == "done":
                break
    fake.gate = None
    return [arrived[i] - sent[i] for i in sorted(arrived)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=60)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--step-ms", type=float, default=100.0)
    args = parser.parse_args()
    sent: list[float] = []
    print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cores")
    print(f"# load average before: {' '.join(f'{n:.2f}' for n in os.getloadavg())}")
    with (
        FakeComfyUI(steps=args.steps, step_seconds=args.step_ms / 1000) as fake,
        tempfile.TemporaryDirectory() as tmp,
    ):
        fake.on_preview = lambda frame: sent.append(time.perf_counter())
        workdir = Path(tmp)
        env = {"PIXYPROXY_MODELS_FILE": str(models_file(workdir, fake.base_url))}
        with (
            run_server(workdir, env, timeout=60) as server,
            httpx.Client(base_url=server.base_url, timeout=60) as http,
        ):
            one_job(http, fake, sent, -1)  # warm-up: connections, imports
            latencies = [ms for i in range(args.jobs) for ms in one_job(http, fake, sent, i)]
    latencies_ms = sorted(1000 * s for s in latencies)
    p99 = latencies_ms[min(len(latencies_ms) - 1, int(0.99 * len(latencies_ms)))]
    print(f"jobs {args.jobs}, previews {len(latencies_ms)}, steps {args.steps} of {args.step_ms:g} ms")
    print(
        f"preview latency ms: p50 {statistics.median(latencies_ms):.1f}, p99 {p99:.1f}, "
        f"max {latencies_ms[-1]:.1f}"
    )
    print(f"# load average after: {' '.join(f'{n:.2f}' for n in os.getloadavg())}")


if __name__ == "__main__":
    main()
