-- Append-only event store, transactional outbox and command idempotency, per service.
CREATE TABLE IF NOT EXISTS events (
    global_position   bigserial PRIMARY KEY,
    event_id          uuid NOT NULL UNIQUE,
    aggregate_type    text NOT NULL,
    aggregate_id      text NOT NULL,
    aggregate_version integer NOT NULL CHECK (aggregate_version >= 1),
    event_type        text NOT NULL,
    schema_version    integer NOT NULL,
    org_id            text NOT NULL,
    occurred_at       timestamptz NOT NULL,
    envelope          jsonb NOT NULL,
    -- Two writers on one aggregate version conflict here instead of forking the stream.
    UNIQUE (aggregate_type, aggregate_id, aggregate_version)
);

CREATE TABLE IF NOT EXISTS outbox (
    position   bigserial PRIMARY KEY,
    topic      text NOT NULL,
    key        bytea NOT NULL,
    value      bytea NOT NULL,
    headers    jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    sent_at    timestamptz
);
CREATE INDEX IF NOT EXISTS outbox_unsent ON outbox (position) WHERE sent_at IS NULL;

CREATE TABLE IF NOT EXISTS processed_commands (
    command_id   uuid PRIMARY KEY,
    command_type text NOT NULL,
    reply        jsonb NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now()
);
-- What the command said (its `content_digest`): an idempotency key reused for a different
-- command is refused instead of being answered with the first command's reply.
ALTER TABLE processed_commands ADD COLUMN IF NOT EXISTS content_digest text;

-- Admin assertions spent on commands (DESIGN.md §11): one jti authorizes one command. A row
-- may be pruned once expires_at (plus the verifier's leeway) has passed: by then its
-- assertion is refused anyway.
CREATE TABLE IF NOT EXISTS spent_assertions (
    jti        text PRIMARY KEY,
    command_id uuid NOT NULL,
    admin      text NOT NULL,
    expires_at timestamptz NOT NULL,
    spent_at   timestamptz NOT NULL DEFAULT now()
);
-- Each spend prunes the long-expired rows (shared/command_handling.py).
CREATE INDEX IF NOT EXISTS spent_assertions_expiry ON spent_assertions (expires_at);
