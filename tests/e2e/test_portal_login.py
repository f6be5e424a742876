"""Portal login with MFA, end to end: the admin console, Kafka, and the portal's HTTP API.

Each test is one user journey through the running `portal-mfa dev` stack, in an org of
its own. The admin acts through the CLI; the contact through HTTP with an authenticator
app (pyotp). Changes reach the auth service over Kafka, so the tests wait for the login
requirement (or the session) to show a change before they rely on it.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit
from xml.etree import ElementTree

import httpx
import pyotp
import pytest

from services.auth.domain.lockout import (
    FIRST_LOCKOUT,
    MAX_CONSECUTIVE_FAILURES,
)
from tests.e2e.conftest import RunningStack
from tests.e2e.portal_client import (
    PASSWORD,
    PROBLEM_BASE,
    Authenticator,
    Portal,
    assert_problem,
    new_email,
    wait_until,
)

pytestmark = pytest.mark.e2e

START = "/v1/mfa/enrollment/start"
VERIFY = "/v1/mfa/enrollment/verify"
ENABLE = "/v1/mfa/enrollment/enable"
CHALLENGE = "/v1/mfa/challenge"
# A 1 MB body is refused as too large, or (under a larger limit) as an invalid field.
TOO_BIG = {413, 422}


@pytest.fixture
def portal(stack: RunningStack) -> Iterator[Portal]:
    """A fresh org of its own."""
    running = Portal(stack)
    yield running
    running.close()


@pytest.fixture
def other_portal(stack: RunningStack) -> Iterator[Portal]:
    """A second, unrelated org."""
    running = Portal(stack)
    yield running
    running.close()


def whoami(portal: Portal, session_token: str) -> dict[str, Any]:
    answer = portal.session(session_token)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def authenticated(answer: httpx.Response) -> dict[str, Any]:
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    assert body["status"] == "authenticated", body
    assert body["session_token"]
    assert body["expires_at"]
    return body


def assert_no_store(answer: httpx.Response) -> None:
    assert "no-store" in answer.headers.get("cache-control", ""), answer.headers


# --- 1. The decision table, along the help page ---------------------------------------------


def test_every_row_of_the_decision_table_along_the_help_page(portal: Portal) -> None:
    portal_name = "Acme Books Portal"
    named = portal.admin("portal", "name", portal_name)
    assert named == {"org_id": portal.org, "mfa_enabled": False, "portal_name": portal_name}
    (user,) = portal.prepare("customer")

    # Row "off / not enrolled": the password alone opens a session.
    requirement = portal.wait_requirement(user.contact_id, known=True)
    assert requirement["requirement"] == "password"
    assert requirement["policy_enabled"] is False
    assert requirement["enrolled"] is False
    assert requirement["mfa_epoch"] == 0
    first = portal.login_as(user, "authenticated")
    assert set(first) == {"status", "session_token", "expires_at"}
    assert whoami(portal, first["session_token"]) == {
        "org_id": portal.org,
        "contact_id": user.contact_id,
        "kind": "customer",
        "mfa": False,
    }

    # The admin checks "Enable multi-factor authentication (MFA)".
    portal.set_policy(True)

    # Row "on / not enrolled": MFA must be configured before any session is issued.
    requirement = portal.wait_requirement(user.contact_id, requirement="enroll")
    assert requirement["known"] is True
    assert requirement["policy_enabled"] is True
    assert requirement["enrolled"] is False
    assert len(requirement["decided_by"]) == 1
    policy_event = requirement["decided_by"][0]
    asked = portal.login_as(user, "mfa_enrollment_required")
    assert set(asked) == {"status", "enrollment_token"}
    token = asked["enrollment_token"]

    # Configure: a QR code and the key for manual entry.
    started = portal.post(START, {"enrollment_token": token})
    assert started.status_code == 200, started.text
    assert_no_store(started)
    shown = started.json()
    secret = shown["secret"]
    assert re.fullmatch(r"[A-Z2-7]{32}", secret), secret
    assert len(base64.b32decode(secret)) == 20  # 160 bits
    uri = urlsplit(shown["otpauth_uri"])
    assert (uri.scheme, uri.netloc) == ("otpauth", "totp")
    assert unquote(uri.path) == f"/{portal_name}:{user.email}"
    query = parse_qs(uri.query)
    assert query["secret"] == [secret]
    assert query["issuer"] == [portal_name]
    assert query.get("algorithm", ["SHA1"]) == ["SHA1"]
    assert query.get("digits", ["6"]) == ["6"]
    assert query.get("period", ["30"]) == ["30"]
    app_view = pyotp.parse_uri(shown["otpauth_uri"])
    assert (app_view.issuer, app_view.name, app_view.secret) == (portal_name, user.email, secret)
    svg = ElementTree.fromstring(shown["qr_svg"].encode())  # noqa: S314 -- our own server
    assert svg.tag == "{http://www.w3.org/2000/svg}svg"
    assert len(list(svg.iter())) > 1  # it draws something
    prefix = "data:image/png;base64,"
    assert shown["qr_png_data_uri"].startswith(prefix)
    png = base64.b64decode(shown["qr_png_data_uri"][len(prefix) :], validate=True)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    app = Authenticator(secret)

    # Next, enter a code, Verify: a wrong code is refused, and nothing is enrolled.
    wrong = portal.post(VERIFY, {"enrollment_token": token, "otp": app.wrong_code()})
    assert_problem(wrong, 400, "wrong-code")
    verified = portal.post(VERIFY, {"enrollment_token": token, "otp": app.code()})
    assert verified.status_code == 200, verified.text
    assert_no_store(verified)
    backup_codes = verified.json()["backup_codes"]
    assert len(backup_codes) == 10
    assert len(set(backup_codes)) == 10
    # Verified is not yet enabled: the contact still has to configure MFA.
    assert portal.requirement(user.contact_id)["requirement"] == "enroll"

    # Enable MFA: enrolled, and a session is issued.
    enabled = portal.post(ENABLE, {"enrollment_token": token})
    assert_no_store(enabled)
    session = authenticated(enabled)
    assert whoami(portal, session["session_token"]) == {
        "org_id": portal.org,
        "contact_id": user.contact_id,
        "kind": "customer",
        "mfa": True,
    }
    requirement = portal.requirement(user.contact_id)
    assert requirement["requirement"] == "totp"
    assert requirement["enrolled"] is True
    assert requirement["mfa_epoch"] == 0
    assert len(requirement["decided_by"]) == 2
    assert policy_event in requirement["decided_by"]

    # Log out: the session ends.
    assert portal.logout(session["session_token"]).status_code == 204
    assert_problem(portal.session(session["session_token"]), 401, "invalid-session")
    assert_problem(portal.logout(session["session_token"]), 401, "invalid-session")

    # Row "on / enrolled": the next login asks for a code, and the app's code opens a session.
    asked = portal.login_as(user, "mfa_required")
    assert set(asked) == {"status", "challenge_token"}
    passed = portal.challenge(asked["challenge_token"], otp=app.code())
    assert_no_store(passed)
    session = authenticated(passed)
    assert passed.json()["backup_codes_remaining"] == 10
    assert whoami(portal, session["session_token"])["mfa"] is True

    # Row "off / enrolled": disabling the policy does not release an enrolled contact.
    portal.set_policy(False)
    requirement = portal.requirement(user.contact_id)
    assert requirement["requirement"] == "totp"
    assert (requirement["policy_enabled"], requirement["enrolled"]) == (False, True)
    pending = portal.login_as(user, "mfa_required")["challenge_token"]

    # Reset Portal MFA with the policy off: the password alone again.
    reset = portal.admin("contacts", "reset-mfa", user.contact_id, "--reason", "lost phone")
    assert reset == {"contact_id": user.contact_id, "mfa_epoch": 1}
    requirement = portal.wait_requirement(user.contact_id, mfa_epoch=1)
    assert requirement["requirement"] == "password"
    assert requirement["enrolled"] is False
    assert len(requirement["decided_by"]) == 2  # the policy and the reset
    # A challenge begun before the reset is void, even with a right code.
    assert_problem(
        portal.challenge(pending, otp=app.code(spend=False)), 401, "invalid-challenge-token"
    )
    session = portal.login_as(user, "authenticated")
    assert whoami(portal, session["session_token"])["mfa"] is False

    # Reset with the policy on: the contact has to configure MFA again, with a new key.
    portal.set_policy(True)
    assert portal.requirement(user.contact_id)["requirement"] == "enroll"
    again = portal.enroll(user)
    assert again.app.secret != secret
    assert whoami(portal, again.session["session_token"])["mfa"] is True
    # The reset destroyed the old key and the old backup codes.
    asked = portal.login_as(user, "mfa_required")
    challenge_token = asked["challenge_token"]
    assert_problem(
        portal.challenge(challenge_token, backup_code=backup_codes[0]), 401, "wrong-code"
    )
    assert_problem(portal.challenge(challenge_token, otp=app.code(spend=False)), 401, "wrong-code")
    passed = portal.challenge(challenge_token, otp=again.app.code())
    authenticated(passed)
    assert passed.json()["backup_codes_remaining"] == 10


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


# --- 4. One switch covers customers and vendors alike -----------------------------------------


@pytest.fixture(scope="module")
def shared_portal(stack: RunningStack) -> Iterator[Portal]:
    """One org, MFA on, shared by the customer and the vendor runs below."""
    running = Portal(stack)
    running.prepare(policy=True, portal_name="Shared Portal")
    yield running
    running.close()


@pytest.mark.parametrize("kind", ["customer", "vendor"])
def test_customers_and_vendors_of_one_org_are_treated_alike(
    shared_portal: Portal, kind: str
) -> None:
    portal = shared_portal
    user = portal.add_user(kind)
    requirement = portal.wait_requirement(user.contact_id, known=True)
    assert requirement["requirement"] == "enroll"
    assert requirement["policy_enabled"] is True

    token = portal.login_as(user, "mfa_enrollment_required")["enrollment_token"]
    started = portal.post(START, {"enrollment_token": token}).json()
    assert pyotp.parse_uri(started["otpauth_uri"]).issuer == "Shared Portal"
    app = Authenticator(started["secret"])
    assert portal.post(VERIFY, {"enrollment_token": token, "otp": app.code()}).status_code == 200
    session = authenticated(portal.post(ENABLE, {"enrollment_token": token}))
    assert whoami(portal, session["session_token"]) == {
        "org_id": portal.org,
        "contact_id": user.contact_id,
        "kind": kind,
        "mfa": True,
    }

    challenge_token = portal.login_as(user, "mfa_required")["challenge_token"]
    session = authenticated(portal.challenge(challenge_token, otp=app.code()))
    assert whoami(portal, session["session_token"])["kind"] == kind


# --- 5. Orgs are separate ---------------------------------------------------------------------


def test_one_orgs_policy_never_touches_another_org(portal: Portal, other_portal: Portal) -> None:
    email = new_email("both")
    with ThreadPoolExecutor() as pool:
        policy_a = pool.submit(portal.set_policy, True)
        in_a = pool.submit(portal.add_user, "customer", email)
        in_b = pool.submit(other_portal.add_user, "vendor", email)
        policy_a.result()
        user_a, user_b = in_a.result(), in_b.result()

    # Org A asks its contact to configure MFA.
    assert portal.requirement(user_a.contact_id)["requirement"] == "enroll"
    portal.login_as(user_a, "mfa_enrollment_required")

    # Org B's contact, with the same email and password, logs in with the password alone.
    requirement = other_portal.wait_requirement(user_b.contact_id, known=True)
    assert requirement["requirement"] == "password"
    assert requirement["policy_enabled"] is False
    session = other_portal.login_as(user_b, "authenticated")
    assert whoami(other_portal, session["session_token"]) == {
        "org_id": other_portal.org,
        "contact_id": user_b.contact_id,
        "kind": "vendor",
        "mfa": False,
    }
    # And org B knows nothing of org A's contact.
    seen_from_b = other_portal.requirement(user_a.contact_id)
    assert seen_from_b["known"] is False
    assert seen_from_b["policy_enabled"] is False


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
    wait_until(lambda: portal.session(session).status_code == 401, what="the session to end")
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
    wait_until(
        lambda: (
            portal.accept_invitation(granted["invitation_token"], new_password).status_code == 204
        ),
        what="the new invitation to reach auth",
    )
    assert_problem(portal.session(session), 401, "invalid-session")
    # The revoke destroyed the enrollment too: the contact configures MFA anew.
    assert portal.login(revoked, new_password).json()["status"] == "mfa_enrollment_required"

    # Delete a contact: its live session ends and its login stops working.
    answer = portal.admin("contacts", "delete", deleted.contact_id)
    assert answer == {"contact_id": deleted.contact_id, "deleted": True}
    wait_until(lambda: portal.session(other_session).status_code == 401, what="the session to end")
    assert_problem(portal.session(other_session), 401, "invalid-session")
    assert_problem(portal.login(deleted), 401, "invalid-credentials")
    listed = portal.admin("contacts", "list")["contacts"]
    assert [(c["contact_id"], c["portal_access"]) for c in listed] == [(revoked.contact_id, True)]


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
    assert portal.wait_requirement(contact_id, known=True)["mfa_epoch"] == 0


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


# --- 10. One code, many concurrent challenges -------------------------------------------------


def test_the_same_code_sent_concurrently_is_accepted_once(portal: Portal) -> None:
    (user,) = portal.prepare("customer", policy=True)
    enrolled = portal.enroll(user)
    challenge_tokens = [portal.login_as(user, "mfa_required")["challenge_token"] for _ in range(20)]
    code = enrolled.app.code()
    start = threading.Barrier(len(challenge_tokens))

    def answer(challenge_token: str) -> httpx.Response:
        with httpx.Client(base_url=portal.stack.url("auth"), timeout=30) as client:
            start.wait()
            return client.post(CHALLENGE, json={"challenge_token": challenge_token, "otp": code})

    with ThreadPoolExecutor(max_workers=len(challenge_tokens)) as pool:
        answers = list(pool.map(answer, challenge_tokens))

    statuses = Counter(a.status_code for a in answers)
    assert statuses[200] == 1, statuses
    winner = next(a for a in answers if a.status_code == 200)
    assert whoami(portal, winner.json()["session_token"])["mfa"] is True
    # Every other attempt is a replay, refused. The refusals also count toward the lockout
    # (5 consecutive failures), so after five "wrong code" answers the rest are "locked out".
    losers = [a for a in answers if a.status_code != 200]
    kinds = Counter(assert_problem(a, a.status_code)["type"] for a in losers)
    assert kinds == {PROBLEM_BASE + "wrong-code": 5, PROBLEM_BASE + "locked-out": 14}, kinds
