"""The routing generator: the catalogue's models behind the one generator port.

A request names a model (or an alias, or nothing: the default). Its options are checked against what
that model takes (a 422 naming option and model otherwise). Its deployments are tried in smooth weighted
round-robin order; one that answers 429 or 5xx, times out or cannot be reached rests for the cooldown
(per process, or shared through Redis) and the next is tried, then the model's fallbacks in order (each
only if it takes every option asked). A client's mistake or a content-policy refusal answers at once.
A deployment at its max_concurrency is passed over the same way, without waiting; only when every
deployment and fallback left is full does a request wait, for the first of them to free a slot.
The image says which model, provider and deployment made it, after how many attempts, and its cost.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from typing import Any

from pixyproxy.adapters.deployment_slots import Slots, first_free
from pixyproxy.adapters.providers.base import fails_over
from pixyproxy.domain.capabilities import Capabilities
from pixyproxy.domain.catalogue import Catalogue, Deployment, ModelPrice
from pixyproxy.domain.errors import GeneratorError, GeneratorRateLimited, ImageException, InvalidImageRequest
from pixyproxy.domain.generation_note import note_generation
from pixyproxy.domain.models import EditRequest, GeneratedImage, GenerationRequest, SourceImage
from pixyproxy.domain.ports.cooldowns import Cooldowns
from pixyproxy.domain.ports.generator import ImageGenerator
from pixyproxy.domain.ports.metrics import MetricsRecorder

log = logging.getLogger(__name__)

Call = Callable[[ImageGenerator, GenerationRequest], Awaitable[GeneratedImage]]
# Around each provider attempt: (the request as sent, provider, deployment, attempt number) -> a scope.
AttemptScope = Callable[[GenerationRequest, str, str, int], AbstractContextManager[object]]


def _no_scope(
    asked: GenerationRequest, provider: str, deployment: str, attempt: int
) -> AbstractContextManager[object]:
    return contextlib.nullcontext()


@dataclass
class Route:
    """One deployment ready to call: its adapter, provider name and (optional) cap on calls at once."""

    deployment: Deployment
    adapter: ImageGenerator
    provider: str
    price: ModelPrice | None
    limit: Slots | None = None

    @property
    def label(self) -> str:
        return self.deployment.label


class _Balancer:
    """Smooth weighted round-robin (as nginx balances upstreams): over any run, each deployment is
    first in proportion to its weight, interleaved rather than in bursts."""

    def __init__(self) -> None:
        self.current: dict[str, float] = {}

    def order(self, routes: list[Route]) -> list[Route]:
        if len(routes) < 2:
            return routes
        total = sum(r.deployment.entry.weight for r in routes)
        for route in routes:
            self.current[route.label] = self.current.get(route.label, 0.0) + route.deployment.entry.weight
        first = max(routes, key=lambda r: self.current[r.label])
        self.current[first.label] -= total
        rest = sorted((r for r in routes if r is not first), key=lambda r: -self.current[r.label])
        return [first, *rest]


class RoutingGenerator:
    name = "catalogue"

    def __init__(
        self,
        catalogue: Catalogue,
        routes: dict[str, list[Route]],
        capabilities: Callable[[str], Capabilities],
        cooldowns: Cooldowns,
        cooldown_seconds: float,
        *,
        estimate_costs: bool = True,
        recorder: MetricsRecorder | None = None,
    ) -> None:
        self.recorder = recorder  # each provider attempt, by provider, deployment and outcome
        self.catalogue = catalogue
        self.routes = routes  # catalogue name -> its deployments
        self.capabilities = capabilities  # catalogue name (or a passthrough model) -> what it takes
        self.cooldowns = cooldowns
        self.cooldown_seconds = cooldown_seconds
        self.estimate_costs = estimate_costs  # False: the service's price table (PIXYPROXY_PRICES) decides
        self._balancers = {name: _Balancer() for name in routes}
        self.attempt_scope: AttemptScope = _no_scope  # traces set one: a span per provider attempt

    @property
    def default_model(self) -> str:
        return self.catalogue.default

    # -- what a request may ask -------------------------------------------------------------------

    def validate(self, request: GenerationRequest) -> None:
        name = self.catalogue.resolve(request.model)
        self.capabilities(name).check(request, request.model or name)
        route = self._routes_of(name)[0]
        route.adapter.validate(self._for_provider(request, name, route))

    def _routes_of(self, name: str) -> list[Route]:
        return self.routes.get(name) or self.routes[self.catalogue.default]

    def _for_provider(self, request: GenerationRequest, name: str, route: Route) -> GenerationRequest:
        """The request as the deployment's adapter takes it: no model for a catalogue name (each adapter
        is built for its entry's model id, so a refusal of it is our configuration's, not the client's),
        a passthrough name as asked."""
        model = None if name in self.routes else name
        return request if request.model == model else request.model_copy(update={"model": model})

    # -- calls ------------------------------------------------------------------------------------

    async def generate(self, request: GenerationRequest, **options: Any) -> GeneratedImage:
        return await self._routed(request, lambda adapter, asked: adapter.generate(asked, **options))

    async def edit(
        self,
        request: EditRequest,
        images: list[SourceImage],
        mask: SourceImage | None = None,
        **options: Any,
    ) -> GeneratedImage:
        name = self.catalogue.resolve(request.model)
        if not self.capabilities(name).edits:
            raise InvalidImageRequest(f"model: {request.model or name!r} does not make edits", param="model")

        def call(adapter: ImageGenerator, asked: GenerationRequest) -> Awaitable[GeneratedImage]:
            assert isinstance(asked, EditRequest)
            return adapter.edit(asked, images, mask, **options)

        return await self._routed(request, call, edits=True)

    async def _routed(self, request: GenerationRequest, call: Call, edits: bool = False) -> GeneratedImage:
        name = self.catalogue.resolve(request.model)
        chain = [name, *self._fallbacks(name, request, edits)]
        plans = [(model, self._routes_of(model)) for model in chain]
        labels = [route.label for _, routes in plans for route in routes]
        # One read of the whole chain's rests per request, and none with nowhere else to go.
        cooling = await self.cooldowns.cooling(labels) if len(labels) > 1 else {}
        attempts, last = 0, None
        full: list[tuple[str, Route]] = []  # deployments passed over at their max_concurrency, in order
        for model, routes in plans:
            ready = [r for r in routes if r.label not in cooling]
            for route in self._balancers[model].order(ready) if model in self._balancers else ready:
                if route.limit is not None and not route.limit.try_take():
                    full.append((model, route))
                    continue
                attempts += 1
                image, last = await self._attempt(route, call, request, model, attempts, len(labels) > 1)
                if image is not None:
                    return image
        resting = list(cooling.values())
        while full:  # every deployment and fallback left is full: the first to free a slot serves
            freed = await first_free([route.limit for _, route in full if route.limit is not None])
            model, route = next(pair for pair in full if pair[1].limit is freed)
            full.remove((model, route))
            # A slot freed by a call that failed over: that deployment rests now, and is passed over.
            if len(labels) > 1 and (rest := await self._resting(route, freed)):
                resting += rest.values()
                continue
            attempts += 1
            image, last = await self._attempt(route, call, request, model, attempts, len(labels) > 1)
            if image is not None:
                return image
        if last is not None:
            raise last
        raise GeneratorRateLimited(
            f"every deployment of model {name!r} is resting after failures; try again shortly",
            retry_after=min(resting, default=self.cooldown_seconds),
        )

    async def _resting(self, route: Route, held: Slots) -> dict[str, float]:
        """Whether `route`, whose slot is `held`, rests now; if so (or if the asking is cancelled), the
        slot is given back."""
        try:
            rest = await self.cooldowns.cooling([route.label])
        except BaseException:
            held.give_back()
            raise
        if rest:
            held.give_back()
        return rest

    async def _attempt(
        self,
        route: Route,
        call: Call,
        request: GenerationRequest,
        model: str,
        attempt: int,
        alternatives: bool,
    ) -> tuple[GeneratedImage | None, GeneratorError | None]:
        """One deployment's try, its slot (if capped) already held: (the image, None), or (None, the
        error) when it failed over; any other error is raised at once."""
        try:
            image = await self._call(route, call, self._for_provider(request, model, route), attempt)
        except GeneratorError as exc:
            if not fails_over(exc):
                raise
            log.warning("deployment %s (%s) failed over: %s", route.label, route.provider, exc.message)
            if alternatives:
                await self.cooldowns.cool(route.label, self.cooldown_seconds)
            return None, exc
        return self._made(image, model, route, attempt), None

    def _fallbacks(self, name: str, request: GenerationRequest, edits: bool) -> list[str]:
        """The model's fallbacks that take every option asked (one that does not is passed over)."""
        usable = []
        for fallback in self.catalogue.fallbacks(name):
            caps = self.capabilities(fallback)
            try:
                caps.check(request, fallback)
            except InvalidImageRequest as exc:
                log.info("fallback %s passed over: %s", fallback, exc.message)
                continue
            if caps.edits or not edits:
                usable.append(fallback)
        return usable

    async def _call(self, route: Route, call: Call, asked: GenerationRequest, attempt: int) -> GeneratedImage:
        started, outcome = time.perf_counter(), "error"
        try:
            with self.attempt_scope(asked, route.provider, route.label, attempt):
                image = await call(route.adapter, asked)
            outcome = "success"
            return image
        except ImageException as exc:
            outcome = exc.code
            raise
        except asyncio.CancelledError:
            outcome = "cancelled"
            raise
        finally:
            if route.limit is not None:
                route.limit.give_back()
            note_generation(route.provider, outcome)
            if self.recorder is not None:
                seconds = time.perf_counter() - started
                self.recorder.observe_provider_attempt(route.provider, route.label, outcome, seconds)

    def _made(self, image: GeneratedImage, model: str, route: Route, attempts: int) -> GeneratedImage:
        cost = None
        if self.estimate_costs and route.price is not None:
            cost = route.price.estimate(image.usage, image.size)
        return replace(
            image,
            model=model if model in self.routes else image.model,
            provider=route.provider,
            deployment=route.label,
            attempts=attempts,
            cost_usd=cost,
        )

    def describe_models(self) -> list[dict[str, Any]]:
        """The catalogue as GET /models lists it: each name, its provider(s), aliases, fallbacks, the
        options it takes and its price."""
        listed = []
        for name, routes in self.routes.items():
            price = routes[0].price
            listed.append(
                {
                    "name": name,
                    "provider": routes[0].provider,
                    "providers": sorted({r.provider for r in routes}),
                    "deployments": len(routes),
                    "default": name == self.catalogue.default,
                    "aliases": self.catalogue.aliases_of(name),
                    "fallbacks": self.catalogue.fallbacks(name),
                    **self.capabilities(name).describe(),
                    "price": price.model_dump() if price is not None else None,
                }
            )
        return listed

    # -- life -------------------------------------------------------------------------------------

    def all_routes(self) -> list[Route]:
        return [route for routes in self.routes.values() for route in routes]

    async def init(self) -> None:
        for route in self.all_routes():
            await route.adapter.init()

    async def ping(self) -> None:
        """Not ready while a deployment cannot serve (each is named in /readyz's provider checks)."""
        if len(routes := self.all_routes()) == 1:
            await routes[0].adapter.ping()
            return
        failing = {name: state for name, state in (await self.provider_checks()).items() if state != "ok"}
        if failing:
            raise GeneratorError("; ".join(f"{name}: {state}" for name, state in failing.items()))

    async def provider_checks(self) -> dict[str, str]:
        """Each deployment, as `label (provider)`, and `ok` or what is wrong with it; none for a catalogue
        of one deployment, whose state is the generator's own."""
        checks: dict[str, str] = {}
        if len(self.all_routes()) == 1:
            return checks
        for route in self.all_routes():
            name = f"{route.label} ({route.provider})"
            try:
                await route.adapter.ping()
                checks[name] = "ok"
            except GeneratorError as exc:
                checks[name] = exc.message
        return checks

    async def close(self) -> None:
        for route in self.all_routes():
            await route.adapter.close()
        await self.cooldowns.close()
