"""OpenTelemetry spans, read with the SDK's in-memory exporter: one per request (its request id an
attribute), one per generator call (naming the provider and deployment that served) with one per provider
attempt under it, one per storage and database operation, one per job run in the trace of the
request that submitted the job. With no endpoint configured nothing is wrapped at all."""

import json
import time

import pytest
from dependency_injector import providers
from fastapi.testclient import TestClient
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from pixyproxy.adapters.otlp_tracing import otlp_tracer
from pixyproxy.entrypoints.app import create_app
from pixyproxy.entrypoints.middleware.tracing import TracingMiddleware
from tests.support.embedded import embedded_container

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def client(tmp_path, exporter):
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    container = embedded_container(tmp_path, job_poll_seconds=0.05)
    container.tracer.override(providers.Object(provider.get_tracer("test")))
    with TestClient(create_app(container)) as http:
        yield http


def in_trace(spans: tuple[ReadableSpan, ...], root: ReadableSpan) -> dict[str, ReadableSpan]:
    """The spans under `root` (itself included), by name."""
    ids = {root.context.span_id}
    under = {root.name: root}
    for span in sorted(spans, key=lambda s: s.start_time or 0):
        if span.parent is not None and span.parent.span_id in ids:
            ids.add(span.context.span_id)
            under[span.name] = span
    return under


def test_a_request_its_provider_call_storage_and_database_are_one_trace(client, exporter):
    response = client.post("/image/", json={"prompt": "a lighthouse"}, headers={"traceparent": TRACEPARENT})
    assert response.status_code == 200
    spans = exporter.get_finished_spans()
    (request,) = [s for s in spans if s.kind == SpanKind.SERVER]
    assert request.name == "POST /image" and request.attributes["http.route"] == "/image"
    assert request.attributes["pixyproxy.request_id"] == response.headers["x-request-id"]
    assert request.attributes["http.response.status_code"] == 200
    assert format(request.context.trace_id, "032x") == TRACEPARENT.split("-")[1]  # the caller's trace
    under = in_trace(spans, request)
    assert {"generator.generate", "generate offline", "storage.put", "db.add"} <= set(under), sorted(under)
    generation, attempt = under["generator.generate"], under["generate offline"]
    assert generation.attributes["pixyproxy.adapter"] == "catalogue"  # the routing port, and who served:
    assert {k: generation.attributes[k] for k in ("pixyproxy.provider", "pixyproxy.deployment")} == {
        "pixyproxy.provider": "offline",
        "pixyproxy.deployment": "pixyproxy-offline#1",
    }
    assert generation.attributes["pixyproxy.attempts"] == 1
    assert attempt.parent.span_id == generation.context.span_id  # the provider's call, under routing's
    assert attempt.attributes["pixyproxy.deployment"] == "pixyproxy-offline#1"
    assert attempt.attributes["pixyproxy.attempt"] == 1
    assert under["db.add"].attributes["pixyproxy.adapter"] == "sqlite"
    guid = response.json()["guid"]
    edited = client.post(
        f"/image/{guid}/edits", json={"prompt": "add a moon"}, headers={"traceparent": TRACEPARENT}
    )
    assert edited.status_code == 200, edited.text
    (edit,) = [s for s in exporter.get_finished_spans() if s.name == "edit offline"]
    assert edit.attributes["pixyproxy.provider"] == "offline"


def test_a_failed_request_and_a_failed_call_say_so(client, exporter):
    assert client.get("/image/00000000-0000-4000-8000-000000000000").status_code == 404
    (request,) = exporter.get_finished_spans()[-1:]
    assert request.name == "GET /image/{guid}" and request.attributes["http.response.status_code"] == 404
    assert request.status.status_code != StatusCode.ERROR  # a client's mistake is not a server error


def test_a_job_runs_in_the_trace_of_the_request_that_submitted_it(client, exporter):
    submitted = client.post("/image/jobs", json={"prompt": "a fox", "n": 2})
    assert submitted.status_code == 202
    job_id = submitted.json()["id"]
    with client.stream("GET", f"/image/jobs/{job_id}/events") as events:
        ended = [json.loads(line[5:]) for line in events.iter_lines() if line.startswith("data:")][-1]
    assert ended["status"] == "succeeded"
    # The run's span ends once the worker's task returns, just after the job's end was announced.
    spans = wait_for_spans(exporter, lambda spans: any(s.name == "job.run" for s in spans))
    (submit,) = [s for s in spans if s.name == "POST /image/jobs"]
    (run,) = [s for s in spans if s.name == "job.run"]
    assert run.attributes["pixyproxy.job_id"] == job_id
    assert run.context.trace_id == submit.context.trace_id and run.parent.span_id == submit.context.span_id
    under = in_trace(spans, run)
    assert {"generator.generate", "storage.put"} <= set(under), sorted(under)
    made = [s for s in spans if s.name == "generator.generate" and s.context.trace_id == run.context.trace_id]
    assert len(made) == 2


def wait_for_spans(exporter, ready, seconds: float = 10.0) -> tuple[ReadableSpan, ...]:
    deadline = time.monotonic() + seconds
    while not ready(spans := exporter.get_finished_spans()):
        assert time.monotonic() < deadline, sorted({s.name for s in spans})
        time.sleep(0.01)
    return spans


def test_with_no_endpoint_nothing_is_wrapped(tmp_path):
    assert otlp_tracer(None) is None and otlp_tracer("") is None
    container = embedded_container(tmp_path)
    assert container.tracer() is None
    assert container.traced_repository() is container.repository()
    assert container.traced_blobs() is container.metered_blobs()
    assert container.generate_image().generator is container.metered_generator()
    app = create_app(container)
    assert TracingMiddleware not in [m.cls for m in app.user_middleware]


def test_an_endpoint_makes_a_tracer_without_reaching_it():
    assert otlp_tracer("http://127.0.0.1:9/") is not None


def test_calls_outside_any_trace_make_no_spans(client, exporter):
    """The job worker polls the job store every 50 ms here: none of that is a trace of its own."""
    client.post("/image/jobs", json={"prompt": "one job", "n": 1})
    worker = client.app.state.container.job_worker()
    before = len(wait_for_spans(exporter, lambda spans: any(s.name == "job.run" for s in spans)))
    for _ in range(3):  # a claim pass outside any request, like the worker's own loop
        client.portal.call(worker.store.claim, "test-worker", *_lease(), 1, 1)
    assert len(exporter.get_finished_spans()) == before


def _lease():
    from datetime import UTC, datetime, timedelta

    now = datetime.now(UTC)
    return now, now + timedelta(seconds=30)
