"""What a person does on the portal's pages, step by step, by the labels they read."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from tests.browser.conftest import Screens, Web
from tests.e2e.portal_client import Authenticator


def sign_in(page: Page, web: Web, org: str, email: str, password: str) -> None:
    page.goto(web.portal(org))
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def configure_mfa(page: Page, screens: Screens, label: str) -> tuple[Authenticator, list[str]]:
    """From "Enable MFA for your account" to signed in, as the product page lists it:
    Configure, the QR code (and the key behind "Can't scan?"), Next, a wrong code and the
    right one, Verify, the backup codes, Enable MFA."""
    expect(page.get_by_role("heading", name="Enable MFA for your account")).to_be_visible()
    screens.shot(page, f"{label}-enable-mfa")
    page.get_by_role("button", name="Configure").click()

    expect(page.get_by_role("heading", name="Scan the QR code")).to_be_visible()
    qr = page.get_by_role("img", name=re.compile("QR code"))
    assert (qr.get_attribute("src") or "").startswith("data:image/png;base64,")
    key = page.locator("#secret")
    expect(key).to_be_hidden()  # behind "Can't scan?" until asked for
    page.get_by_text("Can't scan?").click()
    expect(key).to_be_visible()
    screens.shot(page, f"{label}-qr-and-key")
    # The app is set up from the key the page shows, as a person would type it in.
    app = Authenticator(key.inner_text().replace(" ", ""))
    page.get_by_role("link", name="Next").click()

    expect(page.get_by_role("heading", name="Enter the code")).to_be_visible()
    page.get_by_label("Code from your authenticator app").fill(app.wrong_code())
    page.get_by_role("button", name="Verify").click()
    expect(page.get_by_role("alert")).to_contain_text("That code is not right")
    screens.shot(page, f"{label}-wrong-code")
    page.get_by_label("Code from your authenticator app").fill(app.code())
    with page.expect_response(
        lambda r: r.url.endswith("/mfa/verify") and r.request.method == "POST"
    ) as verified:
        page.get_by_role("button", name="Verify").click()
    # A page with backup codes is never kept by a cache.
    assert "no-store" in verified.value.headers.get("cache-control", "")

    expect(page.get_by_role("heading", name="Save your backup codes")).to_be_visible()
    codes = page.locator("#backup-codes li").all_inner_texts()
    assert len(codes) == 10
    assert len(set(codes)) == 10
    with page.expect_download() as download:
        page.get_by_role("button", name="Download").click()
    assert download.value.suggested_filename == "backup-codes.txt"
    screens.shot(page, f"{label}-backup-codes")
    page.get_by_label("I have saved my backup codes").check()
    page.get_by_role("button", name="Enable MFA").click()
    expect(page.get_by_role("status")).to_contain_text("MFA is enabled")
    return app, codes


def answer_with_app(page: Page, app: Authenticator) -> None:
    expect(page.get_by_role("heading", name="Enter your code")).to_be_visible()
    page.get_by_label("Code from your authenticator app").fill(app.code())
    page.get_by_role("button", name="Verify").click()


def expect_signed_in(page: Page, email: str, kind: str) -> None:
    expect(page.get_by_role("heading", name="Welcome")).to_be_visible()
    expect(page.locator("#signed-in-as")).to_contain_text(email)
    expect(page.locator("#signed-in-as")).to_contain_text(kind)


def sign_out(page: Page) -> None:
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("status")).to_contain_text("You are signed out")
