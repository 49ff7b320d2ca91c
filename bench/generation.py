"""Generation figures 3 and 4: PixyProxy with PIXYPROXY_GENERATOR=openai against the fake OpenAI server.

Figure 3, overhead: p50 of `POST /image/` minus p50 of the same generation asked of the fake directly
(generator latency 0), both measured by the same client, alternating round by round. Goal: <= 15 ms.
Figure 4, concurrency: 200 `POST /image/` sent at once over 200 open connections, generator latency 1 s,
one worker process; the wall time from the first send to the last answer. Goal: <= 2 s.
Transport: 200 concurrent generations through the adapter alone (no service), latency 1 s, with the
SDK's default httpx2 client and with its aiohttp client: wall time and the client process's CPU time.

Every process is on this machine: the fake (its own process), the service (`pixyproxy serve`, one
worker) and the load generator (this process: raw HTTP/1.1 on asyncio, no client library).

    python -m bench.generation            # all, printed; `BENCH_FIGURE {json}` lines for `python -m bench`
    python -m bench.generation --smoke    # a quick run that only shows it works
    python -m bench.generation --figures 4 --noise
"""

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench import servers
from pixyproxy.settings import Settings

KEY = "sk-bench-not-a-real-key"
MODEL = Settings.model_fields["openai_model"].default  # what the service asks for when none is named
GOAL_OVERHEAD_MS = 15.0
GOAL_WALL_S = 2.0


# -- a minimal HTTP/1.1 client: the load generator must cost less than what it measures ---------------


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, base_url: str) -> "Connection":
        host, port = base_url.removeprefix("http://").split("/")[0].split(":")
        return cls(*await asyncio.open_connection(host, int(port)))

    async def post(self, raw: bytes) -> tuple[int, bytes]:
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        body = await self.reader.readexactly(length)
        return int(head[9:12]), body

    def close(self) -> None:
        self.writer.close()


def post_request(base_url: str, path: str, body: dict, headers: dict[str, str] | None = None) -> bytes:
    host = base_url.removeprefix("http://").split("/")[0]
    payload = json.dumps(body).encode()
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}", "Content-Type: application/json"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    lines.append(f"Content-Length: {len(payload)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + payload


# -- the processes ------------------------------------------------------------------------------------


@contextmanager
def fake_openai(workdir: Path, latency: float, noise: bool) -> Iterator[str]:
    command = [
        sys.executable,
        "-m",
        "tests.support.fake_openai",
        "--port",
        "{port}",
        "--latency",
        str(latency),
    ]
    command += ["--noise"] if noise else []
    with servers.start_server(
        f"fake-openai-{latency}", command, workdir, {}, ready_path="/files/ready"
    ) as fake:
        yield fake.base_url


def service_env(workdir: Path, fake_url: str) -> dict[str, str]:
    """The service asking the fake OpenAI server, with its stores in `workdir`."""
    return {
        "PIXYPROXY_GENERATOR": "openai",
        "OPENAI_BASE_URL": f"{fake_url}/v1",
        "OPENAI_API_KEY": KEY,
        "PIXYPROXY_DATABASE_URL": f"sqlite:///{workdir / 'bench.db'}",
        "PIXYPROXY_STORAGE_URL": f"file:{workdir / 'images'}",
        "PIXYPROXY_LOG_LEVEL": "WARNING",
    }


@contextmanager
def pixyproxy(workdir: Path, fake_url: str) -> Iterator[servers.Server]:
    with servers.pixyproxy_server(workdir, service_env(workdir, fake_url), workers=1) as server:
        yield server


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# -- figure 3 -----------------------------------------------------------------------------------------


async def sequential_p50(base_url: str, path: str, bodies: list[dict]) -> list[float]:
    connection = await Connection.open(base_url)
    samples = []
    try:
        for body in bodies:
            raw = post_request(base_url, path, body)
            started = time.perf_counter()
            status, answer = await connection.post(raw)
            samples.append((time.perf_counter() - started) * 1000)
            if status != 200:
                raise RuntimeError(f"{path}: HTTP {status}: {answer[:300]!r}")
    finally:
        connection.close()
    return samples


def set_latency(fake_url: str, seconds: float) -> None:
    request = urllib.request.Request(f"{fake_url}/fake/latency", data=str(seconds).encode(), method="PUT")
    with urllib.request.urlopen(request, timeout=10):
        pass


def figure3(fake_url: str, server: servers.Server, rounds: int, per_round: int, noise: bool) -> dict:
    set_latency(fake_url, 0.0)
    direct, service = [], []
    counter = iter(range(10**9))

    def bodies(model: bool) -> list[dict]:
        out = [{"prompt": f"a lighthouse number {next(counter)}"} for _ in range(per_round)]
        return [{**b, "model": MODEL} for b in out] if model else out

    asyncio.run(sequential_p50(fake_url, "/v1/images/generations", bodies(True)))  # warm both
    asyncio.run(sequential_p50(server.base_url, "/image/", bodies(False)))
    for _ in range(rounds):
        direct += asyncio.run(sequential_p50(fake_url, "/v1/images/generations", bodies(True)))
        service += asyncio.run(sequential_p50(server.base_url, "/image/", bodies(False)))
    p50_direct, p50_service = statistics.median(direct), statistics.median(service)
    value = p50_service - p50_direct
    return {
        "number": 3,
        "name": "Generation overhead: p50 POST /image/ - p50 of the fake generator alone",
        "value": round(value, 2),
        "unit": "ms",
        "goal": f"<= {GOAL_OVERHEAD_MS:g} ms",
        "met": value <= GOAL_OVERHEAD_MS,
        "detail": [
            f"p50 POST /image/ {p50_service:.2f} ms, p50 fake alone {p50_direct:.2f} ms "
            f"({len(service)} + {len(direct)} sequential requests, {rounds} alternating rounds)",
            "image: 1024x1024 PNG, "
            + ("random pixels (~3 MB, as large as a real answer)" if noise else "one colour (~5 KB)"),
            "the service's part: SDK call + base64 decode + PNG check + SHA-256 + file write + SQLite insert",
            f"load average after: {load_average()} (on {os.cpu_count()} cores)",
        ],
    }


# -- figure 4 -----------------------------------------------------------------------------------------


async def burst(base_url: str, count: int, tag: str) -> tuple[float, list[int]]:
    return await send_at_once(base_url, "/image/", [{"prompt": f"burst {tag} {i}"} for i in range(count)])


async def send_at_once(base_url: str, path: str, bodies: list[dict]) -> tuple[float, list[int]]:
    """Wall seconds for the POSTs of `bodies` sent at once, each on its own open connection, and their
    statuses."""
    connections = await asyncio.gather(*(Connection.open(base_url) for _ in bodies))
    raws = [post_request(base_url, path, body) for body in bodies]
    try:
        started = time.perf_counter()
        answers = await asyncio.gather(*(c.post(r) for c, r in zip(connections, raws, strict=True)))
        wall = time.perf_counter() - started
    finally:
        for connection in connections:
            connection.close()
    return wall, [status for status, _ in answers]


def figure4(fake_url: str, server: servers.Server, rounds: int, count: int, noise: bool) -> dict:
    set_latency(fake_url, 1.0)
    walls, cpus, load_cpus = [], [], []
    # Warm-up at full size: the service's pool then holds its connections to the provider, as it does
    # in steady state (a cold burst also opens `count` connections: reported as the first round anyway).
    cold, _ = asyncio.run(burst(server.base_url, count, "warm-up"))
    for i in range(rounds):
        cpu_before, load_before = cpu_seconds(server.process.pid), time.process_time()
        wall, statuses = asyncio.run(burst(server.base_url, count, str(i)))
        cpus.append(cpu_seconds(server.process.pid) - cpu_before)
        load_cpus.append(time.process_time() - load_before)
        failed = [s for s in statuses if s != 200]
        if failed:
            raise RuntimeError(f"{len(failed)} of {count} failed: {sorted(set(failed))}")
        walls.append(wall)
    value = statistics.median(walls)
    return {
        "number": 4,
        "name": f"Generation concurrency: {count} concurrent POST /image/, generator latency 1 s",
        "value": round(value, 3),
        "unit": "s",
        "goal": f"<= {GOAL_WALL_S:g} s",
        "met": value <= GOAL_WALL_S,
        "detail": [
            f"wall per round: {', '.join(f'{w:.3f}' for w in walls)} s (median shown); one worker process; "
            f"the warm-up burst, opening every connection to the provider: {cold:.3f} s",
            f"service CPU per round: {', '.join(f'{c:.2f}' for c in cpus)} s; "
            f"load generator CPU: {', '.join(f'{c:.2f}' for c in load_cpus)} s",
            "image: 1024x1024 PNG, " + ("random pixels (~3 MB)" if noise else "one colour (~5 KB)"),
            f"load average after: {load_average()} (on {os.cpu_count()} cores)",
        ],
    }


# -- the transport --------------------------------------------------------------------------------------


async def adapter_burst(transport: str, base_url: str, count: int, rounds: int) -> list[tuple[float, float]]:
    from pixyproxy.adapters.openai import OpenAIImageGenerator
    from pixyproxy.domain.models import GenerationRequest

    settings = Settings(_env_file=None)
    generator = OpenAIImageGenerator(
        model=MODEL,
        timeout_seconds=settings.openai_timeout_seconds,
        connect_timeout_seconds=settings.openai_connect_timeout_seconds,
        max_retries=settings.openai_max_retries,
        api_key=KEY,
        base_url=f"{base_url}/v1",
        transport=transport,
    )
    try:
        await generator.generate(GenerationRequest(prompt="warm-up"))
        out = []
        for i in range(rounds):
            requests = [GenerationRequest(prompt=f"transport {i} {n}") for n in range(count)]
            started, cpu = time.perf_counter(), time.process_time()
            await asyncio.gather(*(generator.generate(r) for r in requests))
            out.append((time.perf_counter() - started, time.process_time() - cpu))
        return out
    finally:
        await generator.close()


def transports(fake_url: str, rounds: int, count: int) -> list[str]:
    set_latency(fake_url, 1.0)
    lines = []
    for transport in ("httpx", "aiohttp", "httpx", "aiohttp"):  # twice each, interleaved
        results = asyncio.run(adapter_burst(transport, fake_url, count, rounds))
        walls = ", ".join(f"{w:.2f}" for w, _ in results)
        cpu = ", ".join(f"{c:.2f}" for _, c in results)
        name = {"httpx": "SDK default (httpx2)", "aiohttp": "SDK aiohttp client"}[transport]
        lines.append(f"{name}: {count} concurrent through the adapter, wall {walls} s, client CPU {cpu} s")
    return lines


def load_average() -> str:
    """Other work sharing the cores (other developers' test runs) shows here; it inflates every figure."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.generation",
        description=__doc__.split("\n\n")[0],
        epilog="Figure 3: p50 POST /image/ minus p50 of the fake generator called directly, latency 0, "
        f"goal <= {GOAL_OVERHEAD_MS:g} ms. Figure 4: 200 concurrent POST /image/ with generator latency "
        f"1 s, goal <= {GOAL_WALL_S:g} s wall on one worker process. --transports compares the SDK's "
        "httpx2 and aiohttp clients for the same 200 concurrent generations.",
    )
    parser.add_argument("--figures", default="3,4", help="Which figures: 3, 4 or 3,4 (default).")
    parser.add_argument("--rounds", type=int, default=5, help="Alternating rounds (figure 3) or bursts (4).")
    parser.add_argument("--requests", type=int, default=40, help="Sequential requests per round, figure 3.")
    parser.add_argument("--concurrency", type=int, default=200, help="Concurrent requests, figure 4.")
    parser.add_argument("--noise", action="store_true", help="Real-sized (~3 MB) images instead of ~5 KB.")
    parser.add_argument("--transports", action="store_true", help="Also compare the SDK's HTTP clients.")
    parser.add_argument("--smoke", action="store_true", help="A quick run that only shows it all works.")
    args = parser.parse_args(argv)
    if args.smoke:
        args.rounds, args.requests = 1, 10
    wanted = {int(n) for n in args.figures.split(",") if n.strip()}
    print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cores", flush=True)
    print(f"# load average before: {load_average()}", flush=True)
    with (
        tempfile.TemporaryDirectory(prefix="pixybench-gen-") as tmp,
        fake_openai(Path(tmp), 0.0, args.noise) as fake_url,
        pixyproxy(Path(tmp), fake_url) as server,
    ):
        if 3 in wanted:
            figure = figure3(fake_url, server, args.rounds, args.requests, args.noise)
            print("BENCH_FIGURE " + json.dumps(figure), flush=True)
        if 4 in wanted:
            figure = figure4(fake_url, server, max(1, min(args.rounds, 3)), args.concurrency, args.noise)
            if args.transports:
                figure["detail"] += transports(fake_url, 2, args.concurrency)
            print("BENCH_FIGURE " + json.dumps(figure), flush=True)
        elif args.transports:
            for line in transports(fake_url, 2, args.concurrency):
                print(line, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
