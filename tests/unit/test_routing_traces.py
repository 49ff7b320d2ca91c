"""Each provider attempt routing makes is a span under the generator's (`generate <provider>`, naming the
provider, deployment and attempt number; a failed attempt says so), and the generator's span names the
model, provider and deployment that served, after how many attempts. Read with the in-memory exporter."""

import asyncio

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from pixyproxy.adapters.traced import traced, traced_attempts
from pixyproxy.domain.catalogue import ModelEntry
from tests.support.routing import REQUEST, Gated, gated_routing


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def tracer(exporter):
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider.get_tracer("test")


async def test_a_fallback_is_two_attempt_spans_and_the_generation_names_who_served(tracer, exporter):
    primary, backup = Gated("azure", open_gates=False), Gated("gemini", open_gates=True)
    entries = [
        ModelEntry(name="m", provider="azure", fallbacks=["nano"]),
        ModelEntry(name="nano", provider="gemini"),
    ]
    routing = traced_attempts(gated_routing(entries, [primary, backup]), tracer)
    generator = traced(routing, tracer, "generator")
    with tracer.start_as_current_span("POST /image"):
        made = asyncio.create_task(generator.generate(REQUEST))
        (await primary.started.get()).fail_over()
        image = await made
    assert (image.provider, image.deployment, image.attempts) == ("gemini", "nano#1", 2)
    spans = {span.name: span for span in exporter.get_finished_spans()}
    assert set(spans) == {"POST /image", "generator.generate", "generate azure", "generate gemini"}
    generation = spans["generator.generate"]
    assert dict(generation.attributes) == {
        "pixyproxy.component": "generator",
        "pixyproxy.adapter": "catalogue",
        "pixyproxy.model": "nano",
        "pixyproxy.provider": "gemini",
        "pixyproxy.deployment": "nano#1",
        "pixyproxy.attempts": 2,
    }
    failed, served = spans["generate azure"], spans["generate gemini"]
    for attempt in (failed, served):
        assert attempt.parent.span_id == generation.context.span_id
    assert dict(failed.attributes) == {
        "pixyproxy.component": "provider",
        "pixyproxy.provider": "azure",
        "pixyproxy.deployment": "m#1",
        "pixyproxy.attempt": 1,
    }
    assert failed.status.status_code == StatusCode.ERROR and failed.events[0].name == "exception"
    assert (served.attributes["pixyproxy.deployment"], served.attributes["pixyproxy.attempt"]) == (
        "nano#1",
        2,
    )
    assert served.status.status_code != StatusCode.ERROR


async def test_outside_a_trace_and_with_traces_off_no_attempt_spans(tracer, exporter):
    provider = Gated("openai", open_gates=True)
    routing = traced_attempts(gated_routing([ModelEntry(name="m", provider="openai")], [provider]), tracer)
    await routing.generate(REQUEST)  # no trace around it: a worker's housekeeping, say
    assert exporter.get_finished_spans() == ()
    untraced = gated_routing([ModelEntry(name="m", provider="openai")], [Gated("openai", open_gates=True)])
    assert traced_attempts(untraced, None) is untraced
    assert (await untraced.generate(REQUEST)).deployment == "m#1"
