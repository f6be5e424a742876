"""Portal login with MFA, end to end: enrollment (one key per enrollment) and backup codes."""

from __future__ import annotations

import pytest

from tests.e2e.portal_client import (
    ENABLE,
    START,
    VERIFY,
    Authenticator,
    Portal,
    assert_problem,
    authenticated,
    whoami,
)

pytestmark = pytest.mark.e2e


# --- 2. Enrollment shows one key per enrollment ---------------------------------------------


def test_starting_enrollment_again_shows_the_same_key(portal: Portal) -> None:
    (user,) = portal.prepare("customer", policy=True)
    token = portal.login_as(user, "mfa_enrollment_required")["enrollment_token"]

    first = portal.post(START, {"enrollment_token": token})
    assert first.status_code == 200, first.text
    reloaded = portal.post(START, {"enrollment_token": token})
    assert reloaded.status_code == 200, reloaded.text
    assert reloaded.json()["secret"] == first.json()["secret"]
    assert reloaded.json()["otpauth_uri"] == first.json()["otpauth_uri"]

    app = Authenticator(first.json()["secret"])
    assert_problem(
        portal.post(VERIFY, {"enrollment_token": token, "otp": app.wrong_code()}), 400, "wrong-code"
    )
    after_wrong = portal.post(START, {"enrollment_token": token})
    assert after_wrong.json()["secret"] == first.json()["secret"]

    # The key scanned first is the one that gets enrolled.
    verified = portal.post(VERIFY, {"enrollment_token": token, "otp": app.code()})
    assert verified.status_code == 200, verified.text
    authenticated(portal.post(ENABLE, {"enrollment_token": token}))
    challenge_token = portal.login_as(user, "mfa_required")["challenge_token"]
    authenticated(portal.challenge(challenge_token, otp=app.code()))


def test_an_older_enrollment_token_cannot_replace_an_active_enrollment(portal: Portal) -> None:
    # Only a reset frees an enrolled contact: a token from an earlier login must not
    # re-enroll it (whoever held the password then would take over the second factor).
    (user,) = portal.prepare("customer", policy=True)
    older = portal.login_as(user, "mfa_enrollment_required")["enrollment_token"]
    enrolled = portal.enroll(user)
    for path, body in (
        (START, {"enrollment_token": older}),
        (VERIFY, {"enrollment_token": older, "otp": enrolled.app.wrong_code()}),
        (ENABLE, {"enrollment_token": older}),
    ):
        assert_problem(portal.post(path, body), 409, "already-enrolled")
    challenge_token = portal.login_as(user, "mfa_required")["challenge_token"]
    authenticated(portal.challenge(challenge_token, otp=enrolled.app.code()))


def test_a_nul_character_in_the_login_email_is_bad_input(portal: Portal) -> None:
    answer = portal.http.post(
        f"/v1/portals/{portal.org}/login",
        json={"email": "a\u0000b@example.com", "password": "xxxxxxxxxxxx"},
    )
    assert_problem(answer, 422, "invalid-request")


# --- 3. Backup codes --------------------------------------------------------------------------


def test_a_backup_code_works_once(portal: Portal) -> None:
    (user,) = portal.prepare("vendor", policy=True)
    enrolled = portal.enroll(user)
    codes = enrolled.backup_codes

    challenge_token = portal.login_as(user, "mfa_required")["challenge_token"]
    with_otp = portal.challenge(challenge_token, otp=enrolled.app.code())
    authenticated(with_otp)
    assert with_otp.json()["backup_codes_remaining"] == 10

    challenge_token = portal.login_as(user, "mfa_required")["challenge_token"]
    used = portal.challenge(challenge_token, backup_code=codes[0])
    session = authenticated(used)
    assert used.json()["backup_codes_remaining"] == 9
    assert whoami(portal, session["session_token"])["mfa"] is True

    challenge_token = portal.login_as(user, "mfa_required")["challenge_token"]
    assert_problem(portal.challenge(challenge_token, backup_code=codes[0]), 401, "wrong-code")
    # The refused attempt did not spend the challenge: another code still works with it.
    second = portal.challenge(challenge_token, backup_code=codes[1])
    authenticated(second)
    assert second.json()["backup_codes_remaining"] == 8
