"""Traces: one trace from an admin command to every projection that applies its events.

The context travels as W3C `traceparent` (and `tracestate`): the console puts it in the
command's Kafka headers, the command handler's span is its child, the events the handler
writes keep it in their outbox row's headers, and the relay publishes those headers with
them. Record signatures cover key and value only (shared.signing), so a header added or
dropped on the way changes nothing a consumer verifies — and a consumer trusts a
traceparent only as a trace id, never for a decision.

Spans are exported only where asked: OTLP when `OTEL_EXPORTER_OTLP_ENDPOINT` (or its
traces-only variant) is set, JSON lines into `PORTAL_MFA_TRACE_DIR` for tests and local
debugging. Otherwise the OpenTelemetry API stays the no-op it is by default, and a
context that arrives from a caller is still passed on (and named in log lines).

No span records an exception's message, only its type (as log lines do).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.trace import SpanKind, Status, StatusCode

if TYPE_CHECKING:
    # The SDK is imported only by a process that exports spans (configure_tracing): it
    # costs ~0.3 s of start-up, which the CLI and a process without tracing never need.
    from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
    from opentelemetry.sdk.trace.export import ConsoleSpanExporter

TRACER = trace.get_tracer("portal_mfa")
_OTLP_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
_exporting = False


def configure_tracing(service: str, trace_dir: str = "") -> bool:
    """Export this process's spans where configured; True if anything exports them."""
    global _exporting
    if _exporting:
        return True
    otlp = any(os.environ.get(name) for name in _OTLP_VARIABLES)
    if not otlp and not trace_dir:
        # Nothing to export to: the SDK is not even imported (the admin CLI's case).
        return False
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    processors: list[SpanProcessor] = []
    if otlp:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        processors.append(BatchSpanProcessor(OTLPSpanExporter()))
    if trace_dir:
        processors.append(SimpleSpanProcessor(_span_file(Path(trace_dir), service)))
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    provider = TracerProvider(resource=Resource.create({"service.name": f"portal-mfa-{service}"}))
    for processor in processors:
        provider.add_span_processor(processor)
    trace.set_tracer_provider(provider)
    _exporting = True
    return True


def exporting() -> bool:
    return _exporting


def _span_file(directory: Path, service: str) -> ConsoleSpanExporter:
    from opentelemetry.sdk.trace.export import ConsoleSpanExporter

    directory.mkdir(parents=True, exist_ok=True)
    # One file per process: nothing interleaves; one span per line.
    out = (directory / f"{service}-{os.getpid()}.jsonl").open("a", encoding="utf-8")

    def one_line(span: ReadableSpan) -> str:
        return str(span.to_json(indent=None)) + "\n"

    return ConsoleSpanExporter(out=out, formatter=one_line)


def trace_headers() -> list[tuple[str, bytes]]:
    """The current trace context as Kafka headers (none outside a trace)."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return [(name, value.encode()) for name, value in carrier.items()]


def context_from(
    headers: Mapping[str, Any] | Iterable[tuple[str | bytes, bytes]],
) -> Context:
    """The trace context a message or request carries (an empty one if none)."""
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    carrier: dict[str, str] = {}
    for name, value in pairs:
        key = (name.decode("latin-1") if isinstance(name, bytes) else str(name)).lower()
        if key in ("traceparent", "tracestate"):
            carrier[key] = value.decode("latin-1") if isinstance(value, bytes) else str(value)
    return propagate.extract(carrier)


@contextlib.contextmanager
def span(
    name: str,
    *,
    kind: SpanKind = SpanKind.INTERNAL,
    parent: Context | None = None,
    attributes: Mapping[str, str | int] | None = None,
) -> Iterator[trace.Span]:
    """A current span that marks a failure by its type only."""
    with TRACER.start_as_current_span(
        name,
        context=parent,
        kind=kind,
        attributes=dict(attributes or {}),
        record_exception=False,
        set_status_on_exception=False,
    ) as current:
        try:
            yield current
        except BaseException as exc:
            current.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            raise


def applied(
    projection: str,
    records: Iterable[tuple[Iterable[tuple[str, bytes]], Mapping[str, str | int]]],
    started_ns: int,
) -> None:
    """One finished span per applied record that carried a trace, child of its sender's.

    A batch applies many events in one transaction; each event's span covers that
    transaction, so every trace shows when its event took effect.
    """
    if not _exporting:
        return
    ended_ns = time.time_ns()
    for headers, attributes in records:
        parent = context_from(headers)
        if not trace.get_current_span(parent).get_span_context().is_valid:
            continue
        done = TRACER.start_span(
            f"{projection} apply {attributes.get('portal_mfa.event_type', 'event')}",
            context=parent,
            kind=SpanKind.CONSUMER,
            attributes=dict(attributes),
            start_time=started_ns,
            record_exception=False,
        )
        done.end(end_time=ended_ns)
