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
-- One attempt counted against every subject, their rows taken in the order given (the
-- same for every attempt, so two never wait on each other in a cycle), or against none if
-- one is then over its limit: true if counted. The counts come back under the rows'
-- locks, so N parallel attempts see N different counts. One round trip where a
-- transaction around the upsert took three (services/auth/adapters/password_attempts.py).
CREATE OR REPLACE FUNCTION password_attempts_reserve(
    p_subjects text[], p_logins text[], p_windows integer[], p_limits integer[],
    p_at timestamptz
) RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    over_limit boolean;
BEGIN
    BEGIN
        WITH counted AS (
            INSERT INTO password_attempts AS p
                (subject, failures, window_started, login_key, window_s)
            SELECT subject, 1, p_at, login_key, window_s
            FROM unnest(p_subjects, p_logins, p_windows) WITH ORDINALITY
                AS u(subject, login_key, window_s, n)
            ORDER BY n
            ON CONFLICT (subject) DO UPDATE SET
                failures = CASE WHEN p.window_started + make_interval(secs => p.window_s)
                    <= EXCLUDED.window_started THEN 1 ELSE p.failures + 1 END,
                window_started = CASE WHEN p.window_started + make_interval(secs => p.window_s)
                    <= EXCLUDED.window_started THEN EXCLUDED.window_started
                    ELSE p.window_started END,
                window_s = EXCLUDED.window_s
            RETURNING subject, failures
        )
        SELECT coalesce(bool_or(c.failures > l.attempts), false) INTO over_limit
        FROM counted c JOIN unnest(p_subjects, p_limits) AS l(subject, attempts) USING (subject);
        IF over_limit THEN
            RAISE SQLSTATE 'PM001';  -- undoes every counter of this attempt
        END IF;
    EXCEPTION WHEN SQLSTATE 'PM001' THEN
        RETURN false;
    END;
    RETURN true;
END
$$;

-- The MFA challenge in two round trips instead of about fifteen (services/auth/adapters/
-- challenges.py; each statement here is one the flow used to send on its own, in the same
-- order). In a plpgsql function every statement takes a fresh snapshot, as separate
-- statements of the transaction did: what is read after a lock was waited for is what
-- the lock holder committed.
--
-- challenge_open: the live challenge token, then its account (with p_lock: both locked,
-- the account created if missing, as accounts.lock does), the projected contact of the
-- token's org and whether its stream waits beyond a gap, the latest enabled enrollment,
-- its unused backup codes, and a fingerprint of all but the last (NULL without an
-- account row). No row: no live challenge token. The live projection schema is named
-- here; the adapter refuses a flow that reads another one.
CREATE OR REPLACE FUNCTION challenge_open(p_token_hash text, p_now timestamptz, p_lock boolean)
RETURNS TABLE (
    contact_id text, org_id text, token_enrollment_id uuid, token_mfa boolean,
    token_expires_at timestamptz,
    account_version integer, password_hash text, mfa_failures integer, mfa_lockouts integer,
    mfa_locked_until timestamptz, mfa_failures_since_success integer, mfa_disabled boolean,
    c_contact_id text, c_org_id text, c_version integer, c_kind text, c_display_name text,
    c_email text, c_portal_access boolean, c_invitation_hash text,
    c_invitation_expires_at timestamptz, c_mfa_epoch integer, c_reset_event_id uuid,
    c_deleted boolean, c_waiting boolean,
    e_enrollment_id uuid, e_contact_id text, e_org_id text, e_status text,
    e_secret_blob bytea, e_mfa_epoch integer, e_enrolled_event_id uuid,
    e_enabled_at timestamptz, backup_codes_left integer, fingerprint text
) AS $$
BEGIN
    IF p_lock THEN
        SELECT t.contact_id, t.org_id, t.enrollment_id, t.mfa, t.expires_at
            INTO contact_id, org_id, token_enrollment_id, token_mfa, token_expires_at
            FROM tokens t WHERE t.token_hash = p_token_hash AND t.purpose = 'challenge'
            AND t.used_at IS NULL AND t.expires_at > p_now FOR UPDATE;
    ELSE
        SELECT t.contact_id, t.org_id, t.enrollment_id, t.mfa, t.expires_at
            INTO contact_id, org_id, token_enrollment_id, token_mfa, token_expires_at
            FROM tokens t WHERE t.token_hash = p_token_hash AND t.purpose = 'challenge'
            AND t.used_at IS NULL AND t.expires_at > p_now;
    END IF;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    IF p_lock THEN
        SELECT a.version, a.password_hash, a.mfa_failures, a.mfa_lockouts, a.mfa_locked_until,
               a.mfa_failures_since_success, a.mfa_disabled
            INTO account_version, password_hash, mfa_failures, mfa_lockouts, mfa_locked_until,
                 mfa_failures_since_success, mfa_disabled
            FROM accounts a WHERE a.contact_id = challenge_open.contact_id FOR UPDATE;
        IF NOT FOUND THEN
            INSERT INTO accounts AS a (contact_id, org_id)
                VALUES (challenge_open.contact_id, challenge_open.org_id) ON CONFLICT DO NOTHING;
            SELECT a.version, a.password_hash, a.mfa_failures, a.mfa_lockouts,
                   a.mfa_locked_until, a.mfa_failures_since_success, a.mfa_disabled
                INTO account_version, password_hash, mfa_failures, mfa_lockouts,
                     mfa_locked_until, mfa_failures_since_success, mfa_disabled
                FROM accounts a WHERE a.contact_id = challenge_open.contact_id FOR UPDATE;
        END IF;
    ELSE
        SELECT a.version, a.password_hash, a.mfa_failures, a.mfa_lockouts, a.mfa_locked_until,
               a.mfa_failures_since_success, a.mfa_disabled
            INTO account_version, password_hash, mfa_failures, mfa_lockouts, mfa_locked_until,
                 mfa_failures_since_success, mfa_disabled
            FROM accounts a WHERE a.contact_id = challenge_open.contact_id;
    END IF;
    SELECT c.contact_id, c.org_id, c.version, c.kind, c.display_name, c.email,
           c.portal_access, c.invitation_hash, c.invitation_expires_at, c.mfa_epoch,
           c.reset_event_id, c.deleted,
           EXISTS (SELECT 1 FROM login_projection.pending_events h
                   WHERE h.aggregate_id = c.contact_id AND h.aggregate_type = 'contact')
        INTO c_contact_id, c_org_id, c_version, c_kind, c_display_name, c_email,
             c_portal_access, c_invitation_hash, c_invitation_expires_at, c_mfa_epoch,
             c_reset_event_id, c_deleted, c_waiting
        FROM login_projection.contacts c
        WHERE c.contact_id = challenge_open.contact_id AND c.org_id = challenge_open.org_id;
    SELECT e.enrollment_id, e.contact_id, e.org_id, e.status, e.secret_blob, e.mfa_epoch,
           e.enrolled_event_id, e.enabled_at
        INTO e_enrollment_id, e_contact_id, e_org_id, e_status, e_secret_blob, e_mfa_epoch,
             e_enrolled_event_id, e_enabled_at
        FROM enrollments e WHERE e.contact_id = challenge_open.contact_id
        AND e.status = 'enabled' ORDER BY e.enabled_at DESC LIMIT 1;
    IF e_enrollment_id IS NOT NULL THEN
        SELECT count(*) INTO backup_codes_left FROM backup_codes b
            WHERE b.enrollment_id = e_enrollment_id AND b.used_at IS NULL;
    END IF;
    IF account_version IS NOT NULL THEN
        -- Everything a decision reads, so a write can tell it is still what was read.
        fingerprint := md5(row(contact_id, org_id, token_enrollment_id, token_mfa,
            token_expires_at, account_version, password_hash, mfa_failures, mfa_lockouts,
            mfa_locked_until, mfa_failures_since_success, mfa_disabled, c_contact_id,
            c_org_id, c_version, c_kind, c_display_name, c_email, c_portal_access,
            c_invitation_hash, c_invitation_expires_at, c_mfa_epoch, c_reset_event_id,
            c_deleted, c_waiting, e_enrollment_id, e_contact_id, e_org_id, e_status,
            e_secret_blob, e_mfa_epoch, e_enrolled_event_id, e_enabled_at)::text);
    END IF;
    RETURN NEXT;
END
$$ LANGUAGE plpgsql;

-- challenge_passed: a proven second factor. With p_read_as (the fingerprint of an
-- unlocked challenge_open, outside a transaction: the whole call is then one
-- transaction), challenge_open is first run again with its locks, and -2 is returned,
-- nothing written, unless it reads the same; without it, it follows a locked
-- challenge_open in the caller's transaction. Then it claims the TOTP time step (none
-- for a backup code, spent before): NULL, and nothing written, if it was not later than
-- the last one accepted (a replay). Then uses the challenge token (-1, and nothing more
-- written, if it was used meanwhile), issues the session token, appends the account's
-- events with their outbox rows (waking the relay on `p_wake_channel` unless NULL) and
-- writes the account's snapshot. Returns the unused backup codes left.
CREATE OR REPLACE FUNCTION challenge_passed(
    p_token_hash text, p_now timestamptz, p_enrollment_id uuid, p_time_step bigint,
    p_session_hash text, p_session_expires_at timestamptz,
    p_contact_id text, p_org_id text, p_version integer, p_failures integer,
    p_lockouts integer, p_locked_until timestamptz, p_failures_since_success integer,
    p_disabled boolean,
    p_event_ids uuid[], p_aggregate_types text[], p_aggregate_ids text[],
    p_aggregate_versions integer[], p_event_types text[], p_schema_versions integer[],
    p_event_org_ids text[], p_occurred_at timestamptz[], p_envelopes text[],
    p_topics text[], p_keys bytea[], p_values bytea[], p_headers text[],
    p_wake_channel text, p_read_as text
) RETURNS integer AS $$
DECLARE
    left_codes integer;
    now_reads text;
BEGIN
    IF p_read_as IS NOT NULL THEN
        SELECT o.fingerprint INTO now_reads FROM challenge_open(p_token_hash, p_now, true) o;
        IF now_reads IS DISTINCT FROM p_read_as THEN
            RETURN -2;
        END IF;
    END IF;
    IF p_time_step IS NOT NULL THEN
        UPDATE enrollments SET last_time_step = p_time_step
            WHERE enrollment_id = p_enrollment_id
            AND (last_time_step IS NULL OR last_time_step < p_time_step);
        IF NOT FOUND THEN
            RETURN NULL;
        END IF;
    END IF;
    UPDATE tokens SET used_at = p_now WHERE token_hash = p_token_hash AND used_at IS NULL;
    IF NOT FOUND THEN
        RETURN -1;
    END IF;
    INSERT INTO tokens (token_hash, purpose, contact_id, org_id, mfa, expires_at)
        VALUES (p_session_hash, 'session', p_contact_id, p_org_id, true, p_session_expires_at);
    -- In the order given, as the event store's own inserts keep it. The JSON comes as text
    -- (encoded as the pool's jsonb codec encodes it): a list would be read as an array.
    INSERT INTO events (event_id, aggregate_type, aggregate_id, aggregate_version, event_type,
                        schema_version, org_id, occurred_at, envelope)
        SELECT i, ty, a, v, et, sv, o, at, en::jsonb
        FROM unnest(p_event_ids, p_aggregate_types, p_aggregate_ids, p_aggregate_versions,
                    p_event_types, p_schema_versions, p_event_org_ids, p_occurred_at,
                    p_envelopes) WITH ORDINALITY AS e(i, ty, a, v, et, sv, o, at, en, n)
        ORDER BY n;
    INSERT INTO outbox (topic, key, value, headers)
        SELECT t, k, v, h::jsonb
        FROM unnest(p_topics, p_keys, p_values, p_headers) WITH ORDINALITY AS o(t, k, v, h, n)
        ORDER BY n;
    IF p_wake_channel IS NOT NULL THEN
        PERFORM pg_notify(p_wake_channel, '');
    END IF;
    UPDATE accounts SET version = p_version, mfa_failures = p_failures,
        mfa_lockouts = p_lockouts, mfa_locked_until = p_locked_until,
        mfa_failures_since_success = p_failures_since_success, mfa_disabled = p_disabled
        WHERE contact_id = p_contact_id;
    SELECT count(*) INTO left_codes FROM backup_codes
        WHERE enrollment_id = p_enrollment_id AND used_at IS NULL;
    RETURN left_codes;
END
$$ LANGUAGE plpgsql;

-- challenge_passed_batch: many passed challenges of one auth process, each as
-- challenge_passed(p_read_as => …) would pass it, in one statement and one transaction:
-- one commit (one WAL flush) for them all (services/auth/adapters/challenge_batches.py,
-- docs/decisions.md "Passed challenges are committed in groups"). Item i is the i-th of
-- every per-item array; its events are p_event_*[p_events_from[i]:p_events_to[i]], its
-- outbox rows p_topics… over the same range. Items go in the order of their contact ids
-- (then as given), each in a block of its own: what one item's error undoes is its own
-- writes only, and two items of one contact are decided one after the other, the second
-- reading what the first wrote. Its rows are locked NOWAIT: an item whose token, account
-- or enrollment another transaction holds is not waited for (no batch waits behind a
-- slow writer, none deadlocks) but handed back to the caller's locked path (-2), as is an
-- item whose fresh read differs from p_read_as[i], or that failed in any other way
-- (its SQLSTATE in `failure`). Per item: `outcome` as challenge_passed returns it (NULL
-- a replay, -1 the token used meanwhile, -2 not decided here, else the backup codes
-- left), or -3: another writer took one of the account's versions (ConcurrencyConflict).
-- No wake: a login's outcome waits for the relay's poll (services/auth/flows/challenge.py).
CREATE OR REPLACE FUNCTION challenge_passed_batch(
    p_token_hashes text[], p_nows timestamptz[], p_enrollment_ids uuid[],
    p_time_steps bigint[], p_session_hashes text[], p_session_expires_at timestamptz[],
    p_contact_ids text[], p_org_ids text[], p_versions integer[], p_failures integer[],
    p_lockouts integer[], p_locked_until timestamptz[], p_failures_since_success integer[],
    p_disabled boolean[], p_read_as text[], p_events_from integer[], p_events_to integer[],
    p_event_ids uuid[], p_aggregate_types text[], p_aggregate_ids text[],
    p_aggregate_versions integer[], p_event_types text[], p_schema_versions integer[],
    p_event_org_ids text[], p_occurred_at timestamptz[], p_envelopes text[],
    p_topics text[], p_keys bytea[], p_values bytea[], p_headers text[]
) RETURNS TABLE (item integer, outcome integer, failure text) AS $$
DECLARE
    i integer;
    f integer;
    t integer;
    now_reads text;
    failed_table text;
BEGIN
    FOR i IN SELECT c.n FROM unnest(p_contact_ids) WITH ORDINALITY AS c(id, n)
             ORDER BY c.id, c.n LOOP
        item := i;
        failure := NULL;
        f := p_events_from[i];
        t := p_events_to[i];
        BEGIN
            -- The locks challenge_open(p_lock) takes, in its order, plus the enrollment's
            -- (its time step is claimed below); then the read it would make under them.
            PERFORM 1 FROM tokens k WHERE k.token_hash = p_token_hashes[i]
                AND k.purpose = 'challenge' AND k.used_at IS NULL
                AND k.expires_at > p_nows[i] FOR UPDATE NOWAIT;
            PERFORM 1 FROM accounts a WHERE a.contact_id = p_contact_ids[i] FOR UPDATE NOWAIT;
            PERFORM 1 FROM enrollments e WHERE e.enrollment_id = p_enrollment_ids[i]
                FOR NO KEY UPDATE NOWAIT;
            SELECT o.fingerprint INTO now_reads
                FROM challenge_open(p_token_hashes[i], p_nows[i], false) o;
            IF now_reads IS DISTINCT FROM p_read_as[i] THEN
                outcome := -2;
            ELSE
                UPDATE enrollments SET last_time_step = p_time_steps[i]
                    WHERE enrollment_id = p_enrollment_ids[i]
                    AND (last_time_step IS NULL OR last_time_step < p_time_steps[i]);
                IF NOT FOUND THEN
                    outcome := NULL;
                ELSE
                    UPDATE tokens SET used_at = p_nows[i]
                        WHERE token_hash = p_token_hashes[i] AND used_at IS NULL;
                    IF NOT FOUND THEN
                        outcome := -1;
                    ELSE
                        INSERT INTO tokens (token_hash, purpose, contact_id, org_id, mfa,
                                            expires_at)
                            VALUES (p_session_hashes[i], 'session', p_contact_ids[i],
                                    p_org_ids[i], true, p_session_expires_at[i]);
                        INSERT INTO events (event_id, aggregate_type, aggregate_id,
                                            aggregate_version, event_type, schema_version,
                                            org_id, occurred_at, envelope)
                            SELECT ei, ty, a, v, et, sv, o, at, en::jsonb
                            FROM unnest(p_event_ids[f:t], p_aggregate_types[f:t],
                                        p_aggregate_ids[f:t], p_aggregate_versions[f:t],
                                        p_event_types[f:t], p_schema_versions[f:t],
                                        p_event_org_ids[f:t], p_occurred_at[f:t],
                                        p_envelopes[f:t])
                                WITH ORDINALITY AS e(ei, ty, a, v, et, sv, o, at, en, n)
                            ORDER BY n;
                        INSERT INTO outbox (topic, key, value, headers)
                            SELECT tp, k, v, h::jsonb
                            FROM unnest(p_topics[f:t], p_keys[f:t], p_values[f:t],
                                        p_headers[f:t]) WITH ORDINALITY AS o(tp, k, v, h, n)
                            ORDER BY n;
                        UPDATE accounts SET version = p_versions[i],
                            mfa_failures = p_failures[i], mfa_lockouts = p_lockouts[i],
                            mfa_locked_until = p_locked_until[i],
                            mfa_failures_since_success = p_failures_since_success[i],
                            mfa_disabled = p_disabled[i]
                            WHERE contact_id = p_contact_ids[i];
                        SELECT count(*) INTO outcome FROM backup_codes
                            WHERE enrollment_id = p_enrollment_ids[i] AND used_at IS NULL;
                    END IF;
                END IF;
            END IF;
        EXCEPTION
            WHEN unique_violation THEN
                GET STACKED DIAGNOSTICS failed_table = TABLE_NAME;
                outcome := CASE WHEN failed_table = 'events' THEN -3 ELSE -2 END;
                failure := SQLSTATE;
            WHEN OTHERS THEN
                -- Not QUERY_CANCELED (plpgsql's OTHERS never catches it): a cancelled or
                -- lost batch fails whole, nothing of it written.
                outcome := -2;
                failure := SQLSTATE;
        END;
        RETURN NEXT;
    END LOOP;
END
$$ LANGUAGE plpgsql;
