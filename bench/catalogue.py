"""The model catalogue's routing, measured in process (no HTTP, no provider): what routing adds to a
generation, what a fallback after a 500 adds, and how 200 concurrent generations spread over two
deployments. Providers are stubs that answer after a set time, so only routing is measured.

    .venv/bin/python -m bench.catalogue [--redis redis://127.0.0.1:6379/6]
"""

import argparse
import asyncio
import statistics
import time
from dataclasses import dataclass

from pixyproxy.adapters.deployment_slots import Slots
from pixyproxy.adapters.memory_cooldowns import MemoryCooldowns
from pixyproxy.adapters.routing import Route, RoutingGenerator
from pixyproxy.domain.capabilities import OPEN
from pixyproxy.domain.catalogue import Catalogue, CatalogueFile, ModelEntry
from pixyproxy.domain.errors import GeneratorError
from pixyproxy.domain.models import GeneratedImage, GenerationRequest

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


async def fallback_cost(cooldowns) -> tuple[float, float]:
    """(ms the failed call took, ms the whole generation took) for a 500 after 50 ms, then a fallback
    that answers at once."""
    failing, backup = Stub(seconds=0.05, fail=True), Stub()
    routing = router(
        [ModelEntry(name="failing", provider="stub", fallbacks=["f"]), ModelEntry(name="f", provider="stub")],
        [failing, backup],
        cooldowns,
    )
    started = time.perf_counter()
    await routing.generate(GenerationRequest(prompt="x"))
    return 50.0, (time.perf_counter() - started) * 1000


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


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--redis", help="measure with cooldowns in this Redis too")
    args = parser.parse_args()
    stores = [("memory", MemoryCooldowns())]
    if args.redis:
        from pixyproxy.adapters.redis_cooldowns import RedisCooldowns

        stores.append(("redis", RedisCooldowns(args.redis)))
    for label, store in stores:
        print(f"cooldowns in {label}")
        for case, micros in (await overhead(store)).items():
            print(f"  p50 {case:32s} {micros:8.1f} us")
        failed, total = await fallback_cost(store)
        print(f"  fallback after a 500: the failed call {failed:.1f} ms, the generation {total:.1f} ms")
        ideal, wall, calls = await spread(store)
        print(
            f"  200 concurrent, two deployments of 50: ideal {ideal:.2f} s, wall {wall:.2f} s "
            f"({wall / ideal:.2f}x), calls {calls}"
        )
        await store.close()


if __name__ == "__main__":
    asyncio.run(main())
