"""Decorators that give each call through a port an OpenTelemetry span: the generator's (the provider
call), the blob store's, the metadata and job stores', and a job's run. Under the generator's span, each
provider attempt routing makes is a span of its own (`generate openai`), naming provider, deployment and
attempt; the generator's span names the model, provider and deployment that served, and the attempts.

Like metered.py they stand in for what they wrap, so neither the domain nor the adapters know they are
traced; the container wires them only when traces are on. They wrap every public coroutine method, and
pass everything else (attributes, plain methods) through, so a port that gains a method is traced too.
A call outside any trace (the job worker's polling, housekeeping) makes no span.
"""

import contextlib
import inspect
from collections.abc import Callable, Coroutine, Iterator
from typing import TYPE_CHECKING, Any
from uuid import UUID

from opentelemetry import context, trace
from opentelemetry.trace import Span, SpanContext, SpanKind, Tracer

from pixyproxy.domain.models import EditRequest, GeneratedImage, GenerationRequest

if TYPE_CHECKING:  # routing's module loads the providers' shared code: not needed with traces off
    from pixyproxy.adapters.routing import RoutingGenerator

_MAX_CARRIED = 10_000  # jobs submitted and not yet run whose request span is kept; the oldest forgotten
# A write is `storage.put` whether its bytes came ready or were prepared on the store's thread.
_SPAN_NAMES = {"put_prepared": "put"}


class Traced:
    """`inner` with a span `{component}.{method}` around each of its coroutine methods."""

    def __init__(self, inner: Any, tracer: Tracer, component: str, system: str | None = None) -> None:
        self._inner = inner
        self._tracer = tracer
        self._component = component
        self._attributes = {"pixyproxy.component": component, "pixyproxy.adapter": str(system or "")}

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._inner, name)
        if name.startswith("_") or not inspect.iscoroutinefunction(attribute):
            return attribute
        traced = self._traced(f"{self._component}.{_SPAN_NAMES.get(name, name)}", attribute)
        setattr(self, name, traced)  # built once per method; later lookups skip __getattr__
        return traced

    def _traced(
        self, span_name: str, method: Callable[..., Coroutine[Any, Any, Any]]
    ) -> Callable[..., Coroutine[Any, Any, Any]]:
        tracer, attributes = self._tracer, self._attributes

        async def traced(*args: Any, **kwargs: Any) -> Any:
            # Only within a request's or a job run's trace: a worker polling for jobs is not a trace.
            if not trace.get_current_span().get_span_context().is_valid:
                return await method(*args, **kwargs)
            with tracer.start_as_current_span(span_name, kind=SpanKind.CLIENT, attributes=attributes) as span:
                result = await method(*args, **kwargs)
                self._describe(span, result)
                return result

        return traced

    def _describe(self, span: Span, result: Any) -> None:
        """What the span learns from the call's result (a generated image: where it was made)."""
        if isinstance(result, GeneratedImage) and result.provider is not None:
            span.set_attributes(
                {
                    "pixyproxy.model": result.model,
                    "pixyproxy.provider": result.provider,
                    "pixyproxy.deployment": result.deployment or "",
                    "pixyproxy.attempts": result.attempts or 1,
                }
            )


def traced_attempts(routing: "RoutingGenerator", tracer: Tracer | None) -> "RoutingGenerator":
    """`routing` with a span around each provider attempt it makes (within a trace), when traces are on."""
    if tracer is None:
        return routing

    @contextlib.contextmanager
    def attempt(asked: GenerationRequest, provider: str, deployment: str, number: int) -> Iterator[None]:
        if not trace.get_current_span().get_span_context().is_valid:
            yield
            return
        operation = "edit" if isinstance(asked, EditRequest) else "generate"
        attributes: dict[str, str | int] = {
            "pixyproxy.component": "provider",
            "pixyproxy.provider": provider,
            "pixyproxy.deployment": deployment,
            "pixyproxy.attempt": number,
        }
        with tracer.start_as_current_span(
            f"{operation} {provider}", kind=SpanKind.CLIENT, attributes=attributes
        ):
            yield

    routing.attempt_scope = attempt
    return routing


def traced(inner: Any, tracer: Tracer | None, component: str) -> Any:
    """`inner` itself when traces are off: then nothing is added to any call."""
    if tracer is None:
        return inner
    return Traced(inner, tracer, component, getattr(inner, "name", None))


class JobTraces:
    """Which request span submitted each job, by job id, until a worker of this process runs it (where a
    job usually runs; another process's run starts a trace of its own, its job id an attribute)."""

    def __init__(self, limit: int = _MAX_CARRIED) -> None:
        self.limit = limit
        self._submitted: dict[UUID, SpanContext] = {}

    def submitted(self, job_id: UUID) -> None:
        submitter = trace.get_current_span().get_span_context()
        if submitter.is_valid:
            if len(self._submitted) >= self.limit:  # the oldest first: dicts keep insertion order
                self._submitted.pop(next(iter(self._submitted)))
            self._submitted[job_id] = submitter

    def taken(self, job_id: UUID) -> SpanContext | None:
        return self._submitted.pop(job_id, None)


class TracedJobStore(Traced):
    """The job store's calls traced, and each job added noted with the span of the request adding it."""

    def __init__(self, inner: Any, tracer: Tracer, jobs: JobTraces) -> None:
        super().__init__(inner, tracer, "db", getattr(inner, "name", None))
        self._jobs = jobs
        self._add = self._traced("db.add", inner.add)

    async def add(self, job: Any, *args: Any, **kwargs: Any) -> Any:
        result = await self._add(job, *args, **kwargs)
        self._jobs.submitted(job.id)
        return result


class TracedJobRuns(Traced):
    """The job service as its worker sees it: each job's run a span, in its submitting request's trace."""

    def __init__(self, inner: Any, tracer: Tracer, jobs: JobTraces) -> None:
        super().__init__(inner, tracer, "job")
        self._jobs = jobs

    async def __call__(self, job: Any, worker: str) -> None:
        submitter = self._jobs.taken(job.id)
        # The submitting request's trace, else a root of its own: never the worker loop's context.
        parent = context.Context()
        if submitter is not None:
            parent = trace.set_span_in_context(trace.NonRecordingSpan(submitter), parent)
        attributes = {"pixyproxy.job_id": str(job.id), "pixyproxy.worker": worker}
        with self._tracer.start_as_current_span(
            "job.run", context=parent, kind=SpanKind.CONSUMER, attributes=attributes
        ):
            await self._inner(job, worker)


def traced_job_store(inner: Any, tracer: Tracer | None, jobs: JobTraces) -> Any:
    return inner if tracer is None else TracedJobStore(inner, tracer, jobs)


def traced_job_runs(inner: Any, tracer: Tracer | None, jobs: JobTraces) -> Any:
    return inner if tracer is None else TracedJobRuns(inner, tracer, jobs)
