"""Trace context as it arrives: raw ASGI headers, Kafka record headers, FastStream's dict.

And what it never does: a malformed `traceparent` (anyone can write one on a topic or in
a request) is no context at all, never an error.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pytest
from opentelemetry import trace

from shared.observability.tracing import context_from

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = f"00-{TRACE}-00f067aa0ba902b7-01"


def trace_id_of(headers: Mapping[str, Any] | Iterable[tuple[str | bytes, bytes]]) -> str | None:
    span = trace.get_current_span(context_from(headers)).get_span_context()
    return trace.format_trace_id(span.trace_id) if span.is_valid else None


@pytest.mark.parametrize(
    "headers",
    [
        [(b"host", b"auth"), (b"traceparent", PARENT.encode())],  # ASGI scope
        [("event_type", b"MfaReset"), ("traceparent", PARENT.encode())],  # Kafka record
        {"correlation_id": "x", "traceparent": PARENT},  # FastStream message
        [(b"TraceParent", PARENT.encode())],  # header names are case-insensitive
    ],
)
def test_a_traceparent_is_read_wherever_it_arrives(headers: Any) -> None:
    assert trace_id_of(headers) == TRACE


@pytest.mark.parametrize(
    "value", [b"", b"garbage", b"00-" + b"0" * 32 + b"-00f067aa0ba902b7-01", b"\xff\xfe" * 40]
)
def test_a_malformed_traceparent_is_no_context(value: bytes) -> None:
    assert trace_id_of([("traceparent", value)]) is None
