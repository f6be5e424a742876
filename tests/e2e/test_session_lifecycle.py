"""Sessions that end: every change that would refuse a login also ends what it issued.

A session token is a bearer credential; whoever holds it (the user, or a thief with the
phone or the laptop) is the user for 12 hours. So the admin's answers to a lost phone or
a compromised account, and the user's own new password, must end the live sessions
there and then, and revoking access must leave nothing of the old credentials behind
for a later grant. Each test drives the running stack as its users do: the admin
through the CLI, the contact (and whoever holds their session) through HTTP.

Changes reach auth over Kafka. A test waits for the login requirement to show a change
(auth applies an event and its reactions in one transaction), then checks the sessions
once: nothing here polls a session until it happens to end.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from tests.e2e.portal_client import (
    Authenticator,
    Portal,
    User,
    assert_problem,
    new_email,
    wait_until,
)

pytestmark = pytest.mark.e2e


def whoami(portal: Portal, session_token: str) -> dict[str, Any]:
    answer = portal.session(session_token)
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def assert_ended(portal: Portal, *session_tokens: str) -> None:
    for token in session_tokens:
        assert_problem(portal.session(token), 401, "invalid-session")


def code_session(portal: Portal, user: User, app: Authenticator) -> str:
    """A second device: log in with the password and a code from the app."""
    challenge = portal.login_as(user, "mfa_required")["challenge_token"]
    passed = portal.challenge(challenge, otp=app.code())
    assert passed.status_code == 200, passed.text
    token: str = passed.json()["session_token"]
    return token


def password_session(portal: Portal, user: User) -> str:
    token: str = portal.login_as(user, "authenticated")["session_token"]
    assert whoami(portal, token)["mfa"] is False
    return token


def accept_new_invitation(portal: Portal, invitation_token: str, password: str) -> None:
    # The CLI returned once auth had applied the grant: the invitation is known there.
    accepted = portal.accept_invitation(invitation_token, password)
    assert accepted.status_code == 204, accepted.text


def test_reset_portal_mfa_ends_every_session_of_the_contact(portal: Portal) -> None:
    # The phone with the authenticator is lost, and with it a logged-in portal session.
    lost, password_user, bystander = portal.prepare("customer", "vendor", "customer", policy=True)
    enrolled = portal.enroll(lost)
    on_the_phone = enrolled.session["session_token"]
    on_the_laptop = code_session(portal, lost, enrolled.app)
    pending = portal.login_as(lost, "mfa_required")["challenge_token"]
    bystander_session = portal.enroll(bystander).session["session_token"]
    portal.set_policy(False)
    password_only = password_session(portal, password_user)
    assert whoami(portal, on_the_phone)["mfa"] is True

    # The admin's "lost phone" response: Reset Portal MFA, for both contacts.
    for user in (lost, password_user):
        answer = portal.admin("contacts", "reset-mfa", user.contact_id, "--reason", "lost phone")
        assert answer == {"contact_id": user.contact_id, "mfa_epoch": 1}
    for user in (lost, password_user):
        portal.requirement_now(user.contact_id, mfa_epoch=1)

    # Every session of both ends, those that passed a second factor included: the thief
    # holding the phone is logged out with the owner.
    assert_ended(portal, on_the_phone, on_the_laptop, password_only)
    assert_problem(
        portal.challenge(pending, otp=enrolled.app.code(spend=False)),
        401,
        "invalid-challenge-token",
    )
    # Nobody else's session ends; the reset contacts log in again by the table.
    assert whoami(portal, bystander_session)["contact_id"] == bystander.contact_id
    assert whoami(portal, password_session(portal, lost))["contact_id"] == lost.contact_id


def test_a_new_password_ends_every_session_of_the_old_one(portal: Portal) -> None:
    # Someone learnt the password and logged in; the owner is sent a new invitation.
    user, bystander = portal.prepare("vendor", "customer", policy=True)
    enrolled = portal.enroll(user)
    owners = enrolled.session["session_token"]
    attackers = code_session(portal, user, enrolled.app)
    pending = portal.login_as(user, "mfa_required")["challenge_token"]
    bystander_session = portal.enroll(bystander).session["session_token"]

    invited = portal.admin("contacts", "grant-portal-access", user.contact_id)
    new_password = "a-new-password-after-the-leak"
    accept_new_invitation(portal, invited["invitation_token"], new_password)

    # Setting the password ended every session and pending login of the old one.
    assert_ended(portal, owners, attackers)
    assert_problem(
        portal.challenge(pending, otp=enrolled.app.code(spend=False)),
        401,
        "invalid-challenge-token",
    )
    assert_problem(portal.login(user), 401, "invalid-credentials")
    # A new password is not an MFA reset: the authenticator is still required.
    fresh = code_session(portal, replace(user, password=new_password), enrolled.app)
    assert whoami(portal, fresh)["mfa"] is True
    assert whoami(portal, bystander_session)["contact_id"] == bystander.contact_id


def test_turning_mfa_on_ends_password_only_sessions_and_keeps_verified_ones(
    portal: Portal, other_portal: Portal
) -> None:
    enrolled_user, password_user = portal.prepare("customer", "vendor", policy=True)
    enrolled = portal.enroll(enrolled_user)
    verified = enrolled.session["session_token"]
    portal.set_policy(False)
    verified_later = code_session(portal, enrolled_user, enrolled.app)
    password_only = password_session(portal, password_user)
    [elsewhere] = other_portal.prepare("customer", policy=False)
    other_org_session = password_session(other_portal, elsewhere)

    # The org turns MFA on: a session on the password alone no longer meets its policy.
    portal.set_policy(True)
    assert_ended(portal, password_only)
    assert whoami(portal, verified)["mfa"] is True
    assert whoami(portal, verified_later)["mfa"] is True
    assert whoami(other_portal, other_org_session)["contact_id"] == elsewhere.contact_id

    # Ended, not hidden: turning MFA off again does not bring the old session back.
    portal.set_policy(False)
    assert_ended(portal, password_only)
    assert whoami(portal, password_session(portal, password_user))["mfa"] is False


def test_revoke_then_grant_again_requires_a_new_enrollment_and_explain_agrees(
    portal: Portal,
) -> None:
    [user] = portal.prepare("vendor", policy=True)
    enrolled = portal.enroll(user)
    assert portal.requirement(user.contact_id)["enrolled"] is True

    # Revoking access destroys the enrollment: auth no longer counts the contact enrolled.
    portal.admin("contacts", "revoke-portal-access", user.contact_id)
    after = portal.requirement_now(user.contact_id, requirement="enroll", enrolled=False)
    assert_ended(portal, enrolled.session["session_token"])

    # The audit log's explain folds the same events by the same rule, and agrees.
    def explained() -> dict[str, Any] | None:
        found: dict[str, Any] = portal.stack.cli_json(
            "audit", "explain", "--org", portal.org, "--contact", user.contact_id
        )
        return found if found == {k: after[k] for k in found} else None

    agreed = wait_until(explained, timeout=30, what="audit explain to agree with auth")
    assert (agreed["requirement"], agreed["enrolled"]) == ("enroll", False)

    # Granted again: the new invitation sets a new password, and the old authenticator
    # opens nothing; the contact configures MFA anew, with a new key.
    granted = portal.admin("contacts", "grant-portal-access", user.contact_id)
    new_password = "a-password-after-regrant"
    accept_new_invitation(portal, granted["invitation_token"], new_password)
    regranted = replace(user, password=new_password)
    again = portal.enroll(regranted)
    assert again.app.secret != enrolled.app.secret
    challenge = portal.login_as(regranted, "mfa_required")["challenge_token"]
    assert_problem(portal.challenge(challenge, backup_code=enrolled.backup_codes[0]), 401)
    assert_problem(portal.challenge(challenge, otp=enrolled.app.code(spend=False)), 401)


def test_revoke_clears_the_password_so_a_new_grant_is_no_login_until_accepted(
    portal: Portal,
) -> None:
    [user] = portal.prepare("customer", policy=False)
    session = password_session(portal, user)
    portal.admin("contacts", "revoke-portal-access", user.contact_id)
    granted = portal.admin("contacts", "grant-portal-access", user.contact_id)
    # Auth shows no sign of a grant before it is accepted; a reset after it does (the
    # epoch), and one contact's events apply in order: once auth shows the reset, it
    # has applied the revoke and the grant before it.
    portal.admin("contacts", "reset-mfa", user.contact_id, "--reason", "barrier")
    portal.requirement_now(user.contact_id, mfa_epoch=1)
    assert_ended(portal, session)

    # Access is back, the invitation not yet accepted: the old password opens nothing,
    # and the answer is exactly that for an email nobody has (no oracle).
    old_password = portal.login(user)
    stranger = portal.http.post(
        f"/v1/portals/{portal.org}/login", json={"email": new_email(), "password": user.password}
    )
    assert_problem(old_password, 401, "invalid-credentials")
    assert old_password.json() == assert_problem(stranger, 401, "invalid-credentials")

    # Accepted: the new password logs in (the policy is off, nothing enrolled); the old
    # one never again.
    new_password = "a-password-after-regrant"
    accept_new_invitation(portal, granted["invitation_token"], new_password)
    assert_problem(portal.login(user), 401, "invalid-credentials")
    regranted = replace(user, password=new_password)
    assert whoami(portal, password_session(portal, regranted))["mfa"] is False
