-- auth's own state. Secrets are stored only sealed (TOTP secrets) or hashed (passwords,
-- tokens, backup codes). Every guard lives here, not in memory, so replicas share it.

CREATE TABLE IF NOT EXISTS accounts (
    contact_id    text PRIMARY KEY,
    org_id        text NOT NULL,
    -- Version of the portal_account event stream; bumped under this row's lock.
    version       integer NOT NULL DEFAULT 0,
    password_hash text,
    -- Second-factor lockout: consecutive failures, and how many lockouts so far (back-off).
    mfa_failures  integer NOT NULL DEFAULT 0,
    mfa_lockouts  integer NOT NULL DEFAULT 0,
    mfa_locked_until timestamptz
);
-- Failures since the last success (never reset by a lockout), and the authenticator
-- disabled once they reach the limit: only an admin's reset clears it.
-- Never written: when the password was set is the PortalPasswordSet event's time.
ALTER TABLE accounts DROP COLUMN IF EXISTS password_set_at;
ALTER TABLE accounts ADD COLUMN IF NOT EXISTS mfa_failures_since_success integer NOT NULL DEFAULT 0;
ALTER TABLE accounts ADD COLUMN IF NOT EXISTS mfa_disabled boolean NOT NULL DEFAULT false;
-- Stand-in accounts: a failed login for an unknown email goes through the statements a
-- known one does on one of these (chosen by the email), then rolls them back, so the two
-- cost the same. Never written to: nothing ever commits a change to them.
INSERT INTO accounts (contact_id, org_id)
    SELECT 'stand-in:' || n, 'stand-in' FROM generate_series(0, 63) AS n ON CONFLICT DO NOTHING;

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

-- The replay guard, monotonic: a code is accepted only for a time step later than the
-- last one accepted for its enrollment (so no earlier unused code works after a later one).
ALTER TABLE enrollments ADD COLUMN IF NOT EXISTS last_time_step bigint;

-- The earlier guard (each step at most once); no longer written, kept for old databases.
CREATE TABLE IF NOT EXISTS used_time_steps (
    enrollment_id uuid NOT NULL REFERENCES enrollments ON DELETE CASCADE,
    time_step     bigint NOT NULL,
    PRIMARY KEY (enrollment_id, time_step)
);
UPDATE enrollments e SET last_time_step = u.last
    FROM (SELECT enrollment_id, max(time_step) AS last FROM used_time_steps GROUP BY 1) u
    WHERE e.enrollment_id = u.enrollment_id AND e.last_time_step IS NULL;

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

-- Attempt counters (reserved before a password is verified, given back on success) per
-- contact and address, per address, per contact and for invitations, in fixed windows.
CREATE TABLE IF NOT EXISTS password_attempts (
    subject        text PRIMARY KEY,
    failures       integer NOT NULL,
    window_started timestamptz NOT NULL
);
-- "org:email" of the login a counter belongs to, so an admin's unlock can clear them.
ALTER TABLE password_attempts ADD COLUMN IF NOT EXISTS login_key text;
-- The window's length, so one statement can count an attempt against several limits.
ALTER TABLE password_attempts ADD COLUMN IF NOT EXISTS window_s integer NOT NULL DEFAULT 900;
CREATE INDEX IF NOT EXISTS password_attempts_by_login ON password_attempts (login_key)
    WHERE login_key IS NOT NULL;
