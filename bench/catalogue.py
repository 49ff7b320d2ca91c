"""The model catalogue's routing, measured in process (no HTTP, no provider): what routing adds to a
generation, what a fallback after a 500 adds, and how 200 concurrent generations spread over two
deployments. Providers are stubs that answer after a set time, so only routing is measured.

    .venv/bin/python -m bench.catalogue [--redis redis://127.0.0.1:6379/6 [--before REVISION]] [--rounds 3]

With --before, the Redis cooldowns of that revision are measured too, in turn with the working tree's.
"""

import argparse
import asyncio
import os
import statistics
import subprocess
import time
import types
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from uuid import uuid4

from pixyproxy.adapters.deployment_slots import Slots
from pixyproxy.adapters.memory_cooldowns import MemoryCooldowns
from pixyproxy.adapters.routing import Route, RoutingGenerator
from pixyproxy.domain.capabilities import OPEN
from pixyproxy.domain.catalogue import Catalogue, CatalogueFile, ModelEntry
from pixyproxy.domain.errors import GeneratorError
from pixyproxy.domain.models import GeneratedImage, GenerationRequest

ROOT = Path(__file__).resolve().parents[1]
IMAGE = GeneratedImage(data=b"x", model="stub", size="1024x1024")


@dataclass
class Stub:
    """A provider that answers after `seconds` (failing with a 500 while `fail` is set)."""

    seconds: float = 0.0
    fail: bool = False
    name: str = "stub"
    default_model: str = "stub"
    calls: int = 0

    def validate(self, request: GenerationRequest) -> None:
        return None

    async def generate(self, request: GenerationRequest, **options: object) -> GeneratedImage:
        self.calls += 1
        if self.seconds:
            await asyncio.sleep(self.seconds)
        if self.fail:
            raise GeneratorError("the image generator failed (HTTP 500)", failover=True)
        return IMAGE

    async def init(self) -> None: ...
    async def ping(self) -> None: ...
    async def close(self) -> None: ...


def router(
    entries: list[ModelEntry], stubs: list[Stub], cooldowns, limit: int | None = None
) -> RoutingGenerator:
    catalogue = Catalogue.of(CatalogueFile(models=entries))
    routes: dict[str, list[Route]] = {}
    used: set[int] = set()
    for name, deployments in catalogue.deployments.items():
        for deployment in deployments:  # each entry's own stub, in file order (entries may be equal)
            index = next(i for i, e in enumerate(entries) if e is deployment.entry and i not in used)
            used.add(index)
            stub = stubs[index]
            slots = Slots(limit) if limit else None
            routes.setdefault(name, []).append(Route(deployment, stub, "stub", None, slots))  # type: ignore[arg-type]
    return RoutingGenerator(catalogue, routes, lambda name: OPEN, cooldowns, 30.0)


async def p50_us(call, rounds: int = 20_000) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        await call()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1e6


async def overhead(cooldowns) -> dict[str, float]:
    request = GenerationRequest(prompt="a lighthouse")
    direct = Stub()
    one = router([ModelEntry(name="m", provider="stub")], [Stub()], cooldowns)
    two_entries = [
        ModelEntry(name="m", provider="stub"),
        ModelEntry(name="m", provider="stub"),
        ModelEntry(name="f", provider="stub"),
    ]
    two_entries[0] = two_entries[0].model_copy(update={"fallbacks": ["f"]})
    two = router(two_entries, [Stub(), Stub(), Stub()], cooldowns)
    return {
        "adapter called directly": await p50_us(lambda: direct.generate(request)),
        "catalogue of one model": await p50_us(lambda: one.generate(request)),
        "two deployments + a fallback": await p50_us(lambda: two.generate(request)),
    }


async def fallback_cost(cooldowns, repeats: int = 15) -> tuple[float, float]:
    """(ms the failed call took, median ms of the whole generation) for a 500 after 50 ms, then a fallback
    that answers at once; each repeat a model of its own, so none finds the failing deployment resting."""
    took = []
    for repeat in range(repeats):
        failing, backup = Stub(seconds=0.05, fail=True), Stub()
        name = f"failing-{uuid4().hex[:8]}-{repeat}"
        routing = router(
            [ModelEntry(name=name, provider="stub", fallbacks=["f"]), ModelEntry(name="f", provider="stub")],
            [failing, backup],
            cooldowns,
        )
        started = time.perf_counter()
        await routing.generate(GenerationRequest(prompt="x", model=name))
        took.append((time.perf_counter() - started) * 1000)
    return 50.0, statistics.median(took)


async def spread(
    cooldowns, concurrency: int = 200, seconds: float = 1.0, limit: int = 50
) -> tuple[float, float, list[int]]:
    """(ideal s, wall s, calls per deployment): 200 generations over two deployments of `limit` at once
    each, every call taking `seconds`."""
    stubs = [Stub(seconds=seconds), Stub(seconds=seconds)]
    entries = [ModelEntry(name="spread", provider="stub"), ModelEntry(name="spread", provider="stub")]
    routing = router(entries, stubs, cooldowns, limit)
    request = GenerationRequest(prompt="x")
    started = time.perf_counter()
    await asyncio.gather(*(routing.generate(request) for _ in range(concurrency)))
    wall = time.perf_counter() - started
    return concurrency / (2 * limit) * seconds, wall, [s.calls for s in stubs]


def redis_cooldowns_at(revision: str) -> type:
    """RedisCooldowns as `revision` of this repository wrote it, to measure beside the working tree's."""
    path = "pixyproxy/adapters/redis_cooldowns.py"
    source = subprocess.run(
        ["git", "show", f"{revision}:{path}"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    module = types.ModuleType(f"redis_cooldowns_{revision}")
    exec(compile(source, f"{revision}:{path}", "exec"), module.__dict__)  # the old code, to measure
    return module.RedisCooldowns


async def measure(label: str, make_store) -> None:
    """One store's figures; the spread twice: a store just made (its connection pool empty), then warm."""
    store = make_store()
    print(f"cooldowns in {label}")
    for case, micros in (await overhead(store)).items():
        print(f"  p50 {case:32s} {micros:8.1f} us")
    failed, total = await fallback_cost(store)
    print(f"  fallback after a 500: the failed call {failed:.1f} ms, the generation {total:.1f} ms (p50)")
    await store.close()
    store = make_store()
    for state in ("new store", "warm store"):
        ideal, wall, calls = await spread(store)
        print(
            f"  200 concurrent, two deployments of 50, {state}: ideal {ideal:.2f} s, wall {wall:.2f} s "
            f"({wall / ideal:.2f}x), calls {calls}"
        )
    await store.close()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--redis", help="measure with cooldowns in this Redis too")
    parser.add_argument("--before", metavar="REVISION", help="and the Redis cooldowns of this revision")
    parser.add_argument("--rounds", type=int, default=1, help="each store measured in turn, this many times")
    args = parser.parse_args()
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load average {os.getloadavg()}")
    stores: list[tuple[str, Callable[[], object]]] = [("memory", MemoryCooldowns)]
    if args.redis:
        from pixyproxy.adapters.redis_cooldowns import RedisCooldowns

        # Each store its own keys: one's rests (the fallback case's) are not another's.
        if args.before:
            before = redis_cooldowns_at(args.before)
            stores.append((f"redis, {args.before}", lambda: before(args.redis, prefix=f"bench:{uuid4()}:")))
        stores.append(("redis", lambda: RedisCooldowns(args.redis, prefix=f"bench:{uuid4()}:")))
    for round_ in range(args.rounds):
        print(f"round {round_ + 1}")
        for label, make_store in stores:
            await measure(label, make_store)


if __name__ == "__main__":
    asyncio.run(main())
