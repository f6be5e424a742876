-- Every event of every event topic, once, as read from Kafka, with its evidence: the
-- signed record (key, value, kid, signature) and a place in its org's hash chain.
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

-- Tamper evidence (a log from before it has NULLs here, which `verify` reports as forged).
ALTER TABLE audit_events ADD COLUMN IF NOT EXISTS record_key bytea;
ALTER TABLE audit_events ADD COLUMN IF NOT EXISTS record_value bytea;
ALTER TABLE audit_events ADD COLUMN IF NOT EXISTS signature_kid text;
ALTER TABLE audit_events ADD COLUMN IF NOT EXISTS signature bytea;
ALTER TABLE audit_events ADD COLUMN IF NOT EXISTS chain_seq bigint;
ALTER TABLE audit_events ADD COLUMN IF NOT EXISTS prev_hash bytea;
ALTER TABLE audit_events ADD COLUMN IF NOT EXISTS hash bytea;
CREATE UNIQUE INDEX IF NOT EXISTS audit_chain ON audit_events (org_id, chain_seq);

-- Each org's chain head: its row lock serialises appends per org, and a deleted tail shows.
CREATE TABLE IF NOT EXISTS audit_chain_heads (
    org_id text PRIMARY KEY,
    length bigint NOT NULL,
    head   bytea NOT NULL
);
