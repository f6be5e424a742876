"""Portal login with MFA, end to end: the lockout, revoked access and deleted contacts."""

from __future__ import annotations

import json
import time
from datetime import datetime

import pytest

from services.auth.domain.lockout import FIRST_LOCKOUT, MAX_CONSECUTIVE_FAILURES
from tests.e2e.portal_client import (
    Portal,
    assert_problem,
    authenticated,
    wait_until,
    whoami,
)

pytestmark = pytest.mark.e2e


# --- 6. Lockout -------------------------------------------------------------------------------


def test_five_consecutive_wrong_codes_lock_the_mfa_step(portal: Portal) -> None:
    (user,) = portal.prepare("customer", policy=True)
    enrolled = portal.enroll(user)
    app = enrolled.app

    # Four wrong codes, then a right one: the count starts over.
    challenge_token = portal.login_as(user, "mfa_required")["challenge_token"]
    for _ in range(4):
        assert_problem(portal.challenge(challenge_token, otp=app.wrong_code()), 401, "wrong-code")
    authenticated(portal.challenge(challenge_token, otp=app.code()))

    # Five in a row lock the MFA step: then even a right code or a backup code is refused.
    challenge_token = portal.login_as(user, "mfa_required")["challenge_token"]
    for _ in range(5):
        assert_problem(portal.challenge(challenge_token, otp=app.wrong_code()), 401, "wrong-code")
    assert_problem(portal.challenge(challenge_token, otp=app.code(spend=False)), 429, "locked-out")
    assert_problem(
        portal.challenge(challenge_token, backup_code=enrolled.backup_codes[0]), 429, "locked-out"
    )
    assert_problem(portal.login(user), 429, "locked-out")


def test_a_locked_mfa_step_says_when_it_opens_in_retry_after(portal: Portal) -> None:
    (user,) = portal.prepare("customer", policy=True)
    app = portal.enroll(user).app
    challenge_token = portal.login_as(user, "mfa_required")["challenge_token"]
    for _ in range(MAX_CONSECUTIVE_FAILURES - 1):
        assert_problem(portal.challenge(challenge_token, otp=app.wrong_code()), 401, "wrong-code")
    # The failure that locks: the lock runs FIRST_LOCKOUT from the moment auth counted it.
    before = time.time()
    assert_problem(portal.challenge(challenge_token, otp=app.wrong_code()), 401, "wrong-code")
    after = time.time()
    lock = FIRST_LOCKOUT.total_seconds()

    answers: list[tuple[float, int]] = []
    for call in (
        lambda: portal.challenge(challenge_token, otp=app.code(spend=False)),
        lambda: portal.login(user),  # the password step says the same while the lock holds
    ):
        answer = call()
        asked = time.time()
        assert_problem(answer, 429, "locked-out")
        retry_after = answer.headers["retry-after"]
        assert retry_after.isdigit(), retry_after  # delay-seconds, not a date
        # The lock ends between before+lock and after+lock; asked after `after`.
        assert before + lock - asked - 1 <= int(retry_after) <= after + lock - before + 1
        assert int(retry_after) > lock - 60, "a fresh 5-minute lock says about 5 minutes"
        answers.append((asked, int(retry_after)))

    # ...and it is the lock auth recorded: its ContactLockedOut event's `until`, as audit has it.
    def locked_until() -> datetime | None:
        lines = portal.stack.cli(
            "audit", "tail", "--org", portal.org, "--type", "ContactLockedOut", "--json"
        ).stdout.splitlines()
        found = [json.loads(line) for line in lines]
        mine = [e for e in found if e["aggregate_id"] == user.contact_id]
        return datetime.fromisoformat(mine[0]["payload"]["until"]) if mine else None

    until = wait_until(locked_until, timeout=15, what="the lock in the audit log").timestamp()
    for asked, retry_after_s in answers:
        # Whole seconds, rounded up, from the moment auth took its clock (before `asked`, by
        # the request's time: the password step's argon2 is in it).
        assert until - asked <= retry_after_s <= until - asked + 5, (until - asked, retry_after_s)


# --- 7. Revoked access and deleted contacts ---------------------------------------------------


def test_revoking_access_or_deleting_the_contact_ends_sessions_and_logins(
    portal: Portal,
) -> None:
    revoked, deleted = portal.prepare("customer", "vendor", policy=True)
    enrolled = portal.enroll(revoked)
    session = enrolled.session["session_token"]
    pending = portal.login_as(revoked, "mfa_required")["challenge_token"]
    other_session = portal.enroll(deleted).session["session_token"]

    # Revoke portal access: the live session ends, and so do logins and pending challenges.
    answer = portal.admin("contacts", "revoke-portal-access", revoked.contact_id)
    assert answer == {"contact_id": revoked.contact_id, "portal_access": False}
    assert_problem(portal.session(session), 401, "invalid-session")
    assert_problem(portal.login(revoked), 401, "invalid-credentials")
    assert_problem(
        portal.challenge(pending, otp=enrolled.app.code(spend=False)),
        401,
        "invalid-challenge-token",
    )
    # Nobody else's session ends.
    assert whoami(portal, other_session)["contact_id"] == deleted.contact_id

    # Access granted again: the old session stays dead; the new invitation sets a password.
    granted = portal.admin("contacts", "grant-portal-access", revoked.contact_id)
    new_password = "a-brand-new-password"
    accepted = portal.accept_invitation(granted["invitation_token"], new_password)
    assert accepted.status_code == 204, accepted.text
    assert_problem(portal.session(session), 401, "invalid-session")
    # The revoke destroyed the enrollment too: the contact configures MFA anew.
    assert portal.login(revoked, new_password).json()["status"] == "mfa_enrollment_required"

    # Delete a contact: its live session ends and its login stops working.
    answer = portal.admin("contacts", "delete", deleted.contact_id)
    assert answer == {"contact_id": deleted.contact_id, "deleted": True}
    assert_problem(portal.session(other_session), 401, "invalid-session")
    assert_problem(portal.login(deleted), 401, "invalid-credentials")
    listed = portal.admin("contacts", "list")["contacts"]
    assert [(c["contact_id"], c["portal_access"]) for c in listed] == [(revoked.contact_id, True)]
