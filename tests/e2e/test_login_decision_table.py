"""Portal login with MFA, end to end: every row of the decision table, along the help page."""

from __future__ import annotations

import base64
import re
from urllib.parse import parse_qs, unquote, urlsplit
from xml.etree import ElementTree

import pyotp
import pytest

from tests.e2e.portal_client import (
    ENABLE,
    START,
    VERIFY,
    Authenticator,
    Portal,
    assert_no_store,
    assert_problem,
    authenticated,
    whoami,
)

pytestmark = pytest.mark.e2e


# --- 1. The decision table, along the help page ---------------------------------------------


def test_every_row_of_the_decision_table_along_the_help_page(portal: Portal) -> None:
    portal_name = "Acme Books Portal"
    named = portal.admin("portal", "name", portal_name)
    assert named == {"org_id": portal.org, "mfa_enabled": False, "portal_name": portal_name}
    (user,) = portal.prepare("customer")

    # Row "off / not enrolled": the password alone opens a session.
    requirement = portal.requirement_now(user.contact_id, known=True)
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
    requirement = portal.requirement_now(user.contact_id, requirement="enroll")
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
    requirement = portal.requirement_now(user.contact_id, mfa_epoch=1)
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
