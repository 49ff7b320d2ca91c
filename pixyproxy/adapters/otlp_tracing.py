"""The OpenTelemetry SDK, exporting spans over OTLP/HTTP in batches (a background thread: a request never
waits for the collector). The exporter reads the standard OTEL_EXPORTER_OTLP_* variables itself."""

from opentelemetry.trace import Tracer

SERVICE_NAME = "pixyproxy"


def otlp_tracer(endpoint: str | None) -> Tracer | None:
    """A tracer sending to the configured collector; None when no endpoint is set (nothing is traced)."""
    if not endpoint:
        return None
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from pixyproxy import __version__

    # OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES, when set, win over these.
    resource = Resource.create({"service.name": SERVICE_NAME, "service.version": __version__})
    provider = TracerProvider(resource=resource)  # flushes its spans when the process exits
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return provider.get_tracer("pixyproxy", __version__)
