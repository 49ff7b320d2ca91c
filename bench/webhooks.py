"""Webhook delivery latency: from a job's end (its `finished_at`) to its signed POST arriving at a receiver.

The real service (`pixyproxy serve`, embedded default: SQLite, offline generator) in its own process; a
receiver on 127.0.0.1 in a third process that notes the wall-clock time each POST arrives; this one checks
every signature with standardwebhooks' Webhook.verify. Jobs are submitted `--concurrency` at a time, so
several end close together and their deliveries overlap. Both clocks are this machine's.

Latency covers: the job's final status written, the JobFinished hook (the outbox row, stored leased to the
process), the first attempt's start, the URL check, the signing and the POST. Goal: p99 <= 250 ms.

    python -m bench.webhooks                 # printed, with a `BENCH_FIGURE {json}` line
    python -m bench.webhooks --smoke         # a quick run that only shows it works
"""

import argparse
import asyncio
import contextlib
import http.server
import json
import os
import queue
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import httpx
from standardwebhooks import Webhook

from bench.generation import load_average
from bench.servers import pixyproxy_server, process_tree_cpu

GOAL_P99_MS = 250.0
# Small images: the offline generator draws and encodes on this machine's cores, which a real provider
# would not; the figure is about the delivery, not about drawing.
SIZE = "256x256"
SECRET = "whsec_" + "YmVuY2gtd2ViaG9va3Mtc2lnbmluZy1rZXktMzItYnl0ZXM="


class Receiver:
    def __init__(self) -> None:
        self.arrivals: list[tuple[float, bytes, dict[str, str]]] = []
        self.lock = threading.Condition()
        self.on_arrival = lambda job_id: None  # set by the submitter: a job's slot frees when it lands


def serve_receiver() -> None:
    """The receiver process: answers 204 at once, then writes a line per POST (arrival time, body,
    headers) to stdout. In its own process, so the arrival time is not delayed by the bench's own work."""
    # Lines go out through one writer thread: a handler never waits on the pipe, so the next request on
    # its keep-alive connection is read (and timed) at once.
    lines: queue.SimpleQueue[str] = queue.SimpleQueue()

    def write() -> None:
        while True:
            sys.stdout.write(lines.get() + "\n")
            sys.stdout.flush()

    threading.Thread(target=write, daemon=True).start()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            arrived = time.time()  # before anything else: the figure is when it got here
            self.send_response(204)
            self.send_header("content-length", "0")
            self.end_headers()
            lines.put(json.dumps({"arrived": arrived, "body": body.decode(), "headers": dict(self.headers)}))

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(f"PORT {server.server_address[1]}", flush=True)
    server.serve_forever(poll_interval=0.05)


@contextlib.contextmanager
def receiver() -> Iterator[tuple[Receiver, str]]:
    state = Receiver()
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.webhooks", "--serve-receiver"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert process.stdout is not None
    port = int(process.stdout.readline().split()[1])

    def read() -> None:
        for line in process.stdout:
            item = json.loads(line)
            headers = {k.lower(): v for k, v in item["headers"].items()}
            with state.lock:
                state.arrivals.append((item["arrived"], item["body"].encode(), headers))
                state.lock.notify_all()
            state.on_arrival(json.loads(item["body"])["data"]["id"])

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{port}/hook"
    finally:
        process.terminate()
        process.wait(timeout=10)
        thread.join(timeout=10)


async def submit_all(
    base_url: str, hook: str, count: int, concurrency: int, state: Receiver, size: str = SIZE
) -> list[str]:
    """Submit `count` jobs, `concurrency` in flight: a slot frees when the job's webhook arrives (no
    polling, which would load the server being measured)."""
    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(concurrency)
    waiting: dict[str, asyncio.Future] = {}
    early: set[str] = set()

    def landed(job_id: str) -> None:
        future = waiting.pop(job_id, None)
        if future is None:
            early.add(job_id)  # its webhook beat the 202's parsing here
        elif not future.done():
            future.set_result(None)

    state.on_arrival = lambda job_id: loop.call_soon_threadsafe(landed, job_id)
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as http:

        async def one(i: int) -> str:
            async with gate:
                body = {"prompt": f"webhook bench {i}", "webhook_url": hook, "size": size}
                answer = await http.post("/image/jobs", json=body)
                answer.raise_for_status()
                job_id = answer.json()["id"]
                if job_id not in early:
                    waiting[job_id] = loop.create_future()
                    await asyncio.wait_for(waiting[job_id], 120)
                return job_id

        return await asyncio.gather(*(one(i) for i in range(count)))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def measure(jobs: int, concurrency: int, latency: float, size: str = SIZE) -> dict:
    env = {
        "PIXYPROXY_WEBHOOK_SECRET": SECRET,
        "PIXYPROXY_WEBHOOK_ALLOW_PRIVATE": "true",
        "PIXYPROXY_OFFLINE_LATENCY_SECONDS": str(latency),
        "PIXYPROXY_LOG_LEVEL": "WARNING",
    }
    with (
        tempfile.TemporaryDirectory(prefix="pixybench-webhooks-") as tmp,
        receiver() as (state, hook),
        pixyproxy_server(Path(tmp), env) as server,
    ):
        asyncio.run(submit_all(server.base_url, hook, min(5, jobs), concurrency, state))  # warm up
        with state.lock:
            state.arrivals.clear()
        cpu_before, started = process_tree_cpu(server.process.pid), time.monotonic()
        ids = asyncio.run(submit_all(server.base_url, hook, jobs, concurrency, state, size))
        wall, cpu = time.monotonic() - started, process_tree_cpu(server.process.pid) - cpu_before
        with state.lock:
            state.lock.wait_for(lambda: len(state.arrivals) >= jobs, timeout=120)
            arrivals = list(state.arrivals)
    verifier = Webhook(SECRET)
    latencies, unverified = [], 0
    for arrived, body, headers in arrivals:
        try:
            payload = verifier.verify(body, headers)
        except Exception:  # counted and reported, never hidden
            unverified += 1
            continue
        finished = datetime.fromisoformat(payload["data"]["finished_at"]).timestamp()
        latencies.append((arrived - finished) * 1000)
    p99 = percentile(latencies, 0.99)
    return {
        "name": "Webhook delivery latency after a job ends, p99 (loopback)",
        "value": round(p99, 1),
        "unit": "ms",
        "goal": f"<= {GOAL_P99_MS:g} ms",
        "met": p99 <= GOAL_P99_MS and unverified == 0 and len(latencies) == len(ids),
        "detail": [
            f"{len(latencies)} webhooks of {len(ids)} jobs ({concurrency} at a time, generator latency "
            f"{latency:g} s, {size} images): p50 {statistics.median(latencies):.1f} ms, "
            f"p90 {percentile(latencies, 0.9):.1f} ms, p99 {p99:.1f} ms, max {max(latencies):.1f} ms; "
            f"{unverified} failed verification",
            f"wall {wall:.1f} s ({len(ids) / wall:.1f} jobs ended per second; ideal "
            f"{jobs / concurrency * latency:.1f} s), server CPU {cpu:.1f} s "
            f"({cpu / len(ids) * 1000:.1f} ms a job)",
            "from the job's finished_at to the POST's arrival: final status, outbox row, attempt started, "
            "URL check, signing, POST (embedded default: SQLite; receiver in its own process)",
            f"load average after: {load_average()} (on {os.cpu_count()} cores)",
        ],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.webhooks", description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=16, help="Jobs submitted and running at once.")
    parser.add_argument(
        "--latency",
        type=float,
        default=1.0,
        help="The offline generator's latency (s): 16 jobs end per second.",
    )
    parser.add_argument("--size", default=SIZE, help="The images' size (the offline generator draws them).")
    parser.add_argument("--smoke", action="store_true", help="A quick run that only shows it works.")
    parser.add_argument("--serve-receiver", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_receiver:
        serve_receiver()
        return 0
    if args.smoke:
        args.jobs, args.concurrency = 20, 4
    print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cores", flush=True)
    print(f"# load average before: {load_average()}", flush=True)
    figure = measure(args.jobs, args.concurrency, args.latency, args.size)
    print("BENCH_FIGURE " + json.dumps(figure), flush=True)
    for line in [f"{figure['name']}: {figure['value']} ms (goal {figure['goal']})", *figure["detail"]]:
        print(line, flush=True)
    return 0  # the goal is reported (BENCH_FIGURE "met"), not an exit status: benchmarks are not tests


if __name__ == "__main__":
    raise SystemExit(main())
