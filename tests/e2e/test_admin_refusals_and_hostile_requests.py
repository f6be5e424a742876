"""Portal login with MFA, end to end: what the admin console refuses, and hostile requests."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.e2e.portal_client import (
    CHALLENGE,
    ENABLE,
    PASSWORD,
    START,
    TOO_BIG,
    VERIFY,
    Portal,
    assert_problem,
    authenticated,
    new_email,
)

pytestmark = pytest.mark.e2e


# --- 8. The admin console refuses what it must ------------------------------------------------


def test_rejected_admin_commands_change_nothing(portal: Portal, other_portal: Portal) -> None:
    added = portal.admin(
        "contacts", "add", "--kind", "customer", "--name", "Casey", "--email", new_email()
    )
    contact_id = added["contact_id"]
    before = portal.admin("contacts", "show", contact_id)
    assert before["contact_id"] == contact_id
    assert before["email"] == added["email"]
    assert (before["portal_access"], before["mfa_epoch"]) == (False, 0)

    invalid_email = ("add", "--kind", "customer", "--name", "X", "--email", "not-an-email")
    with ThreadPoolExecutor() as pool:
        refusals = [
            # Another org's contact id reveals nothing and cannot be changed.
            pool.submit(other_portal.admin_rejected, "contacts", "show", contact_id),
            pool.submit(other_portal.admin_rejected, "contacts", "reset-mfa", contact_id),
            pool.submit(portal.admin_rejected, "contacts", *invalid_email),
            pool.submit(portal.admin_rejected, "contacts", "reset-mfa", "no-such-contact"),
        ]
        for refusal in refusals:
            assert refusal.result().strip()

    assert portal.admin("contacts", "show", contact_id) == before
    listed = portal.admin("contacts", "list")["contacts"]
    assert [c["contact_id"] for c in listed] == [contact_id]
    # Nothing reached auth either.
    assert portal.requirement_now(contact_id, known=True)["mfa_epoch"] == 0


# --- 9. Hostile requests ----------------------------------------------------------------------


def test_hostile_requests_get_a_problem_never_a_500(portal: Portal) -> None:
    user, newcomer = portal.prepare("customer", "vendor", policy=True)
    enrolled = portal.enroll(user)
    org = portal.org
    login_path = f"/v1/portals/{org}/login"
    challenge_token = portal.login_as(user, "mfa_required")["challenge_token"]
    enrollment_token = portal.login_as(newcomer, "mfa_enrollment_required")["enrollment_token"]
    session_token = enrolled.session["session_token"]
    unknown_token = "x" * 43
    huge = "p" * 1_000_000
    json_headers = {"content-type": "application/json"}

    # (what, method, path, keyword arguments for httpx, status(es), problem kind or None)
    cases: list[tuple[str, str, str, dict[str, Any], int | set[int], str | None]] = [
        ("no body", "POST", login_path, {}, 422, "invalid-request"),
        ("missing password", "POST", login_path, {"json": {"email": user.email}}, 422, None),
        ("body is a list", "POST", login_path, {"json": [user.email, PASSWORD]}, 422, None),
        ("broken JSON", "POST", login_path, {"content": b"{", "headers": json_headers}, 422, None),
        (
            "deeply nested JSON",
            "POST",
            login_path,
            {"content": b"[" * 100_000 + b"]" * 100_000, "headers": json_headers},
            {400, 413, 422},
            None,
        ),
        ("text body", "POST", login_path, {"content": b"email=a&password=b"}, 422, None),
        (
            "email is a number",
            "POST",
            login_path,
            {"json": {"email": 12345, "password": PASSWORD}},
            422,
            None,
        ),
        (
            "password is an object",
            "POST",
            login_path,
            {"json": {"email": user.email, "password": {"$ne": ""}}},
            422,
            None,
        ),
        (
            "extra field",
            "POST",
            login_path,
            {"json": {"email": user.email, "password": PASSWORD, "admin": True}},
            422,
            None,
        ),
        (
            "1 MB password",
            "POST",
            login_path,
            {"json": {"email": user.email, "password": huge}},
            TOO_BIG,
            None,
        ),
        (
            "1 MB extra field",
            "POST",
            login_path,
            {"json": {"email": user.email, "password": PASSWORD, "junk": huge}},
            TOO_BIG,
            None,
        ),
        (
            "1 MB chunked body, no length declared",
            "POST",
            login_path,
            {
                "content": iter([b'{"email": "a@b.c", "password": "', *[b"p" * 65_536] * 16]),
                "headers": json_headers,
            },
            {400, 413, 422},
            None,
        ),
        (
            "1 MB invitation password",
            "POST",
            f"/v1/portals/{org}/invitations/accept",
            {"json": {"token": unknown_token, "password": huge}},
            TOO_BIG,
            None,
        ),
        (
            "lone surrogate in email",
            "POST",
            login_path,
            {
                "content": b'{"email": "\\ud800@example.com", "password": "xxxxxxxxxxxx"}',
                "headers": json_headers,
            },
            422,
            None,
        ),
        (
            "org id with a space",
            "POST",
            "/v1/portals/bad%20org/login",
            {"json": {"email": user.email, "password": PASSWORD}},
            422,
            "invalid-request",
        ),
        (
            "org id with markup",
            "POST",
            "/v1/portals/%3Cscript%3E/login",
            {"json": {"email": user.email, "password": PASSWORD}},
            422,
            None,
        ),
        (
            "org id with a NUL",
            "POST",
            "/v1/portals/or%00g/login",
            {"json": {"email": user.email, "password": PASSWORD}},
            422,
            None,
        ),
        (
            "org id not ASCII",
            "POST",
            "/v1/portals/%C3%B6rg/login",
            {"json": {"email": user.email, "password": PASSWORD}},
            422,
            None,
        ),
        (
            "org id too long",
            "POST",
            f"/v1/portals/{'o' * 500}/login",
            {"json": {"email": user.email, "password": PASSWORD}},
            422,
            None,
        ),
        (
            "org id with quotes in the requirement lookup",
            "GET",
            "/v1/orgs/x'%20OR%20'1'='1/contacts/c/login-requirement",
            {},
            422,
            None,
        ),
        (
            "unknown invitation",
            "POST",
            f"/v1/portals/{org}/invitations/accept",
            {"json": {"token": unknown_token, "password": PASSWORD}},
            400,
            "invalid-invitation",
        ),
        (
            "unknown challenge token",
            "POST",
            CHALLENGE,
            {"json": {"challenge_token": unknown_token, "otp": "123456"}},
            401,
            "invalid-challenge-token",
        ),
        (
            "unknown enrollment token",
            "POST",
            START,
            {"json": {"enrollment_token": unknown_token}},
            401,
            "invalid-enrollment-token",
        ),
        (
            "challenge token at the enrollment endpoint",
            "POST",
            START,
            {"json": {"enrollment_token": challenge_token}},
            401,
            "invalid-enrollment-token",
        ),
        (
            "challenge token to enable an enrollment",
            "POST",
            ENABLE,
            {"json": {"enrollment_token": challenge_token}},
            401,
            "invalid-enrollment-token",
        ),
        (
            "enrollment token at the challenge",
            "POST",
            CHALLENGE,
            {"json": {"challenge_token": enrollment_token, "otp": "123456"}},
            401,
            "invalid-challenge-token",
        ),
        (
            "session token at the challenge",
            "POST",
            CHALLENGE,
            {"json": {"challenge_token": session_token, "otp": "123456"}},
            401,
            "invalid-challenge-token",
        ),
        (
            "challenge token as a session",
            "GET",
            "/v1/session",
            {"headers": {"Authorization": f"Bearer {challenge_token}"}},
            401,
            "invalid-session",
        ),
        (
            "both otp and backup code",
            "POST",
            CHALLENGE,
            {
                "json": {
                    "challenge_token": challenge_token,
                    "otp": "123456",
                    "backup_code": enrolled.backup_codes[0],
                }
            },
            422,
            "invalid-request",
        ),
        (
            "neither otp nor backup code",
            "POST",
            CHALLENGE,
            {"json": {"challenge_token": challenge_token}},
            422,
            None,
        ),
        (
            "otp is a number",
            "POST",
            CHALLENGE,
            {"json": {"challenge_token": challenge_token, "otp": 123456}},
            422,
            None,
        ),
        (
            "verify before start",
            "POST",
            VERIFY,
            {"json": {"enrollment_token": enrollment_token, "otp": "123456"}},
            409,
            "enrollment-not-started",
        ),
        (
            "enable before verify",
            "POST",
            ENABLE,
            {"json": {"enrollment_token": enrollment_token}},
            409,
            "enrollment-not-verified",
        ),
        ("no bearer", "GET", "/v1/session", {}, 401, "invalid-session"),
        (
            "basic auth",
            "GET",
            "/v1/session",
            {"headers": {"Authorization": "Basic dXNlcjpwYXNz"}},
            401,
            "invalid-session",
        ),
        (
            "garbage bearer",
            "POST",
            "/v1/logout",
            {"headers": {"Authorization": "Bearer \x01\x02 ' OR 1=1"}},
            401,
            "invalid-session",
        ),
        ("wrong method", "GET", CHALLENGE, {}, 405, None),
        ("unknown path", "POST", "/v1/portals", {"json": {}}, 404, None),
    ]
    failures = []
    for what, method, path, kwargs, expected, kind in cases:
        # A client per case: a server error must not leak into the next case's connection.
        with httpx.Client(base_url=portal.stack.url("auth"), timeout=30) as client:
            answer = client.request(method, path, **kwargs)
        allowed = {expected} if isinstance(expected, int) else expected
        status = answer.status_code if answer.status_code in allowed else min(allowed)
        try:
            assert_problem(answer, status, kind)
        except AssertionError as exc:
            failures.append(f"{what}: {exc}")
    assert failures == []

    # Unknown email and wrong password: the same answer, word for word.
    unknown = portal.post(login_path, {"email": new_email("nobody"), "password": PASSWORD})
    wrong = portal.login(user, "not-the-password")
    assert assert_problem(unknown, 401, "invalid-credentials") == assert_problem(wrong, 401)

    # A weak password is refused; an invitation is accepted once.
    assert_problem(portal.accept_invitation(unknown_token, "short"), 400, "weak-password")
    assert_problem(
        portal.accept_invitation(newcomer.invitation_token, PASSWORD), 400, "invalid-invitation"
    )

    # Reused tokens: the challenge, the enrollment, the session.
    authenticated(portal.challenge(challenge_token, otp=enrolled.app.code()))
    assert_problem(
        portal.challenge(challenge_token, otp=enrolled.app.code(spend=False)),
        401,
        "invalid-challenge-token",
    )
    assert_problem(
        portal.post(START, {"enrollment_token": enrolled.token}), 401, "invalid-enrollment-token"
    )
    assert_problem(
        portal.post(ENABLE, {"enrollment_token": enrolled.token}), 401, "invalid-enrollment-token"
    )
    assert portal.logout(session_token).status_code == 204
    assert_problem(portal.session(session_token), 401, "invalid-session")

    # The portal still works for the people it serves.
    assert portal.stack.process.poll() is None
    assert httpx.get(portal.stack.url("auth", "/readyz")).status_code == 200
