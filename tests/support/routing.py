"""A routing generator over gated stub providers: each call waits for its own gate, so a test decides
when each provider answers (and whether it fails over), with events rather than sleeps."""

import asyncio
from dataclasses import dataclass, field

from pixyproxy.adapters.deployment_slots import Slots
from pixyproxy.adapters.memory_cooldowns import MemoryCooldowns
from pixyproxy.adapters.routing import Route, RoutingGenerator
from pixyproxy.domain.capabilities import OPEN
from pixyproxy.domain.catalogue import Catalogue, CatalogueFile, ModelEntry
from pixyproxy.domain.errors import GeneratorError
from pixyproxy.domain.models import GeneratedImage, GenerationRequest

REQUEST = GenerationRequest(prompt="a harbour")


@dataclass
class Call:
    gate: asyncio.Event = field(default_factory=asyncio.Event)
    fail: bool = False  # set before the gate: the call answers a 500 (which fails over)

    def answer(self) -> None:
        self.gate.set()

    def fail_over(self) -> None:
        self.fail = True
        self.gate.set()


class Gated:
    """A provider whose every call is put on `started`, then answers when its gate opens."""

    default_model = "gated"

    def __init__(self, name: str = "gated", open_gates: bool = False) -> None:
        self.name = name
        self.open_gates = open_gates  # answer at once
        self.started: asyncio.Queue[Call] = asyncio.Queue()
        self.calls = 0

    def validate(self, request: GenerationRequest) -> None:
        return None

    async def generate(self, request: GenerationRequest, **options: object) -> GeneratedImage:
        self.calls += 1
        call = Call()
        if self.open_gates:
            call.answer()
        await self.started.put(call)
        await call.gate.wait()
        if call.fail:
            raise GeneratorError("the image generator failed (HTTP 500)", failover=True)
        return GeneratedImage(data=b"x", model=self.name, size="1024x1024")

    async def init(self) -> None: ...
    async def ping(self) -> None: ...
    async def close(self) -> None: ...


def gated_routing(entries: list[ModelEntry], providers: list[Gated], cooldowns=None) -> RoutingGenerator:
    """Routing over `entries`, the i-th entry served by `providers[i]` (its max_concurrency honoured)."""
    catalogue = Catalogue.of(CatalogueFile(models=entries))
    by_entry = {id(entry): provider for entry, provider in zip(entries, providers, strict=True)}
    routes: dict[str, list[Route]] = {}
    for name, deployments in catalogue.deployments.items():
        for deployment in deployments:
            entry = deployment.entry
            slots = Slots(entry.max_concurrency) if entry.max_concurrency else None
            adapter = by_entry[id(entry)]
            routes.setdefault(name, []).append(Route(deployment, adapter, adapter.name, None, slots))  # type: ignore[arg-type]
    return RoutingGenerator(catalogue, routes, lambda name: OPEN, cooldowns or MemoryCooldowns(), 30.0)


async def settle(rounds: int = 20) -> None:
    """Let every task that can run, run (no time passes): to show that something did not happen."""
    for _ in range(rounds):
        await asyncio.sleep(0)
