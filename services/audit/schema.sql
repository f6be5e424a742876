-- Every event of every event topic, once, as read from Kafka.
CREATE TABLE IF NOT EXISTS audit_events (
    position          bigserial PRIMARY KEY,
    event_id          uuid NOT NULL UNIQUE,
    topic             text NOT NULL,
    event_type        text NOT NULL,
    org_id            text NOT NULL,
    aggregate_type    text NOT NULL,
    aggregate_id      text NOT NULL,
    aggregate_version integer NOT NULL,
    occurred_at       timestamptz NOT NULL,
    envelope          jsonb NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_by_org ON audit_events (org_id, occurred_at);
CREATE INDEX IF NOT EXISTS audit_by_aggregate ON audit_events (aggregate_id, occurred_at);
