"""Login metrics, counted in one place: from the events auth records on an account.

Every flow records what happened as events (LoginSucceeded, LoginFailed,
ContactLockedOut, BackupCodeUsed, OtpReplayRejected) and appends them through
`adapters.accounts.save`; counting them there means no flow can forget to, and the
metrics agree with the audit log by construction. Counted as they are appended, inside
the flow's transaction: a flow that fails after its `save` (rare: `save` comes last)
counts what it then did not commit.

Labels come from closed sets, so a series per contact or per free-text reason cannot
appear.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import Counter

from shared.contracts import (
    BackupCodeUsed,
    ContactLockedOut,
    EventEnvelope,
    LoginFailed,
    LoginSucceeded,
    OtpReplayRejected,
)

LOGINS = Counter(
    "portal_mfa_logins",
    "Login attempts that ended, by outcome and by the factor that decided it",
    ["outcome", "factor"],
)
SECOND_FACTOR_FAILURES = Counter(
    "portal_mfa_second_factor_failures",
    "Wrong or reused second factors (toward the lockout), by reason",
    ["reason"],
)
LOCKOUTS = Counter("portal_mfa_lockouts", "Contacts whose MFA step was locked")
BACKUP_CODES_USED = Counter("portal_mfa_backup_codes_used", "Backup codes spent on a login")
OTP_REPLAYS = Counter(
    "portal_mfa_otp_replays_rejected", "Codes refused because their time step was used"
)

# LoginFailed reasons, and the factor each one is about.
_FAILED_FACTOR = {
    "wrong_password": "password",
    "wrong_otp": "totp",
    "reused_otp": "totp",
    "wrong_backup_code": "backup_code",
}


def count(events: Iterable[EventEnvelope]) -> None:
    for event in events:
        if isinstance(event, LoginSucceeded):
            # The strongest factor the login used names it: password alone, totp, backup code.
            LOGINS.labels("succeeded", event.payload.factors[-1]).inc()
        elif isinstance(event, LoginFailed):
            factor = _FAILED_FACTOR.get(event.payload.reason, "other")
            LOGINS.labels("failed", factor).inc()
            if factor != "password":
                reason = event.payload.reason if factor != "other" else "other"
                SECOND_FACTOR_FAILURES.labels(reason).inc()
        elif isinstance(event, ContactLockedOut):
            LOCKOUTS.inc()
        elif isinstance(event, BackupCodeUsed):
            BACKUP_CODES_USED.inc()
        elif isinstance(event, OtpReplayRejected):
            OTP_REPLAYS.inc()
