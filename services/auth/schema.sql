-- auth's own state (not rebuilt from other services' events).
CREATE TABLE IF NOT EXISTS enrollments (
    enrollment_id     uuid PRIMARY KEY,
    contact_id        text NOT NULL,
    org_id            text NOT NULL,
    status            text NOT NULL CHECK (status IN ('pending', 'verified', 'enabled', 'invalidated')),
    secret_blob       bytea,
    mfa_epoch         integer NOT NULL,
    enrolled_event_id uuid,
    created_at        timestamptz NOT NULL DEFAULT now(),
    enabled_at        timestamptz
);
CREATE INDEX IF NOT EXISTS enrollments_enabled ON enrollments (contact_id) WHERE status = 'enabled';
