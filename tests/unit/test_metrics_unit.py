"""The metered decorators and the metrics middleware, in process (the e2e suite scrapes a real server)."""

import asyncio

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from pixyproxy.adapters.metered import MeteredBlobStore, MeteredGenerator
from pixyproxy.adapters.prometheus_metrics import PrometheusMetrics as Metrics
from pixyproxy.domain.errors import GeneratorTimeout
from pixyproxy.domain.models import GenerationRequest
from pixyproxy.entrypoints.middleware.boundary import RequestBoundary
from pixyproxy.entrypoints.route_match import RouteTable
from tests.support.fakes import InMemoryBlobStore, InMemoryImageRepository, ScriptedGenerator
from tests.support.use_cases import build_use_cases


def samples(metrics: Metrics) -> dict[tuple[str, frozenset], float]:
    text = metrics.render()[0].decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return samples(metrics).get((name, frozenset(labels.items())))


async def test_generations_are_counted_by_model_and_outcome_and_bytes_stored():
    metrics, generator, blobs = Metrics(), ScriptedGenerator(), InMemoryBlobStore()
    cases = build_use_cases(
        MeteredGenerator(generator, metrics), InMemoryImageRepository(), MeteredBlobStore(blobs, metrics)
    )
    first = await cases.generate(GenerationRequest(prompt="one"))
    second = await cases.generate(GenerationRequest(prompt="two"))
    generator.fail_with = GeneratorTimeout()
    with pytest.raises(GeneratorTimeout):
        await cases.generate(GenerationRequest(prompt="three"))

    ok = {"model": "scripted-1", "outcome": "success"}
    timed_out = {"model": "scripted-1", "outcome": "generator_timeout"}
    assert value(metrics, "pixyproxy_generations_total", **ok) == 2
    assert value(metrics, "pixyproxy_generations_total", **timed_out) == 1
    assert value(metrics, "pixyproxy_generator_duration_seconds_count", **ok) == 2
    assert value(metrics, "pixyproxy_stored_images_total") == 2
    assert value(metrics, "pixyproxy_stored_bytes_total") == first.size_bytes + second.size_bytes
    # The decorators pass everything else through to the adapters.
    assert len(blobs.blobs) == 2 and len(generator.calls) == 3


async def test_a_cancelled_generation_is_counted_as_cancelled():
    metrics = Metrics()
    scripted = ScriptedGenerator(hold=True)  # never released: the generation is under way when cancelled
    generator = MeteredGenerator(scripted, metrics)
    task = asyncio.create_task(generator.generate(GenerationRequest(prompt="slow")))
    await scripted.called.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert value(metrics, "pixyproxy_generations_total", model="scripted-1", outcome="cancelled") == 1


async def test_the_boundary_labels_by_route_template_and_bounds_what_it_does_not_know():
    async def hello(request):
        return PlainTextResponse("hi")

    routes = [Route("/image/{guid}", hello), Route("/image/{guid}/", hello)]
    metrics = Metrics()
    inner = Starlette(routes=routes)

    async def refuse_secret(scope, receive, send):
        # A middleware that answers before routing, as the API key check does.
        if scope["path"].endswith("/secret"):
            await PlainTextResponse("no", status_code=401)(scope, receive, send)
        else:
            await inner(scope, receive, send)

    app = RequestBoundary(refuse_secret, recorder=metrics, routes=RouteTable(routes))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        for guid in ("a", "b", "c/"):
            assert (await client.get(f"/image/{guid}")).status_code == 200
        assert (await client.get("/image/secret")).status_code == 401
        assert (await client.get("/random/path/1")).status_code == 404
        assert (await client.post("/image/x")).status_code == 405
        assert (await client.request("BREW", "/image/x")).status_code == 405

    counts = {
        dict(labels)["route"] + " " + dict(labels)["method"] + " " + dict(labels)["status"]: v
        for (name, labels), v in samples(metrics).items()
        if name == "pixyproxy_http_requests_total"
    }
    assert counts == {
        "/image/{guid} GET 200": 3,
        "/image/{guid} GET 401": 1,
        "<unmatched> GET 404": 1,
        "/image/{guid} POST 405": 1,
        "/image/{guid} OTHER 405": 1,
    }
    assert (
        value(metrics, "pixyproxy_http_request_duration_seconds_count", method="GET", route="/image/{guid}")
        == 4
    )
