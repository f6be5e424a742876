-- auth's own state. Secrets are stored only sealed (TOTP secrets) or hashed (passwords,
-- tokens, backup codes). Every guard lives here, not in memory, so replicas share it.

CREATE TABLE IF NOT EXISTS accounts (
    contact_id    text PRIMARY KEY,
    org_id        text NOT NULL,
    -- Version of the portal_account event stream; bumped under this row's lock.
    version       integer NOT NULL DEFAULT 0,
    password_hash text,
    password_set_at timestamptz,
    -- Second-factor lockout: consecutive failures, and how many lockouts so far (back-off).
    mfa_failures  integer NOT NULL DEFAULT 0,
    mfa_lockouts  integer NOT NULL DEFAULT 0,
    mfa_locked_until timestamptz
);

CREATE TABLE IF NOT EXISTS used_invitations (
    invitation_hash text PRIMARY KEY,
    contact_id      text NOT NULL,
    used_at         timestamptz NOT NULL DEFAULT now()
);

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

CREATE TABLE IF NOT EXISTS backup_codes (
    enrollment_id uuid NOT NULL REFERENCES enrollments ON DELETE CASCADE,
    code_hash     text NOT NULL,
    used_at       timestamptz,
    PRIMARY KEY (enrollment_id, code_hash)
);

-- The replay guard: a TOTP time step is accepted at most once per enrollment.
CREATE TABLE IF NOT EXISTS used_time_steps (
    enrollment_id uuid NOT NULL REFERENCES enrollments ON DELETE CASCADE,
    time_step     bigint NOT NULL,
    PRIMARY KEY (enrollment_id, time_step)
);

CREATE TABLE IF NOT EXISTS tokens (
    token_hash    text PRIMARY KEY,
    purpose       text NOT NULL CHECK (purpose IN ('challenge', 'enrollment', 'session')),
    contact_id    text NOT NULL,
    org_id        text NOT NULL,
    enrollment_id uuid,
    mfa           boolean NOT NULL DEFAULT false,
    expires_at    timestamptz NOT NULL,
    used_at       timestamptz
);
CREATE INDEX IF NOT EXISTS tokens_by_contact ON tokens (contact_id);
-- The org's live password-only sessions: what turning the MFA policy on ends.
CREATE INDEX IF NOT EXISTS live_password_sessions ON tokens (org_id)
    WHERE purpose = 'session' AND NOT mfa AND used_at IS NULL;

-- Failed-password counters per contact and per client address, in fixed windows.
CREATE TABLE IF NOT EXISTS password_attempts (
    subject        text PRIMARY KEY,
    failures       integer NOT NULL,
    window_started timestamptz NOT NULL
);
