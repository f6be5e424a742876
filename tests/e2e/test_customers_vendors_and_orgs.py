"""Portal login with MFA, end to end: one switch covers customers and vendors alike; orgs are
separate.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pyotp
import pytest

from tests.dev_stack import RunningStack
from tests.e2e.portal_client import (
    ENABLE,
    START,
    VERIFY,
    Authenticator,
    Portal,
    authenticated,
    new_email,
    whoami,
)

pytestmark = pytest.mark.e2e


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
    requirement = portal.requirement_now(user.contact_id, known=True)
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
    requirement = other_portal.requirement_now(user_b.contact_id, known=True)
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
