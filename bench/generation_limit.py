"""`python -m bench.generation_limit`: generation at the limit of the stack, each row against the fake
OpenAI server alone, measured in one run (with `--before DIR`, the code before side by side).

    python -m bench.generation_limit [--before DIR] [--rounds 3] [--requests 40] [--concurrency 200]
                                     [--stores sqlite,mysql] [--servers uvicorn,granian]

Rows, through `POST /image/` and `POST /v1/images/generations` (PIXYPROXY_GENERATOR=openai, one worker),
for each store (SQLite, or a fresh MySQL database on 127.0.0.1:3306 dropped at the end; the local folder
for the bytes) and each server the code after is served by (the code before: SQLite, uvicorn):
 1. Concurrency: `--concurrency` generations sent at once over as many open connections, provider
    latency 1 s; req/s is their count over the wall time from the first send to the last answer. The
    reference: the same burst asked of the fake directly. Goal: at least 0.95 of it.
 2. Added latency: sequential generations on one connection, provider latency 0; the p50 through each
    route minus the p50 of the same generation asked of the fake directly. Goal: at most 2.5 ms.
Every side is measured in turn within each round (the fake alone, after, before), so drifting load on
the shared cores falls on all of them. The service's CPU per generation comes from /proc: its process
and its children (Granian serves from a child).

The image: a 256x256 PNG of random pixels, about 263 KB of JSON per answer (base64 included).
"""

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from bench import servers
from bench.generation import (
    MODEL,
    Connection,
    fake_openai,
    load_average,
    post_request,
    send_at_once,
    sequential_p50,
    service_env,
    set_latency,
)
from bench.stack import STORE_NAMES, drop_databases, store_env

SIZE = "256x256"
GOAL_RATIO = 0.95
GOAL_ADDED_MS = 2.5
ROUTES = {"/image/": "/image/", "/v1": "/v1/images/generations"}
FAKE = "/v1/images/generations"


@dataclass
class Side:
    """One thing measured: a route of one tree, or the fake alone (server None)."""

    label: str
    base_url: str
    path: str
    server: servers.Server | None = None
    rates: list[float] = field(default_factory=list)  # req/s per burst
    cpu_ms: list[float] = field(default_factory=list)  # service CPU per generation, per burst
    latencies: list[float] = field(default_factory=list)  # ms, every sequential request
    sequential_cpu_ms: list[float] = field(default_factory=list)  # service CPU per generation, per round

    def body(self, prompt: str) -> dict:
        body = {"prompt": prompt, "size": SIZE}
        return {**body, "model": MODEL} if self.server is None else body


@contextmanager
def service(
    workdir: Path,
    fake_url: str,
    name: str,
    tree: Path | None,
    python: str,
    databases: list[str],
    store: str = "sqlite",
    server: str = "uvicorn",
) -> Iterator[servers.Server]:
    """databases: where a MySQL store's database is written down, to be dropped at the end."""
    workdir.mkdir()
    env = service_env(workdir, fake_url)
    if store != "sqlite":
        env["PIXYPROXY_DATABASE_URL"] = store_env(store, workdir, databases)["PIXYPROXY_DATABASE_URL"]
    if tree is not None:
        env["PYTHONPATH"] = str(tree)
    with servers.pixyproxy_server(workdir, env, name=name, python=python, server=server) as running:
        yield running


async def burst(side: Side, count: int, tag: str, check: bool = True) -> float:
    """Wall seconds for `count` generations sent at once, each on its own open connection."""
    bodies = [side.body(f"burst {tag} {i}") for i in range(count)]
    wall, statuses = await send_at_once(side.base_url, side.path, bodies)
    failed = [status for status in statuses if status != 200]
    if failed and check:
        raise RuntimeError(f"{side.label}: {len(failed)} of {count} failed: {sorted(set(failed))}")
    return wall


def concurrency(sides: list[Side], fake_url: str, rounds: int, count: int, log) -> None:
    set_latency(fake_url, 1.0)
    for n in range(rounds):
        for side in sides:
            # Right before each measured burst: the service's pool then holds its connections to the
            # provider, as in steady state (idle, they would close within the other sides' bursts).
            asyncio.run(burst(side, count, f"warm-up {n} {side.label}", check=False))
            before = servers.process_tree_cpu(side.server.process.pid) if side.server else 0.0
            wall = asyncio.run(burst(side, count, f"{n} {side.label}"))
            side.rates.append(count / wall)
            if side.server:
                used = servers.process_tree_cpu(side.server.process.pid) - before
                side.cpu_ms.append(used * 1000 / count)
        log(f"… burst round {n + 1}: " + ", ".join(f"{s.label} {s.rates[-1]:.0f}/s" for s in sides))


def latency(sides: list[Side], fake_url: str, rounds: int, per_round: int, log) -> None:
    set_latency(fake_url, 0.0)
    counter = iter(range(10**9))

    def bodies(side: Side) -> list[dict]:
        return [side.body(f"a lighthouse number {next(counter)}") for _ in range(per_round)]

    def run(side: Side) -> list[float]:
        try:
            return asyncio.run(sequential_p50(side.base_url, side.path, bodies(side)))
        except RuntimeError as exc:
            raise RuntimeError(f"{side.label}: {exc}") from None

    for n in range(rounds):
        for side in sides:
            asyncio.run(warm(side, f"warm-up {n}"))
            before = servers.process_tree_cpu(side.server.process.pid) if side.server else 0.0
            side.latencies += run(side)
            if side.server:
                used = servers.process_tree_cpu(side.server.process.pid) - before
                side.sequential_cpu_ms.append(used * 1000 / per_round)
        log(f"… latency round {n + 1}: " + ", ".join(f"{s.label} {s.latencies[-1]:.1f} ms" for s in sides))


async def warm(side: Side, tag: str, count: int = 3) -> None:
    """A few requests whose answers are not looked at: a connection the provider closed while the other
    sides were measured (the code before keeps them for as long as the provider does) fails one."""
    connection = await Connection.open(side.base_url)
    try:
        for i in range(count):
            await connection.post(post_request(side.base_url, side.path, side.body(f"{tag} {i}")))
    finally:
        connection.close()


def table(sides: list[Side], count: int) -> list[str]:
    fake = sides[0]
    rate, p50 = statistics.median(fake.rates), statistics.median(fake.latencies)
    lines = [
        f"| side | {count} concurrent, latency 1 s | ÷ fake alone | CPU per generation "
        "| sequential p50, latency 0 | added p50 | CPU per generation |",
        "| --- | --- | --- | --- | --- | --- | --- |",
        f"| {fake.label} | {rate:,.0f} req/s | 1.00 | | {p50:.2f} ms | | |",
    ]
    for side in sides[1:]:
        mine, p = statistics.median(side.rates), statistics.median(side.latencies)
        cpu, sequential_cpu = statistics.median(side.cpu_ms), statistics.median(side.sequential_cpu_ms)
        lines.append(
            f"| {side.label} | {mine:,.0f} req/s | {mine / rate:.2f} | {cpu:.2f} ms "
            f"| {p:.2f} ms | {p - p50:.2f} ms | {sequential_cpu:.2f} ms |"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.generation_limit", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--before", type=Path, help="a tree of the code before, served side by side")
    parser.add_argument("--before-python", default=sys.executable)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of each row")
    parser.add_argument("--requests", type=int, default=40, help="sequential requests per side per round")
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--rows", default="1,2", help="which rows: 1, 2 or 1,2")
    parser.add_argument("--stores", default="sqlite", help="sqlite, mysql or both (the code after)")
    parser.add_argument("--servers", default="uvicorn", help="uvicorn, granian or both (the code after)")
    args = parser.parse_args(argv)
    rows = {int(r) for r in args.rows.split(",") if r.strip()}
    stores = [s.strip() for s in args.stores.split(",") if s.strip()]
    server_names = [s.strip() for s in args.servers.split(",") if s.strip()]
    if not set(stores) <= set(STORE_NAMES) or not set(server_names) <= {"uvicorn", "granian"}:
        parser.error("--stores takes sqlite and mysql, --servers uvicorn and granian")
    databases: list[str] = []

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    started_at = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    load_before = load_average()
    with tempfile.TemporaryDirectory(prefix="pixybench-genlimit-") as tmp, ExitStack() as stack:
        work = Path(tmp)
        fake_url = stack.enter_context(fake_openai(work, 0.0, noise=True))
        stack.callback(drop_databases, databases)
        sides = [Side("fake alone", fake_url, FAKE)]
        several = len(stores) > 1 or len(server_names) > 1
        for store in stores:
            for server_name in server_names:
                name = f"after, {STORE_NAMES[store]}, {server_name}" if several else "after"
                folder = work / f"after-{store}-{server_name}"
                server = stack.enter_context(
                    service(folder, fake_url, name, None, sys.executable, databases, store, server_name)
                )
                sides += [
                    Side(f"{name}, {route}", server.base_url, path, server) for route, path in ROUTES.items()
                ]
        if args.before:
            server = stack.enter_context(
                service(work / "before", fake_url, "before", args.before, args.before_python, databases)
            )
            sides += [
                Side(f"before, {route}", server.base_url, path, server) for route, path in ROUTES.items()
            ]
        # Sequential first: after a burst, a pool holds hundreds of idle connections, which a tree whose
        # client keeps them as long as the provider does would meet as the provider closes them.
        if 2 in rows:
            latency(sides, fake_url, args.rounds, args.requests, log)
        if 1 in rows:
            concurrency(sides, fake_url, args.rounds, args.concurrency, log)
    for side in sides:  # a row not run leaves its column empty
        side.rates = side.rates or [float("nan")]
        side.cpu_ms = side.cpu_ms or [float("nan")]
        side.latencies = side.latencies or [float("nan")]
        side.sequential_cpu_ms = side.sequential_cpu_ms or [float("nan")]
    command = f"python -m bench.generation_limit --rounds {args.rounds} --requests {args.requests}"
    command += f" --rows {args.rows}" if args.rows != "1,2" else ""
    command += f" --concurrency {args.concurrency}" if args.concurrency != 200 else ""
    command += f" --stores {args.stores}" if args.stores != "sqlite" else ""
    command += f" --servers {args.servers}" if args.servers != "uvicorn" else ""
    command += " --before <tree>" if args.before else ""
    print(
        f"`{command}` ({started_at}, {os.cpu_count()} cores); load average before {load_before}, "
        f"after {load_average()}; a {SIZE} PNG of random pixels (~263 KB of JSON per answer)."
    )
    print()
    print("\n".join(table(sides, args.concurrency)))
    print()
    print(
        f"Goals: at least {GOAL_RATIO} of the fake alone's req/s; at most {GOAL_ADDED_MS} ms added p50. "
        f"Rates per burst: " + "; ".join(f"{s.label} {', '.join(f'{r:.0f}' for r in s.rates)}" for s in sides)
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
