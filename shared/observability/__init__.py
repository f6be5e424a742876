"""Operating the services: JSON log lines, Prometheus metrics, OpenTelemetry traces.

`logs` configures every process's logging (one JSON object per line in production,
readable text in `dev`); `context` carries the request id, correlation id and org that
each log line names; `http` wires one app (request ids, access log, HTTP metrics, server
spans, `/metrics`); `tracing` carries trace context across Kafka.
"""
