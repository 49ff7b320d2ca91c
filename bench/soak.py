"""`python -m bench.soak`: a long mixed workload at about 70% of measured capacity, to find leaks and stalls.

PixyProxy runs as users run it (`pixyproxy serve`, one worker, SQLite + file store, the offline
generator taking 1 s per image, like a provider) on a free 127.0.0.1 port, with some images seeded.
Then, in this process:

1. capacity: the same mix as the soak, closed loop (64 connections, each sending its next request as
   soon as the last one is answered) for a few seconds; skipped when --rate is given;
2. warm-up: the soak's load, open loop, for --warmup seconds; the server's RSS at its end is the
   reference;
3. soak: open loop at the target rate (a fraction of capacity, default 0.7) for --minutes. Requests are
   sent at Poisson-distributed times whatever the server does (it is not given time to catch up), and
   each latency counts from the request's scheduled time, so a stall shows up in p99.

The mix, in exact proportions (a weighted round-robin, not a random draw): detail reads
(`GET /image/{guid}`), list pages (`GET /image/?limit=20`, the first page or a page further down the
cursor chain), content downloads (`GET /image/{guid}/content`), variants (`GET .../content?width=&format=`
of 100 gallery images in four sizes and formats, made on first request, then stored), generations
(`POST /image/`) and edits of stored images (`POST /image/{guid}/edits`); reads and edits pick among the
seeded images and those made so far.

It reports requests, errors (any answer other than 2xx/304, any transport error or timeout), p50/p99
latency per kind, and the server's RSS after warm-up and at the end. It exits 1 when there was an error
or the RSS at the end is more than 10% above the RSS after warm-up. Unless --no-write, the figures go to
bench/soak_results.md and to its section (headed SECTION) of docs/benchmarks.md (`python -m bench`
rewrites the rest of that file and appends bench/soak_results.md again).

Everything is bounded: the schedule ends at its deadline (and never exceeds twice the expected count),
at most --max-connections are open, every request has a timeout, the drain after the last send too.
"""

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import sys
import tempfile
import time
from array import array
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from bench import report, servers
from bench.generation import post_request
from bench.run import load_average, machine, other_test_runs, seed

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "benchmarks.md"
RESULTS = ROOT / "bench" / "soak_results.md"
SECTION = "## Soak"
KINDS = ("detail", "list", "content", "variant", "generate", "edit")
SLOW_KINDS = ("generate", "edit")  # each takes the generator's latency
DEFAULT_MIX = "detail=42,list=17,content=32,variant=5,generate=2,edit=2"
# Variants asked for: a few sizes and formats, so some are made (an encode) and most are found stored.
VARIANTS = ("width=64&format=webp", "width=128", "width=256&format=webp", "width=256&format=jpeg")
GALLERY = 100  # variants are asked of the first this-many images (a gallery page's tiles), as clients do
LIST_LIMIT = 20
SEED_BYTES = 64 * 1024
RSS_GOAL = 0.10  # RSS at the end at most 10% above RSS after warm-up
RSS_WINDOW_S = 10.0  # each RSS figure is the median of the samples in the last this-many seconds
REQUEST_TIMEOUT_S = 30.0
# uvicorn closes a keep-alive connection idle for 5 s (its default); like any HTTP client, do not send on
# one idle for nearly that long, or the request races the server's close.
IDLE_REUSE_S = 4.0
DRAIN_TIMEOUT_S = 30.0
MAX_RATE = 5000.0
MAX_MINUTES = 180.0


# -- the HTTP/1.1 client ---------------------------------------------------------------------------


class Connection:
    """One keep-alive HTTP/1.1 connection: send raw bytes, read one answer (status, headers, body)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer, self.reusable = reader, writer, True
        self.last_used = time.perf_counter()

    @classmethod
    async def open(cls, host: str, port: int) -> "Connection":
        return cls(*await asyncio.open_connection(host, port))

    async def exchange(self, raw: bytes, head_only: bool = False) -> tuple[int, dict[str, str], bytes]:
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        headers: dict[str, str] = {}
        for line in head.decode("latin-1").split("\r\n")[1:]:
            name, _, value = line.partition(":")
            if name:
                headers[name.strip().lower()] = value.strip()
        if headers.get("connection", "").lower() == "close":
            self.reusable = False
        if head_only or status in (204, 304) or 100 <= status < 200:
            return status, headers, b""
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body = bytearray()
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                body += await self.reader.readexactly(size + 2)
                if size == 0:
                    break
                del body[-2:]
            return status, headers, bytes(body)
        if "content-length" in headers:
            return status, headers, await self.reader.readexactly(int(headers["content-length"]))
        self.reusable = False
        return status, headers, await self.reader.read()

    def close(self) -> None:
        self.reusable = False
        self.writer.close()


# -- the workload ------------------------------------------------------------------------------------


def parse_mix(text: str) -> dict[str, int]:
    mix = {}
    for part in text.split(","):
        kind, _, weight = part.partition("=")
        kind = kind.strip()
        if kind not in KINDS or not weight.strip().isdigit():
            raise argparse.ArgumentTypeError(f"--mix: {part!r} is not KIND=WEIGHT with KIND in {KINDS}")
        mix[kind] = int(weight)
    if set(mix) != set(KINDS) or not all(mix.values()):
        raise argparse.ArgumentTypeError(f"--mix: give every kind a positive weight: {', '.join(KINDS)}")
    return mix


class Workload:
    """What to send next (exact proportions), and what the answers teach (new guids, next-page cursors)."""

    def __init__(self, base_url: str, guids: list[str], mix: dict[str, int], rng: random.Random) -> None:
        parts = urlsplit(base_url)
        self.base_url, self.host = base_url, parts.netloc
        self.guids, self.mix, self.rng = list(guids), mix, rng
        self.credit = dict.fromkeys(mix, 0)
        self.next_pages: deque[str] = deque(maxlen=256)
        self.generated = 0

    def next_kind(self) -> str:
        """Smooth weighted round-robin: every kind, in exact proportion, evenly spread."""
        total = sum(self.mix.values())
        for kind, weight in self.mix.items():
            self.credit[kind] += weight
        kind = max(self.credit, key=self.credit.__getitem__)
        self.credit[kind] -= total
        return kind

    def _get(self, path: str) -> bytes:
        return f"GET {path} HTTP/1.1\r\nHost: {self.host}\r\n\r\n".encode()

    def next(self) -> tuple[str, bytes]:
        kind = self.next_kind()
        if kind == "detail":
            return kind, self._get(f"/image/{self.rng.choice(self.guids)}")
        if kind == "content":
            return kind, self._get(f"/image/{self.rng.choice(self.guids)}/content")
        if kind == "variant":
            variant = self.rng.choice(VARIANTS)
            shown = self.rng.choice(self.guids[:GALLERY])
            return kind, self._get(f"/image/{shown}/content?{variant}")
        if kind == "list":
            if self.next_pages and self.rng.random() < 0.5:
                return kind, self._get(self.rng.choice(self.next_pages))
            return kind, self._get(f"/image/?limit={LIST_LIMIT}")
        self.generated += 1
        if kind == "edit":
            prompt = f"soak {os.getpid()} {self.generated}: the same, in winter"
            edited = self.rng.choice(self.guids)
            return kind, post_request(self.base_url, f"/image/{edited}/edits", {"prompt": prompt})
        prompt = f"soak {os.getpid()} {self.generated}: a lighthouse at dusk, watercolour"
        return kind, post_request(self.base_url, "/image/", {"prompt": prompt})

    def learn(self, kind: str, status: int, headers: dict[str, str], body: bytes) -> str | None:
        """Check an answer; returns what was wrong with it, if anything."""
        if not (200 <= status < 300 or status == 304):
            return f"{kind}: HTTP {status} {body[:200]!r}"
        if kind in SLOW_KINDS:
            self.guids.append(json.loads(body)["guid"])
        elif kind == "list":
            link = headers.get("link", "")
            if link.startswith("<") and 'rel="next"' in link:
                url = urlsplit(link[1 : link.index(">")])
                self.next_pages.append(f"{url.path}?{url.query}")
            if not isinstance(json.loads(body), list):
                return "list: the body is not an array"
        return None


@dataclass
class Phase:
    name: str
    latencies: dict[str, array] = field(default_factory=lambda: {k: array("d") for k in KINDS})
    errors: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    error_samples: list[str] = field(default_factory=list)
    seconds: float = 0.0  # from the first send to the last answer (the drain included)
    scheduled_s: float = 0.0  # how long requests were being sent
    sent: int = 0
    server_cpu_s: float = 0.0
    client_cpu_s: float = 0.0

    def ok(self, kind: str, ms: float) -> None:
        self.latencies[kind].append(ms)

    def error(self, kind: str, what: str) -> None:
        self.errors[kind] += 1
        if len(self.error_samples) < 10:
            self.error_samples.append(what)

    def requests(self, kind: str | None = None) -> int:
        kinds = [kind] if kind else KINDS
        return sum(len(self.latencies[k]) + self.errors[k] for k in kinds)

    def error_count(self) -> int:
        return sum(self.errors.values())

    def percentile(self, kind: str | None, q: float) -> float | None:
        values = sorted(v for k in ([kind] if kind else KINDS) for v in self.latencies[k])
        if not values:
            return None
        return values[min(len(values) - 1, math.ceil(q * len(values)) - 1)]


class Client:
    def __init__(self, base_url: str, workload: Workload, max_connections: int) -> None:
        parts = urlsplit(base_url)
        self.host, self.port = parts.hostname, parts.port
        if self.host != "127.0.0.1":
            raise ValueError("the soak only talks to 127.0.0.1")
        self.workload = workload
        self.idle: list[Connection] = []
        self.slots = asyncio.Semaphore(max_connections)
        self.peak_connections = 0
        self.open_connections = 0

    async def _connection(self) -> Connection:
        while self.idle:
            connection = self.idle.pop()
            if time.perf_counter() - connection.last_used < IDLE_REUSE_S and not connection.reader.at_eof():
                return connection
            connection.close()
            self.open_connections -= 1
        connection = await Connection.open(self.host, self.port)
        self.open_connections += 1
        self.peak_connections = max(self.peak_connections, self.open_connections)
        return connection

    def _release(self, connection: Connection) -> None:
        if connection.reusable:
            connection.last_used = time.perf_counter()
            self.idle.append(connection)
        else:
            connection.close()
            self.open_connections -= 1

    async def one(self, phase: Phase, kind: str, raw: bytes, due: float) -> None:
        """Send one request (when a connection is free); its latency counts from `due`."""
        connection = None
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT_S), self.slots:
                connection = await self._connection()
                status, headers, body = await connection.exchange(raw)
            wrong = self.workload.learn(kind, status, headers, body)
        except TimeoutError:
            wrong = f"{kind}: no answer within {REQUEST_TIMEOUT_S:g} s"
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError, KeyError) as exc:
            wrong = f"{kind}: {type(exc).__name__}: {exc}"
        except asyncio.CancelledError:
            phase.error(kind, f"{kind}: still unanswered when the drain ended")
            if connection is not None:
                connection.close()
                self.open_connections -= 1
            raise
        if connection is not None:
            if wrong and connection.reusable:
                connection.close()
            self._release(connection)
        if wrong:
            phase.error(kind, wrong)
        else:
            phase.ok(kind, (time.perf_counter() - due) * 1000)

    async def closed_loop(self, phase: Phase, connections: int, seconds: float) -> float:
        """Each of `connections` sends its next request when the last is answered; returns completed/s."""
        deadline = time.perf_counter() + seconds
        done_in_time = 0

        async def worker() -> None:
            nonlocal done_in_time
            while time.perf_counter() < deadline:
                kind, raw = self.workload.next()
                phase.sent += 1
                await self.one(phase, kind, raw, time.perf_counter())
                if time.perf_counter() <= deadline:
                    done_in_time += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(connections)))
        return done_in_time / (min(time.perf_counter(), deadline) - started)

    async def open_loop(self, phase: Phase, rate: float, seconds: float, rng: random.Random) -> None:
        """Poisson arrivals at `rate`/s for `seconds`, whatever the answers do; then drain (bounded)."""
        tasks: set[asyncio.Task] = set()
        phase.scheduled_s = seconds
        started = time.perf_counter()
        deadline = started + seconds
        limit = int(2 * rate * seconds) + 100
        due = started + rng.expovariate(rate)
        while due < deadline and phase.sent < limit:
            now = time.perf_counter()
            while due <= now and due < deadline and phase.sent < limit:
                kind, raw = self.workload.next()
                task = asyncio.create_task(self.one(phase, kind, raw, due))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                phase.sent += 1
                due += rng.expovariate(rate)
            await asyncio.sleep(max(0.0, min(due, deadline) - time.perf_counter()))
        if tasks:
            _, pending = await asyncio.wait(set(tasks), timeout=DRAIN_TIMEOUT_S)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    def close(self) -> None:
        for connection in self.idle:
            connection.close()
        self.idle.clear()


# -- the run -------------------------------------------------------------------------------------


@dataclass
class Outcome:
    info: dict
    command: str
    mix: dict[str, int]
    seeded: int
    capacity: float | None
    capacity_phase: Phase | None
    rate: float
    fraction: float | None
    warmup: Phase
    soak: Phase
    rss_warm: int
    rss_end: int
    rss_peak: int
    rss_idle_end: int
    rss_series: list[tuple[float, int]]
    generated: int
    peak_connections: int
    others_seen: int
    load_before: str
    load_after: str

    @property
    def errors(self) -> int:
        return self.warmup.error_count() + self.soak.error_count()

    @property
    def rss_growth(self) -> float:
        return self.rss_end / self.rss_warm - 1

    @property
    def rss_met(self) -> bool:
        return self.rss_growth <= RSS_GOAL

    def summary(self) -> dict:
        kinds = {}
        for kind in KINDS:
            p50, p99 = self.soak.percentile(kind, 0.50), self.soak.percentile(kind, 0.99)
            kinds[kind] = {
                "requests": self.soak.requests(kind) + self.warmup.requests(kind),
                "errors": self.soak.errors[kind] + self.warmup.errors[kind],
                "p50_ms": p50,
                "p99_ms": p99,
            }
        return {
            "capacity_rps": self.capacity,
            "rate_rps": self.rate,
            "seconds": self.soak.seconds,
            "kinds": kinds,
            "errors": self.errors,
            "error_samples": self.warmup.error_samples + self.soak.error_samples,
            "rss_after_warmup": self.rss_warm,
            "rss_end": self.rss_end,
            "rss_growth": self.rss_growth,
            "rss_met": self.rss_met,
        }


async def drive(args: argparse.Namespace, server: servers.Server, guids: list[str]) -> dict:
    rng = random.Random(args.seed)
    mix = args.mix
    workload = Workload(server.base_url, guids, mix, rng)
    client = Client(server.base_url, workload, args.max_connections)
    pid = server.process.pid
    rss = servers.RssSampler(pid)

    async def measured(phase: Phase, action) -> None:
        cpu, own, started = servers.process_tree_cpu(pid), time.process_time(), time.perf_counter()
        result = await action
        phase.seconds = time.perf_counter() - started
        phase.server_cpu_s = servers.process_tree_cpu(pid) - cpu
        phase.client_cpu_s = time.process_time() - own
        return result

    try:
        capacity, capacity_phase, rate = None, None, args.rate
        if rate is None:
            say(f"… capacity: the mix, closed loop, {args.capacity_connections} connections")
            await client.closed_loop(Phase("capacity warm-up"), args.capacity_connections, 2.0)
            capacity_phase = Phase("capacity")
            capacity = await measured(
                capacity_phase,
                client.closed_loop(capacity_phase, args.capacity_connections, args.capacity_seconds),
            )
            rate = min(MAX_RATE, args.fraction * capacity)
            say(
                f"   {capacity:,.0f} req/s ({capacity_phase.error_count()} errors; server CPU"
                f" {capacity_phase.server_cpu_s / capacity_phase.seconds:.0%} of a core); target"
                f" {rate:,.0f} req/s"
            )
        sampler = asyncio.create_task(rss.run())
        say(f"… warm-up: {rate:,.0f} req/s for {args.warmup:g} s")
        warmup = Phase("warm-up")
        await measured(warmup, client.open_loop(warmup, rate, args.warmup, rng))
        warm_at = time.perf_counter() - rss.started
        rss_warm = rss.window(warm_at, RSS_WINDOW_S)
        say(f"   RSS {rss_warm / 2**20:.1f} MiB, {warmup.error_count()} errors")
        say(f"… soak: {rate:,.0f} req/s for {args.minutes * 60:g} s")
        soak = Phase("soak")
        others: list[int] = []
        progress = asyncio.create_task(report_progress(soak, rss, args.minutes * 60, others))
        await measured(soak, client.open_loop(soak, rate, args.minutes * 60, rng))
        progress.cancel()
        end_at = time.perf_counter() - rss.started
        rss_end = rss.window(end_at, RSS_WINDOW_S)
        sampler.cancel()
        await asyncio.gather(sampler, progress, return_exceptions=True)
        await asyncio.sleep(1.0)
        rss_idle_end = rss.sample()
        peak = max(r for _, r in rss.samples)
        series = [(t - warm_at, r) for t, r in rss.samples if t >= warm_at - 0.5]
    finally:
        client.close()
    return {
        "capacity": capacity,
        "capacity_phase": capacity_phase,
        "rate": rate,
        "warmup": warmup,
        "soak": soak,
        "rss_warm": rss_warm,
        "rss_end": rss_end,
        "rss_peak": peak,
        "rss_idle_end": rss_idle_end,
        "rss_series": series,
        "generated": workload.generated,
        "peak_connections": client.peak_connections,
        "others_seen": max(others, default=0),
    }


async def report_progress(phase: Phase, rss: servers.RssSampler, seconds: float, others: list[int]) -> None:
    every = 60.0 if seconds >= 180 else max(5.0, seconds / 4)
    started = time.perf_counter()
    seen = dict.fromkeys(KINDS, 0)
    while True:
        await asyncio.sleep(every)
        # p99 of this interval only: sorting every latency so far would stall the client's sends
        reads = sorted(v for k in KINDS if k not in SLOW_KINDS for v in phase.latencies[k][seen[k] :])
        generations = sorted(v for k in SLOW_KINDS for v in phase.latencies[k][seen[k] :])
        seen = {k: len(phase.latencies[k]) for k in KINDS}
        others.append(other_test_runs())
        say(
            f"   {time.perf_counter() - started:4.0f} s: {phase.requests():,} answered, "
            f"{phase.error_count()} errors; last {every:g} s: p99 reads {p99(reads):.1f} ms, "
            f"generations and edits {p99(generations):.1f} ms; RSS {rss.samples[-1][1] / 2**20:.1f} MiB"
        )


def p99(ordered: list[float]) -> float:
    return ordered[min(len(ordered) - 1, math.ceil(0.99 * len(ordered)) - 1)] if ordered else 0.0


def soak(args: argparse.Namespace, command: str) -> Outcome:
    info = machine()
    others, load_before = other_test_runs(), load_average()
    with tempfile.TemporaryDirectory(prefix="pixysoak-") as tmp:
        work = Path(tmp)
        env = {
            "PIXYPROXY_DATABASE_URL": f"sqlite:///{work / 'soak.db'}",
            "PIXYPROXY_STORAGE_URL": f"file:{work / 'images'}",
            "PIXYPROXY_GENERATOR": "offline",
            "PIXYPROXY_OFFLINE_LATENCY_SECONDS": "1",
            "PIXYPROXY_LOG_LEVEL": "INFO",
        }
        say(f"… seeding {args.seed_images} images of {SEED_BYTES // 1024} KiB")
        guids = seed(work, env, [f"soak:{args.seed_images}:{SEED_BYTES}"])["soak"]
        with servers.pixyproxy_server(work, env, workers=1, name="pixyproxy-soak") as server:
            say(f"… PixyProxy at {server.base_url} (pid {server.process.pid}), log {server.log_path.name}")
            run = _run_loop(drive(args, server, guids))
            run["others_seen"] = max(others, run["others_seen"], other_test_runs())
    return Outcome(
        info=info,
        command=command,
        mix=args.mix,
        seeded=args.seed_images,
        fraction=None if args.rate else args.fraction,
        load_before=load_before,
        load_after=load_average(),
        **run,
    )


def _run_loop(coroutine):
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


# -- the report -------------------------------------------------------------------------------------


def ms(value: float | None) -> str:
    return "—" if value is None else f"{value:,.1f} ms"


def mib(value: int) -> str:
    return f"{value / 2**20:.1f} MiB"


def render(o: Outcome, args: argparse.Namespace) -> str:
    s, w = o.soak, o.warmup
    mix = ", ".join(f"{kind} {o.mix[kind]}" for kind in KINDS)
    total = sum(o.mix.values())
    if o.capacity is not None:
        c = o.capacity_phase
        capacity = (
            f"- Capacity: **{o.capacity:,.0f} req/s** (the same mix, closed loop, {args.capacity_connections}"
            f" connections, {c.seconds:.0f} s after 2 s of warm-up; server CPU"
            f" {c.server_cpu_s / c.seconds:.0%} of a core, the client's {c.client_cpu_s / c.seconds:.0%};"
            f" p99 {ms(c.percentile(None, 0.99))}; {c.error_count()} errors)"
        )
        target = f"{o.fraction:.0%} of capacity: **{o.rate:,.0f} req/s**"
    else:
        capacity = "- Capacity: not measured (--rate given)"
        target = f"**{o.rate:,.0f} req/s** (--rate)"
    lines = [
        SECTION,
        "",
        "Written by `bench/soak.py` (kept in bench/soak_results.md, which `python -m bench` appends here);",
        "not run in CI (tests/e2e/test_soak_smoke.py runs a few seconds of it). Reproduce with:",
        "",
        "<!-- example: skip (a soak test runs for 10 minutes) -->",  # the docs test runs every other
        "```sh",
        ".venv/bin/python -m bench.soak                 # 10 minutes; rewrites this section",
        ".venv/bin/python -m bench.soak --minutes 0.5   # a short try (--no-write: print only)",
        "```",
        "",
        f"- Date: {o.info['date']}",
        f"- Machine: {o.info['cores']} cores ({o.info['cpu']}), {o.info['os']}, Python {o.info['python']}",
        f"- Command: `{o.command}`",
        "- Service: `pixyproxy serve`, one worker, SQLite + file store, offline generator with"
        f" `PIXYPROXY_OFFLINE_LATENCY_SECONDS=1`, INFO log lines on; {o.seeded} images of"
        f" {SEED_BYTES // 1024} KiB seeded",
        f"- Mix (exact proportions per {total}): {mix}; list pages `?limit={LIST_LIMIT}`, half of them"
        " further down the cursor chain; reads pick among the seeded and the generated images",
        capacity,
        f"- Load: {target}, open loop (Poisson arrivals; latency counted from each request's scheduled"
        f" time), {w.scheduled_s:g} s warm-up then {s.scheduled_s:g} s measured; one Python client process"
        f" (asyncio) on the same cores, up to {o.peak_connections} connections open",
        f"- Achieved: {s.requests() / s.scheduled_s:,.1f} req/s during the soak; server CPU"
        f" {s.server_cpu_s / s.seconds:.0%} of a core, the client's {s.client_cpu_s / s.seconds:.0%};"
        f" {o.generated:,} images generated or edited in all",
        "",
        "| Kind | Requests | Errors | p50 | p99 |",
        "|---|---|---|---|---|",
    ]
    for kind in KINDS:
        lines.append(
            f"| {kind} | {s.requests(kind):,} | {s.errors[kind]} | {ms(s.percentile(kind, 0.5))}"
            f" | {ms(s.percentile(kind, 0.99))} |"
        )
    lines.append(
        f"| all | {s.requests():,} | {s.error_count()} | {ms(s.percentile(None, 0.5))}"
        f" | {ms(s.percentile(None, 0.99))} |"
    )
    growth = f"{o.rss_growth:+.1%}"
    lines += [
        "",
        "| Check | Measured | Goal | Verdict |",
        "|---|---|---|---|",
        f"| Errors (warm-up and soak) | {o.errors} of {w.requests() + s.requests():,} | 0"
        f" | {'met' if o.errors == 0 else 'NOT met'} |",
        f"| RSS at the end vs after warm-up | {mib(o.rss_end)} vs {mib(o.rss_warm)} ({growth})"
        f" | ≤ +{RSS_GOAL:.0%} | {'met' if o.rss_met else 'NOT met'} |",
        "",
        f"- RSS: each figure is the median of the once-a-second samples of the server's process tree in"
        f" the last {RSS_WINDOW_S:g} s of its phase; peak {mib(o.rss_peak)}, {mib(o.rss_idle_end)} one"
        " second after the load stopped.",
        "- RSS over the soak (time after warm-up: MiB): " + rss_series(o.rss_series, s.scheduled_s) + ".",
        drift_line(o.rss_series, s.scheduled_s, o.rss_end),
    ]
    if w.error_count() or s.error_count():
        lines.append("- First errors: " + "; ".join(f"`{e}`" for e in w.error_samples + s.error_samples))
    lines.append(
        f"- Load average (1, 5, 15 min) {o.load_before} before, {o.load_after} after"
        + (
            f"; other test runs shared the cores (up to {o.others_seen} pytest processes seen)."
            if o.others_seen
            else "; no other test run was seen (checked before, every progress line, after)."
        )
    )
    lines.append(
        "- The rate is fixed once measured: when other work takes a core in the middle of a soak, the rate"
        " exceeds what is left, requests queue, latencies climb to seconds and RSS grows with the backlog"
        " (both verdicts then say more about the machine than the service)."
    )
    lines.append("")
    return "\n".join(lines)


def rss_series(series: list[tuple[float, int]], seconds: float) -> str:
    """About six points from warm-up's end to the soak's end (seconds after warm-up: MiB)."""
    step = 60.0 if seconds >= 300 else max(1.0, seconds / 5)
    points, mark = [], 0.0
    last = len(series) - 1
    for i, (t, rss) in enumerate(series):
        if t >= mark - 0.5 or (i == last and t >= mark - step / 2):
            when = f"{max(0.0, t) / 60:.0f} min" if step >= 60 else f"{max(0.0, t):.0f} s"
            points.append(f"{when}: {rss / 2**20:.1f}")
            mark = max(mark, t) + step
    return ", ".join(points)


def drift_line(series: list[tuple[float, int]], seconds: float, end: int) -> str:
    """Growth from the sample nearest 10% into the soak to the end: a step early on vs a steady climb."""
    if not series:
        return "- RSS drift: no samples."
    t, early = min(series, key=lambda point: abs(point[0] - 0.1 * seconds))
    return (
        f"- RSS from {t:.0f} s into the soak ({mib(early)}) to the end: {end / early - 1:+.1%}"
        " (what the last 90% of the soak added)."
    )


def write(section: str) -> None:
    RESULTS.write_text(section.rstrip("\n") + "\n")
    DOC.write_text(report.replace_section(DOC.read_text() if DOC.exists() else "# Benchmarks\n", section))


# -- command line -------------------------------------------------------------------------------------


def say(line: str) -> None:
    print(line, flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.soak",
        description="A long mixed workload against PixyProxy at about 70% of measured capacity.",
        epilog="Exit status: 0 when there was no error and the RSS goal was met, 1 otherwise.",
    )
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the soak (default 10)")
    parser.add_argument(
        "--rate", type=float, help="requests per second; skips the capacity measurement (default: 70%% of it)"
    )
    parser.add_argument(
        "--fraction", type=float, default=0.7, help="share of measured capacity to run at (default 0.7)"
    )
    parser.add_argument(
        "--capacity-seconds", type=float, default=10.0, help="length of the capacity measurement (default 10)"
    )
    parser.add_argument(
        "--warmup", type=float, help="seconds at the target rate before the soak (default: 10%% of it, 2..60)"
    )
    parser.add_argument(
        "--mix", type=parse_mix, default=parse_mix(DEFAULT_MIX), help=f"weights (default {DEFAULT_MIX})"
    )
    parser.add_argument(
        "--capacity-connections", type=int, default=64, help="closed-loop connections (default 64)"
    )
    parser.add_argument("--seed-images", type=int, default=500, help="images stored before (default 500)")
    parser.add_argument("--max-connections", type=int, default=256, help="open at most (default 256)")
    parser.add_argument("--seed", type=int, default=7, help="random seed of arrivals and picks (default 7)")
    parser.add_argument("--no-write", action="store_true", help="print only; do not touch the files")
    args = parser.parse_args(argv)
    if not 0 < args.minutes <= MAX_MINUTES:
        parser.error(f"--minutes must be in (0, {MAX_MINUTES:g}]")
    if args.rate is not None and not 0 < args.rate <= MAX_RATE:
        parser.error(f"--rate must be in (0, {MAX_RATE:g}]")
    if not 0 < args.fraction <= 1:
        parser.error("--fraction must be in (0, 1]")
    if not 1 <= args.capacity_seconds <= 120:
        parser.error("--capacity-seconds must be in [1, 120]")
    if args.warmup is None:
        args.warmup = min(60.0, max(2.0, args.minutes * 6))
    if not 1 <= args.warmup <= 600:
        parser.error("--warmup must be in [1, 600]")
    if not 1 <= args.seed_images <= 100_000:
        parser.error("--seed-images must be in [1, 100000]")
    if not 1 <= args.max_connections <= 1024:
        parser.error("--max-connections must be in [1, 1024]")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    command = "python -m bench.soak " + " ".join(argv if argv is not None else sys.argv[1:])
    outcome = soak(args, command.strip())
    section = render(outcome, args)
    print()
    print(section)
    print("SOAK_RESULT " + json.dumps(outcome.summary()), flush=True)
    if not args.no_write:
        write(section)
        say(f"written to {RESULTS.relative_to(ROOT)} and the soak section of {DOC.relative_to(ROOT)}")
    return 0 if outcome.errors == 0 and outcome.rss_met else 1


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        raise SystemExit(main())
