"""OpenTelemetry spans of each request, made at the ingress from its timing (the same one its
Server-Timing header shows): a span for the request, one per replica call under it, and one per
stage the replica reported under that (queue, batch, model, ...), with their real start times.

Off by default (`observability.tracing`). With an `otlp_endpoint`, spans go out over OTLP/HTTP
in batches (opentelemetry-exporter-otlp-proto-http must be installed); without one they are
made and dropped, which is what a cost measurement of tracing wants.
"""

from __future__ import annotations

from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
)

from deployments.core.config import Tracing
from serve_app.request_timing import GroupCall, RequestTiming


class RequestTracer:
    def __init__(self, settings: Tracing, exporter: SpanExporter | None = None) -> None:
        self.provider = TracerProvider(
            resource=Resource.create({"service.name": settings.service_name}))
        if exporter is not None:  # tests: spans collected in process, at once
            self.provider.add_span_processor(SimpleSpanProcessor(exporter))
        elif settings.otlp_endpoint:
            self.provider.add_span_processor(
                BatchSpanProcessor(_otlp_exporter(settings.otlp_endpoint)))
        self.tracer = self.provider.get_tracer("mmserve")

    @classmethod
    def from_config(cls, settings: Tracing) -> RequestTracer | None:
        return cls(settings) if settings.enabled else None

    def export(self, method: str, route: str, status: int, timing: RequestTiming,
               request_id: str | None) -> None:
        attributes: dict[str, Any] = {"http.request.method": method, "http.route": route,
                                      "http.response.status_code": status}
        if request_id:
            attributes["mmserve.request_id"] = request_id
        root = self.tracer.start_span(f"{method} {route}", start_time=_ns(timing.start),
                                      attributes=attributes)
        parent = trace.set_span_in_context(root)
        for call in timing.calls:
            self._call_span(call, parent)
        root.end(end_time=_ns(timing.start + timing.elapsed()))

    def _call_span(self, call: GroupCall, parent: Any) -> None:
        span = self.tracer.start_span(call.group, context=parent, start_time=_ns(call.start))
        inside = trace.set_span_in_context(span)
        for name, start, seconds in call.stages:
            stage = self.tracer.start_span(f"{call.group}.{name}", context=inside,
                                           start_time=_ns(start))
            stage.end(end_time=_ns(start + seconds))
        span.end(end_time=_ns(call.start + call.seconds))

    def shutdown(self) -> None:
        self.provider.shutdown()


def _ns(epoch_s: float) -> int:
    return int(epoch_s * 1e9)


def _otlp_exporter(endpoint: str) -> SpanExporter:
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError:
        raise RuntimeError("observability.tracing.otlp_endpoint needs the OTLP exporter: pip "
                           "install opentelemetry-exporter-otlp-proto-http") from None
    return OTLPSpanExporter(endpoint=endpoint)
