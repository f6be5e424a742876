"""A customer and a vendor at the portal in Chromium, page by page as the product page
describes it; then the backup code, a reused one, and the lockout.

The admin side is set up through the CLI (tests/e2e's Portal); everything the contact
does is clicks and typing in the browser, with codes computed (pyotp) from the key the
page shows behind "Can't scan?".
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import Screens, Web
from tests.browser.steps import (
    answer_with_app,
    configure_mfa,
    expect_signed_in,
    sign_in,
    sign_out,
)
from tests.e2e.portal_client import Authenticator, Portal

pytestmark = pytest.mark.browser


@pytest.mark.parametrize("kind", ["customer", "vendor"])
def test_a_contact_configures_mfa_at_login_then_signs_in_with_a_code(
    kind: str, portal: Portal, web: Web, screens: Screens
) -> None:
    [user] = portal.prepare(kind, policy=True, portal_name="Acme Portal")
    page = web.person(phone=kind == "vendor")  # the vendor is on a phone

    sign_in(page, web, portal.org, user.email, user.password)
    app, _ = configure_mfa(page, screens, kind)
    expect_signed_in(page, user.email, kind)
    screens.shot(page, f"{kind}-signed-in")
    # The session is real: auth says the contact is now enrolled.
    portal.wait_requirement(user.contact_id, enrolled=True, requirement="totp")

    cookie = next(c for c in page.context.cookies() if c["name"] == "portal_session")
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Lax"
    assert cookie["path"] == f"/portals/{portal.org}"
    assert user.password not in cookie["value"]

    sign_out(page)
    # Signed out means the session is gone at auth too: the old page no longer opens.
    page.goto(web.portal(portal.org, "/"))
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()

    sign_in(page, web, portal.org, user.email, user.password)
    expect(page.get_by_role("heading", name="Enter your code")).to_be_visible()
    screens.shot(page, f"{kind}-challenge")
    answer_with_app(page, app)
    expect_signed_in(page, user.email, kind)
    assert page.console_errors == []  # type: ignore[attr-defined]


def test_a_backup_code_signs_in_once_and_wrong_codes_lock_the_account(
    portal: Portal, web: Web, screens: Screens
) -> None:
    [user] = portal.prepare("customer", policy=True)
    enrolled = portal.enroll(user)  # configured earlier (through the API)
    page = web.person()

    sign_in(page, web, portal.org, user.email, "not-the-password")
    expect(page.get_by_role("alert")).to_have_text("Email or password is wrong.")

    sign_in(page, web, portal.org, user.email, user.password)
    expect(page.get_by_role("heading", name="Enter your code")).to_be_visible()
    page.get_by_role("link", name="Use a backup code").click()
    page.get_by_label("Backup code").fill(enrolled.backup_codes[0])
    screens.shot(page, "backup-code")
    page.get_by_role("button", name="Verify").click()
    expect_signed_in(page, user.email, "customer")
    expect(page.get_by_role("status")).to_contain_text("9 backup codes left")
    sign_out(page)

    # The same backup code again: refused, and it counts as a failed attempt.
    sign_in(page, web, portal.org, user.email, user.password)
    page.get_by_role("link", name="Use a backup code").click()
    page.get_by_label("Backup code").fill(enrolled.backup_codes[0])
    page.get_by_role("button", name="Verify").click()
    expect(page.get_by_role("alert")).to_contain_text("wrong or was already used")
    screens.shot(page, "backup-code-reused")

    # Wrong codes from the app until the account locks (5 failures in a row).
    page.get_by_role("link", name="Use the code from your app").click()
    for _ in range(6):
        page.get_by_label("Code from your authenticator app").fill(enrolled.app.wrong_code())
        page.get_by_role("button", name="Verify").click()
        if "locked" in page.get_by_role("alert").inner_text():
            break
    expect(page.get_by_role("alert")).to_contain_text("locked")
    # auth's Retry-After for a first lock (5 minutes), in the person's words.
    expect(page.get_by_role("alert")).to_contain_text("Try again in about 5 minutes (after")
    screens.shot(page, "locked-out")

    # Locked means locked: even the right code does not get in now.
    page.get_by_label("Code from your authenticator app").fill(enrolled.app.code(spend=False))
    page.get_by_role("button", name="Verify").click()
    expect(page.get_by_role("alert")).to_contain_text("locked")
    page.goto(web.portal(portal.org, "/"))
    expect(page.get_by_role("heading", name="Welcome")).to_have_count(0)


def test_a_form_from_another_site_changes_nothing(portal: Portal, web: Web) -> None:
    """A page elsewhere posts the login form into the portal with the victim's cookie:
    without the form's CSRF token (and from another origin) nothing reaches auth."""
    [user] = portal.prepare("customer", policy=False)
    page = web.person()
    page.goto(web.portal(portal.org))  # the victim has a portal cookie
    attacker = (
        "<form id=f method=post action='" + web.portal(portal.org) + "'>"
        f"<input name=email value='{user.email}'><input name=password value='{user.password}'>"
        "</form><script>document.getElementById('f').submit()</script>"
    )
    # Served by the browser itself (the network is closed): another site's page.
    page.route(
        "http://attacker.test/",
        lambda route: route.fulfill(body=attacker, content_type="text/html"),
    )
    page.goto("http://attacker.test/")
    page.wait_for_url(web.portal(portal.org))
    expect(page.get_by_role("status")).to_contain_text("form had expired")
    page.goto(web.portal(portal.org, "/"))
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()


def test_the_enrollment_pages_work_from_the_keyboard_alone(
    portal: Portal, web: Web, screens: Screens
) -> None:
    """Focus order follows the page, every control is reachable with Tab, and Enter or
    Space works it: no step needs a mouse."""
    [user] = portal.prepare("vendor", policy=True)
    page = web.person(phone=True)
    page.goto(web.portal(portal.org))
    keys = page.keyboard
    # The email field has the focus on arrival (waited for: keys typed before the page
    # has focused it are lost); the password is next, then the button.
    expect(page.get_by_label("Email")).to_be_focused()
    keys.type(user.email)
    keys.press("Tab")
    keys.type(user.password)
    keys.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Sign in"
    keys.press("Enter")
    expect(page.get_by_role("heading", name="Enable MFA for your account")).to_be_visible()

    def tab_to(text: str) -> None:
        for _ in range(10):
            keys.press("Tab")
            if page.evaluate("document.activeElement.textContent.trim()") == text:
                return
        raise AssertionError(f"Tab never reached {text!r}")

    tab_to("Configure")
    keys.press("Enter")
    expect(page.get_by_role("heading", name="Scan the QR code")).to_be_visible()
    tab_to("Can't scan?")
    keys.press("Enter")
    expect(page.locator("#secret")).to_be_visible()
    app = Authenticator(page.locator("#secret").inner_text().replace(" ", ""))
    tab_to("Next")
    keys.press("Enter")
    expect(page.get_by_role("heading", name="Enter the code")).to_be_visible()
    expect(page.locator("input:focus")).to_have_count(1)  # the code field has the focus
    keys.type(app.code())
    keys.press("Enter")
    expect(page.get_by_role("heading", name="Save your backup codes")).to_be_visible()
    # Past the codes and their Copy and Download buttons to the confirmation box.
    for _ in range(10):
        keys.press("Tab")
        if page.evaluate("document.activeElement.id") == "saved":
            break
    keys.press("Space")
    expect(page.get_by_label("I have saved my backup codes")).to_be_checked()
    tab_to("Enable MFA")
    keys.press("Enter")
    expect_signed_in(page, user.email, "vendor")
    screens.shot(page, "vendor-signed-in-by-keyboard")
