"""The two web frontends in-process (no stack, no network): the headers every page
carries, the session cookie's flags and seal, CSRF, and the templates' promise of no
inline script. Their walk against the running system is in tests/browser."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from httpx import Response

from frontends.admin_web.app import create_app as create_console
from frontends.common.sealed import CookieSealer, sealer_from
from frontends.common.web import CSP
from frontends.portal_web.app import create_app as create_portal
from frontends.portal_web.auth_api import Refused
from frontends.portal_web.messages import explain, when_to_retry
from portal_mfa.mfa_impact import preview
from shared.admin_identity import AssertionIssuer
from shared.settings import Settings, SettingsError

ROOT = Path(__file__).resolve().parents[2]
KEY = base64.b64encode(bytes(range(32))).decode()
# No test here lets a request reach auth: the refusals happen before any call.
NO_AUTH = "http://127.0.0.1:9"


def portal(profile: str = "dev") -> TestClient:
    settings = Settings(profile=profile, auth_url=NO_AUTH, web_cookie_key=KEY)  # type: ignore[call-arg,arg-type]
    return TestClient(create_portal(settings), base_url="http://portal.test")


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html
    return found.group(1)


def test_every_page_has_the_strict_csp_and_is_never_cached() -> None:
    client = portal()
    for path in ("/", "/portals/acme/login", "/portals/acme/invitation?token=x"):
        answer = client.get(path)
        assert answer.status_code == 200, path
        assert answer.headers["content-security-policy"] == CSP
        assert "script-src 'self'" in CSP and "unsafe-inline" not in CSP
        assert answer.headers["cache-control"] == "no-store"
        assert answer.headers["x-frame-options"] == "DENY"
        assert '<meta name="viewport"' in answer.text


def test_templates_carry_no_inline_script_style_or_handler() -> None:
    templates = sorted((ROOT / "frontends").rglob("templates/*.html"))
    assert len(templates) > 15
    for template in templates:
        text = template.read_text()
        assert not re.search(r"<script(?![^>]*\bsrc=)", text), template
        assert not re.search(r"\sstyle=", text), template
        assert not re.search(r"\son[a-z]+=", text), template


def test_the_session_cookie_is_httponly_samesite_and_scoped_to_the_org() -> None:
    cookie = portal().get("/portals/acme/login").headers["set-cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie
    assert "Path=/portals/acme" in cookie
    assert "Secure" not in cookie  # dev serves plain http on loopback
    production = portal("production").get("/portals/acme/login").headers["set-cookie"]
    assert "Secure" in production


def test_a_post_without_the_forms_token_reaches_nothing() -> None:
    client = portal()
    client.get("/portals/acme/login")
    answer = client.post(
        "/portals/acme/login",
        data={"email": "a@example.com", "password": "pw", "csrf": "guessed"},
        follow_redirects=False,
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == "/portals/acme/login"
    assert "form had expired" in client.get("/portals/acme/login").text


def test_a_post_with_the_token_from_another_site_is_refused() -> None:
    client = portal()
    token = csrf_of(client.get("/portals/acme/login").text)
    answer = client.post(
        "/portals/acme/login",
        data={"email": "a@example.com", "password": "pw", "csrf": token},
        headers={"Sec-Fetch-Site": "cross-site"},
        follow_redirects=False,
    )
    assert answer.status_code == 303


def test_a_step_page_without_a_session_sends_to_login() -> None:
    client = portal()
    for path in ("/portals/acme/mfa/scan", "/portals/acme/challenge", "/portals/acme/"):
        answer = client.get(path, follow_redirects=False)
        assert answer.status_code == 303, path
        assert answer.headers["location"] == "/portals/acme/login"


def test_a_cookie_sealed_for_one_org_or_tampered_with_does_not_open() -> None:
    sealer = CookieSealer(bytes(range(32)))
    sealed = sealer.seal({"org": "acme"}, purpose="portal-session:acme", lifetime_s=60)
    assert sealer.open(sealed, purpose="portal-session:acme") is not None
    assert sealer.open(sealed, purpose="portal-session:other") is None
    flipped = sealed[:-2] + ("A" if sealed[-2] != "A" else "B") + sealed[-1]
    assert sealer.open(flipped, purpose="portal-session:acme") is None
    expired = sealer.seal({"org": "acme"}, purpose="portal-session:acme", lifetime_s=-1)
    assert sealer.open(expired, purpose="portal-session:acme") is None
    assert sealer.open("not a cookie", purpose="portal-session:acme") is None


def test_outside_dev_the_cookie_key_is_required() -> None:
    with pytest.raises(SettingsError, match="PORTAL_MFA_WEB_COOKIE_KEY"):
        sealer_from(Settings(profile="production"))  # type: ignore[call-arg]
    with pytest.raises(SettingsError, match="base64"):
        sealer_from(Settings(profile="production", web_cookie_key="short"))  # type: ignore[call-arg,arg-type]


def test_refusals_become_sentences() -> None:
    assert "Try again in about 5 minutes" in explain(
        Refused(429, "locked-out", "x", retry_after_s=300), step="challenge"
    )
    assert "Try again later" in explain(Refused(429, "locked-out", "x"), step="challenge")
    assert "expired" in explain(Refused(401, "invalid-challenge-token", "x"), step="challenge")
    assert "backup code" in explain(Refused(401, "wrong-code", "x"), step="backup")
    assert when_to_retry(30).startswith("Try again in about 1 minute ")


def test_the_impact_preview_counts_by_the_login_rule() -> None:
    contacts = [
        {"contact_id": "a", "portal_access": True},
        {"contact_id": "b", "portal_access": True},
        {"contact_id": "c", "portal_access": True},
        {"contact_id": "d", "portal_access": False},  # cannot sign in: not counted
    ]
    requirements = {
        "a": {"enrolled": True, "complete": True},
        "b": {"enrolled": False, "complete": True},
        "c": {"enrolled": False, "complete": False},  # auth cannot decide yet
    }
    off = preview(
        "acme", mfa_enabled_now=True, would_be=False, contacts=contacts, requirements=requirements
    )
    assert (off.enrolled_still_need_totp, off.will_be_asked_to_configure, off.undecided) == (
        1,
        0,
        1,
    )
    on = preview(
        "acme", mfa_enabled_now=False, would_be=True, contacts=contacts, requirements=requirements
    )
    assert (on.enrolled_still_need_totp, on.will_be_asked_to_configure) == (1, 1)
    assert on.contacts_with_portal_access == 3
    assert "1 of 3 contacts with portal access will be asked" in " ".join(on.sentences())


# --- the admin console's sign-in (no reads: every check here refuses before one) ---------


def console() -> tuple[TestClient, AssertionIssuer]:
    issuer = AssertionIssuer.generate(key_id="idp-1", issuer="https://idp.test")
    settings = Settings(  # type: ignore[call-arg]
        profile="production",
        web_cookie_key=KEY,  # type: ignore[arg-type]
        admin_issuer_keys=issuer.trusted_key_entry,
        admin_issuer="https://idp.test",
        auth_url=NO_AUTH,
        preferences_url=NO_AUTH,
        contacts_url=NO_AUTH,
        audit_url=NO_AUTH,
    )
    return TestClient(create_console(settings), base_url="https://console.test"), issuer


def sign_in_with(client: TestClient, assertion: str, org: str = "") -> Response:
    return client.post(
        "/signin/assertion", data={"assertion": assertion, "org": org}, follow_redirects=False
    )


def test_the_console_signs_in_with_a_valid_assertion_only() -> None:
    client, issuer = console()
    assert "Not signed in" in sign_in_with(client, "garbage").text
    stranger = AssertionIssuer.generate(key_id="idp-1", issuer="https://idp.test")
    forged = stranger.mint(sub="mallory", org="acme").token
    assert sign_in_with(client, forged).status_code == 401
    for_a_command = issuer.mint(sub="alice", org="acme", cmd="0" * 64).token
    assert sign_in_with(client, for_a_command).status_code == 401
    operator = issuer.mint(sub="op", org="*").token
    assert "needs the org" in sign_in_with(client, operator).text
    # No dev sign-in outside dev, whatever the form says.
    answer = client.post("/signin/dev", data={"admin": "alice", "org": "acme"})
    assert answer.status_code == 403

    signed = sign_in_with(client, issuer.mint(sub="alice", org="acme").token)
    assert signed.status_code == 303
    assert signed.headers["location"] == "/orgs/acme/settings/customer-portal"
    cookie = signed.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Secure" in cookie


def test_the_console_shows_nothing_without_a_session_or_for_another_org() -> None:
    client, issuer = console()
    answer = client.get("/orgs/acme/customers", follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/signin"
    sign_in_with(client, issuer.mint(sub="alice", org="acme").token)
    other = client.get("/orgs/globex/customers", follow_redirects=False)
    assert other.status_code == 403
    assert "not globex" in other.text
