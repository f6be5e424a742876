"""Who is signed in to the console, sealed in an `HttpOnly`, `SameSite=Strict` cookie.

Two ways in. Outside dev, the host product's identity provider hands the admin an
assertion, which the console verifies like the services do and keeps until it expires:
it authorizes the reads, and one change (a command spends its assertion, §11). In dev,
a sign-in page names the admin and the console mints a fresh assertion per read and per
command from the dev stack's issuer, as the CLI does there.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

from fastapi import Request, Response

from frontends.common.sealed import CookieSealer
from frontends.common.web import new_csrf
from portal_mfa.admin_credentials import AdminCredentials, DevIssuer, GivenToken
from shared.admin_identity import EVERY_ORG, AssertionIssuer

COOKIE = "console_session"
PURPOSE = "console-session"
DEV_LIFETIME_S = 8 * 60 * 60


@dataclass
class AdminSession:
    sub: str
    org: str
    mode: Literal["dev", "assertion"]
    token: str = field(default="", repr=False)
    expires_at: int = 0
    # The org the console opens on: the assertion's, or the one an operator (org *) named.
    home: str = ""
    csrf: str = field(default_factory=new_csrf)
    notice: str = ""

    def may_act_on(self, org: str) -> bool:
        return self.org in (EVERY_ORG, org)

    def credentials(self, issuer: AssertionIssuer | None) -> AdminCredentials | None:
        if self.mode == "assertion":
            return GivenToken(self.token)
        return DevIssuer(issuer, self.sub) if issuer is not None else None

    def take_notice(self) -> str:
        notice, self.notice = self.notice, ""
        return notice


def load(request: Request, sealer: CookieSealer) -> AdminSession | None:
    value = sealer.open(request.cookies.get(COOKIE), purpose=PURPOSE)
    if value is None:
        return None
    value.pop("exp", None)
    try:
        return AdminSession(**value)
    except TypeError:
        return None


def store(
    response: Response, sealer: CookieSealer, session: AdminSession, *, secure: bool, now: int
) -> None:
    lifetime = DEV_LIFETIME_S if session.mode == "dev" else max(1, session.expires_at - now)
    response.set_cookie(
        COOKIE,
        sealer.seal(asdict(session), purpose=PURPOSE, lifetime_s=lifetime),
        max_age=lifetime,
        path="/",
        httponly=True,
        secure=secure,
        samesite="strict",
    )


def forget(response: Response, *, secure: bool) -> None:
    response.delete_cookie(COOKIE, path="/", httponly=True, secure=secure, samesite="strict")
