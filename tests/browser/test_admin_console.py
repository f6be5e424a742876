"""The admin console in Chromium: Settings → Customer Portal, Customers and Vendors, a
contact's Details with its gear menu — and what the contacts meet at the portal after.

The console publishes the CLI's commands to Kafka and reads the services over HTTP; the
checks look at what the portal and auth do afterwards, not at the console's own words.
"""

from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import Screens, Web
from tests.browser.steps import (
    answer_with_app,
    configure_mfa,
    expect_signed_in,
    sign_in,
    sign_out,
)
from tests.dev_stack import RunningStack
from tests.e2e.portal_client import Portal

pytestmark = pytest.mark.browser
ADMIN = "browser-admin"


def admin_signs_in(web: Web, org: str) -> Page:
    page = web.person()
    page.goto(web.console("/signin"))
    page.get_by_label("Your name").fill(ADMIN)
    page.get_by_label("Organization", exact=True).fill(org)
    page.get_by_role("button", name="Sign in").first.click()
    expect(page.get_by_role("heading", name="Customer Portal")).to_be_visible()
    return page


def reload_until(page: Page, selector: str, text: str, within_s: float = 10.0) -> None:
    """Changes reach auth and audit over Kafka: reload until the page shows this one."""
    deadline = time.monotonic() + within_s
    while text not in page.locator(selector).inner_text():
        if time.monotonic() > deadline:
            raise AssertionError(f"{selector} never showed {text!r}")
        time.sleep(0.2)
        page.reload()


def test_admin_enables_mfa_then_resets_a_contact_who_configures_it_again(
    portal: Portal, web: Web, screens: Screens
) -> None:
    customer, vendor = portal.prepare("customer", "vendor", policy=False)
    admin = admin_signs_in(web, portal.org)

    # Settings → Customer Portal: unchecked, and what checking it would mean.
    box = admin.get_by_label("Enable multi-factor authentication (MFA)")
    expect(box).not_to_be_checked()
    expect(admin.locator("#impact")).to_contain_text(
        "2 of 2 contacts with portal access will be asked to configure MFA"
    )
    screens.shot(admin, "settings-before")
    box.check()
    admin.get_by_role("button", name="Save").click()
    expect(admin.get_by_role("status")).to_contain_text("Saved. MFA is enabled")
    expect(admin.get_by_label("Enable multi-factor authentication (MFA)")).to_be_checked()
    portal.wait_requirement(customer.contact_id, policy_enabled=True, requirement="enroll")

    # The customer is asked to configure MFA at the portal, and does.
    contact = web.person()
    sign_in(contact, web, portal.org, customer.email, customer.password)
    configure_mfa(contact, screens, "customer")
    expect_signed_in(contact, customer.email, "customer")

    # The lists say who has configured MFA; the settings page, what disabling would mean.
    admin.get_by_role("link", name="Customers", exact=True).click()
    row = admin.get_by_role("row", name=re.compile(re.escape(customer.email)))
    expect(row).to_contain_text("Configured")
    screens.shot(admin, "customers")
    admin.get_by_role("link", name="Vendors", exact=True).click()
    expect(admin.get_by_role("row", name=re.compile(re.escape(vendor.email)))).to_contain_text(
        "Not configured: asked at next sign-in"
    )
    admin.get_by_role("link", name="Settings → Customer Portal").click()
    expect(admin.locator("#impact")).to_contain_text(
        "1 of 2 contacts with portal access have configured MFA: they will still need"
    )
    screens.shot(admin, "settings-enabled")

    # The customer signs out and back in: at the code step when the admin resets them.
    sign_out(contact)
    sign_in(contact, web, portal.org, customer.email, customer.password)
    expect(contact.get_by_role("heading", name="Enter your code")).to_be_visible()

    admin.get_by_role("link", name="Customers", exact=True).click()
    admin.get_by_role("link", name=re.compile("A customer")).click()
    expect(admin.locator("#contact-email")).to_have_text(customer.email)
    admin.get_by_title("Actions").click()  # the gear
    screens.shot(admin, "details-gear-menu")
    admin.get_by_role("link", name="Reset Portal MFA").click()
    admin.get_by_label("Reason").fill("lost phone")
    screens.shot(admin, "reset-confirm")
    admin.get_by_role("button", name="Reset Portal MFA").click()
    expect(admin.get_by_role("status")).to_contain_text("Portal MFA was reset")
    reload_until(admin, "#requirement", "configuring MFA first")
    expect(admin.locator("#history")).to_contain_text("MfaReset")
    expect(admin.locator("#history")).to_contain_text(ADMIN)
    expect(admin.locator("#decided-by")).to_contain_text("MfaReset")
    screens.shot(admin, "details-after-reset")

    # The code step the customer was at is gone: the page says so, and sends them back.
    portal.wait_requirement(customer.contact_id, enrolled=False, requirement="enroll")
    contact.get_by_label("Code from your authenticator app").fill("123456")
    contact.get_by_role("button", name="Verify").click()
    expect(contact.get_by_role("status")).to_contain_text("expired")
    screens.shot(contact, "customer-step-expired")
    # And they are sent through configuration again.
    sign_in(contact, web, portal.org, customer.email, customer.password)
    app, _ = configure_mfa(contact, screens, "customer-again")
    expect_signed_in(contact, customer.email, "customer")
    sign_out(contact)
    sign_in(contact, web, portal.org, customer.email, customer.password)
    answer_with_app(contact, app)
    expect_signed_in(contact, customer.email, "customer")


def test_admin_adds_a_vendor_and_invites_them_with_a_link(
    portal: Portal, web: Web, screens: Screens
) -> None:
    admin = admin_signs_in(web, portal.org)
    email = f"vera-{portal.org}@example.com"
    admin.get_by_role("link", name="Vendors", exact=True).click()
    admin.get_by_label("Name").fill("Vera Vendor")
    admin.get_by_label("Email").fill(email)
    admin.get_by_role("button", name="Add").click()
    expect(admin.get_by_role("heading", name="Vera Vendor")).to_be_visible()
    expect(admin.locator("#portal-access")).to_have_text("No")

    admin.get_by_title("Actions").click()
    admin.get_by_role("button", name="Grant portal access").click()
    link = admin.get_by_label("Invitation link").input_value()
    assert link.startswith(web.portal(portal.org, "/invitation?token="))
    screens.shot(admin, "invitation")

    vendor = web.person(phone=True)
    vendor.goto(link)
    vendor.get_by_label("New password", exact=True).fill("vendor-password-1")
    vendor.get_by_label("New password again").fill("vendor-password-1")
    # The grant reaches auth over Kafka: the first try may find the invitation unknown yet.
    deadline = time.monotonic() + 10
    while True:
        vendor.get_by_role("button", name="Set password").click()
        if vendor.get_by_role("heading", name="Sign in").count():
            break
        assert time.monotonic() < deadline, vendor.locator("main").inner_text()
        vendor.get_by_label("New password", exact=True).fill("vendor-password-1")
        vendor.get_by_label("New password again").fill("vendor-password-1")
        time.sleep(0.2)
    # MFA is off for this org: the password alone signs in.
    sign_in(vendor, web, portal.org, email, "vendor-password-1")
    expect_signed_in(vendor, email, "vendor")

    # Revoked: the vendor's session ends and the password no longer signs in.
    admin.get_by_role("link", name="Back to the contact").click()
    expect(admin.locator("#portal-access")).to_have_text("Yes")
    admin.get_by_title("Actions").click()
    admin.get_by_role("button", name="Revoke portal access").click()
    expect(admin.get_by_role("status")).to_contain_text("Portal access revoked")
    deadline = time.monotonic() + 10
    while vendor.get_by_role("heading", name="Welcome").count():
        assert time.monotonic() < deadline, "the revoked vendor is still signed in"
        time.sleep(0.2)
        vendor.reload()
    expect(vendor.get_by_role("status")).to_contain_text("session has ended")


def test_the_console_shows_one_org_to_its_admin(portal: Portal, web: Web) -> None:
    admin = admin_signs_in(web, portal.org)
    answer = admin.goto(web.console("/orgs/some-other-org/customers"))
    assert answer is not None
    assert answer.status == 403
    expect(admin.get_by_role("alert")).to_contain_text("not some-other-org")
    # Signed out, nothing of the org is shown.
    admin.goto(web.console(f"/orgs/{portal.org}/settings/customer-portal"))
    admin.get_by_role("button", name="Sign out").click()
    admin.goto(web.console(f"/orgs/{portal.org}/customers"))
    expect(admin.get_by_role("heading", name="Sign in (dev stack)")).to_be_visible()


def test_an_admin_signs_in_with_the_products_assertion_which_authorizes_one_change(
    portal: Portal, web: Web, stack: RunningStack
) -> None:
    """Outside dev the console holds the assertion the identity provider issued: it reads
    with it until it expires, and a change spends it (each command is authorized once)."""
    [customer] = portal.prepare("customer", policy=False)
    page = web.person()
    page.goto(web.console("/signin"))
    page.get_by_label("Admin assertion").fill("not-a-token")
    page.get_by_role("button", name="Sign in").last.click()
    expect(page.get_by_role("alert")).to_contain_text("Not signed in")

    other_org = stack.issuer().mint(sub="idp-admin", org="another-org", scope="admin").token
    page.get_by_label("Admin assertion").fill(other_org)
    page.get_by_role("button", name="Sign in").last.click()
    page.goto(web.console(f"/orgs/{portal.org}/settings/customer-portal"))
    expect(page.get_by_role("alert")).to_contain_text("not " + portal.org)

    minted = stack.issuer().mint(sub="idp-admin", org=portal.org, scope="admin").token
    page.goto(web.console("/signin"))
    page.get_by_label("Admin assertion").fill(minted)
    page.get_by_role("button", name="Sign in").last.click()
    expect(page.get_by_role("heading", name="Customer Portal")).to_be_visible()
    expect(page.get_by_text("idp-admin")).to_be_visible()
    page.get_by_label("Enable multi-factor authentication (MFA)").check()
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_contain_text("Saved. MFA is enabled")
    portal.wait_requirement(customer.contact_id, policy_enabled=True)

    # The same assertion cannot send a second command: refused, and nothing changes.
    page.get_by_label("Enable multi-factor authentication (MFA)").uncheck()
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("alert")).to_contain_text("Refused")
    assert portal.admin("mfa", "status")["mfa_enabled"] is True
