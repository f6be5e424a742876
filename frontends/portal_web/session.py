"""The portal's session cookie: which step of signing in this browser is at, for one org.

It holds auth's one-time token for the current step (enrollment or challenge, 10 minutes)
or the session token once signed in, the email typed at login (to say who is signed in),
and the CSRF token its forms carry. Sealed (frontends.common.sealed), `HttpOnly`, scoped
to the org's path, `Secure` outside dev.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

from fastapi import Request, Response

from frontends.common.sealed import CookieSealer
from frontends.common.web import new_csrf

Stage = Literal["anonymous", "enroll", "challenge", "signed_in"]
COOKIE = "portal_session"
STEP_LIFETIME_S = 10 * 60  # auth's enrollment and challenge tokens live 10 minutes
ANONYMOUS_LIFETIME_S = 60 * 60
SIGNED_IN_LIFETIME_S = 8 * 60 * 60  # auth's session expiry decides earlier if it is earlier


@dataclass
class PortalSession:
    org: str
    csrf: str = field(default_factory=new_csrf)
    stage: Stage = "anonymous"
    token: str = field(default="", repr=False)
    email: str = ""
    verified: bool = False
    notice: str = ""

    def restart(self, notice: str = "") -> None:
        """Back to the login form, holding nothing of the old step."""
        self.stage, self.token, self.email, self.verified = "anonymous", "", "", False
        self.csrf = new_csrf()
        self.notice = notice

    def take_notice(self) -> str:
        notice, self.notice = self.notice, ""
        return notice


def _purpose(org: str) -> str:
    # A cookie sealed for one org's portal does not open for another's.
    return f"portal-session:{org}"


def load(request: Request, sealer: CookieSealer, org: str) -> PortalSession:
    value = sealer.open(request.cookies.get(COOKIE), purpose=_purpose(org))
    if value is None or value.get("org") != org:
        return PortalSession(org)
    value.pop("exp", None)
    try:
        return PortalSession(**value)
    except TypeError:
        return PortalSession(org)


def store(
    response: Response, sealer: CookieSealer, session: PortalSession, *, secure: bool
) -> None:
    lifetime = {
        "anonymous": ANONYMOUS_LIFETIME_S,
        "enroll": STEP_LIFETIME_S,
        "challenge": STEP_LIFETIME_S,
        "signed_in": SIGNED_IN_LIFETIME_S,
    }[session.stage]
    response.set_cookie(
        COOKIE,
        sealer.seal(asdict(session), purpose=_purpose(session.org), lifetime_s=lifetime),
        max_age=lifetime,
        path=f"/portals/{session.org}",
        httponly=True,
        secure=secure,
        # Lax: a link to the portal (an invitation) arrives signed in as it left; a form
        # posted from elsewhere does not carry the cookie (and lacks the CSRF token anyway).
        samesite="lax",
    )
