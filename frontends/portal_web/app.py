"""The portal's pages, in the order a customer or vendor meets them (the product page):
Login → *Enable MFA for your account* (**Configure**) → QR code and "Can't scan?" key
(**Next**) → the code (**Verify**) → backup codes, shown once (**Enable MFA**) → signed in;
or, once configured, Login → the code or "Use a backup code" → signed in.

Every step is a call to auth's HTTP API; this app decides nothing about who may sign in.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, Form, Request, Response
from fastapi.responses import HTMLResponse

from frontends.common.pages import Pages
from frontends.common.sealed import sealer_from
from frontends.common.web import Answered, csrf_ok, frontend_app, templates_for
from frontends.portal_web import messages
from frontends.portal_web.auth_api import AuthApi, Refused, Unreachable, forwarding
from frontends.portal_web.session import PortalSession, load, store
from shared.http.path_params import OrgId
from shared.observability.http import observe
from shared.settings import Settings, auth_url

HERE = Path(__file__).parent
PRODUCT = "Customer Portal"
Text = Annotated[str, Form(max_length=1024)]


def create_app(settings: Settings) -> FastAPI:
    sealer = sealer_from(settings)
    secure = settings.profile != "dev"
    templates = templates_for(HERE)
    api = AuthApi(auth_url(settings))

    app = frontend_app("Portal", HERE, on_stop=api.close)

    @app.middleware("http")
    async def _forward_client(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        with forwarding(request.scope):
            return await call_next(request)

    # Request ids, the access log, the HTTP histogram, spans and /metrics, as the services;
    # not shared.http.hardening: these pages keep their own headers (frontends.common.web).
    observe(app, "portal-web")

    def frame(session: PortalSession, _: dict[str, Any]) -> dict[str, Any]:
        return {
            "product": PRODUCT,
            "org": session.org,
            "csrf": session.csrf,
            "notice": session.take_notice(),
        }

    def keep(response: Response, session: PortalSession) -> None:
        store(response, sealer, session, secure=secure)

    pages = Pages[PortalSession](templates, frame, keep)
    page = pages.page

    def go(session: PortalSession, where: str) -> Response:
        """To `where` in this org's portal."""
        return pages.go(session, f"/portals/{session.org}{where}")

    def restart(session: PortalSession, notice: str) -> Response:
        session.restart(notice)
        return go(session, "/login")

    def unforged(request: Request, session: PortalSession, given: str) -> None:
        """A form without this session's token (stale tab, or another site): nothing done."""
        if not csrf_ok(request, session.csrf, given):
            session.notice = "That form had expired. Please try again."
            where = "/login" if session.stage == "anonymous" else _home_of(session)
            raise Answered(go(session, where))

    def failed_page(
        request: Request,
        session: PortalSession,
        failed: Refused | Unreachable,
        template: str,
        step: str,
        **context: Any,
    ) -> Response:
        """The step's page again, saying why auth did not do it, or could not be asked."""
        if isinstance(failed, Unreachable):
            return page(
                request, session, template, status=503, error=messages.UNREACHABLE, **context
            )
        error = messages.explain(failed, step=step)
        return page(request, session, template, status=failed.status, error=error, **context)

    @app.get("/", response_class=HTMLResponse)
    async def index(request: Request) -> Response:
        return templates.TemplateResponse(
            request, "index.html", {"product": PRODUCT, "title": "Portal"}
        )

    # --- login ------------------------------------------------------------------------------

    @app.get("/portals/{org_id}/login")
    async def login_form(request: Request, org_id: OrgId) -> Response:
        session = load(request, sealer, org_id)
        if session.stage != "anonymous":
            return go(session, _home_of(session))
        return page(request, session, "login.html", title="Sign in")

    @app.post("/portals/{org_id}/login")
    async def login(
        request: Request,
        org_id: OrgId,
        email: Annotated[str, Form(max_length=320)] = "",
        password: Text = "",
        csrf: Text = "",
    ) -> Response:
        session = load(request, sealer, org_id)
        unforged(request, session, csrf)
        try:
            answer = await api.login(org_id, email.strip(), password)
        except (Refused, Unreachable) as failed:
            return failed_page(
                request, session, failed, "login.html", "login", title="Sign in", email=email
            )
        session.email = email.strip()
        if answer["status"] == "mfa_enrollment_required":
            session.stage, session.token, session.verified = (
                "enroll",
                answer["enrollment_token"],
                False,
            )
            return go(session, "/mfa/enable")
        if answer["status"] == "mfa_required":
            session.stage, session.token = "challenge", answer["challenge_token"]
            return go(session, "/challenge")
        session.stage, session.token = "signed_in", answer["session_token"]
        return go(session, "/")

    # --- enrollment: Configure, QR / key, Next, Verify, backup codes, Enable MFA -------------

    def enrolling(request: Request, org_id: str) -> PortalSession:
        session = load(request, sealer, org_id)
        if session.stage != "enroll":
            if session.stage == "anonymous":
                raise Answered(restart(session, messages.EXPIRED))
            raise Answered(go(session, _home_of(session)))
        return session

    def enrollment_failed(
        request: Request,
        session: PortalSession,
        failed: Refused | Unreachable,
        template: str,
        **context: Any,
    ) -> Response:
        if isinstance(failed, Refused):
            if failed.kind in messages.EXPIRED_KINDS:
                return restart(session, messages.explain(failed, step="verify"))
            if failed.kind == "enrollment-not-started":
                return go(session, "/mfa/enable")
        return failed_page(request, session, failed, template, "verify", **context)

    @app.get("/portals/{org_id}/mfa/enable")
    async def enable_intro(request: Request, org_id: OrgId) -> Response:
        session = enrolling(request, org_id)
        return page(request, session, "enable.html", title="Enable MFA for your account")

    @app.post("/portals/{org_id}/mfa/configure")
    async def configure(request: Request, org_id: OrgId, csrf: Text = "") -> Response:
        session = enrolling(request, org_id)
        unforged(request, session, csrf)
        return go(session, "/mfa/scan")

    @app.get("/portals/{org_id}/mfa/scan")
    async def scan(request: Request, org_id: OrgId) -> Response:
        session = enrolling(request, org_id)
        try:
            # Asked again on a reload: auth answers with the same key, so a scan still holds.
            started = await api.start_enrollment(session.token)
        except (Refused, Unreachable) as failed:
            return enrollment_failed(
                request, session, failed, "enable.html", title="Enable MFA for your account"
            )
        return page(
            request,
            session,
            "scan.html",
            title="Scan the QR code",
            qr=started["qr_png_data_uri"],
            secret=started["secret"],
            grouped=" ".join(
                started["secret"][i : i + 4] for i in range(0, len(started["secret"]), 4)
            ),
        )

    @app.get("/portals/{org_id}/mfa/verify")
    async def verify_form(request: Request, org_id: OrgId) -> Response:
        session = enrolling(request, org_id)
        return page(request, session, "verify.html", title="Enter the code")

    @app.post("/portals/{org_id}/mfa/verify")
    async def verify(request: Request, org_id: OrgId, otp: Text = "", csrf: Text = "") -> Response:
        session = enrolling(request, org_id)
        unforged(request, session, csrf)
        try:
            codes = await api.verify_enrollment(session.token, _code(otp))
        except (Refused, Unreachable) as failed:
            return enrollment_failed(
                request, session, failed, "verify.html", title="Enter the code"
            )
        session.verified = True
        # Shown in this answer only: never stored, never shown again (a new Verify issues
        # a new set, which replaces this one whole).
        return page(
            request, session, "backup_codes.html", title="Save your backup codes", codes=codes
        )

    @app.post("/portals/{org_id}/mfa/enable")
    async def enable(
        request: Request,
        org_id: OrgId,
        saved: Text = "",
        csrf: Text = "",
    ) -> Response:
        session = enrolling(request, org_id)
        unforged(request, session, csrf)
        if saved != "yes":
            # The codes are not kept anywhere to show again: a fresh Verify issues new ones.
            return page(
                request,
                session,
                "verify.html",
                status=400,
                title="Enter the code",
                error="Confirm that you saved your backup codes. Enter a new code to get a "
                "new set of backup codes.",
            )
        try:
            answer = await api.enable_enrollment(session.token)
        except (Refused, Unreachable) as failed:
            return enrollment_failed(
                request, session, failed, "verify.html", title="Enter the code"
            )
        session.stage, session.token, session.verified = "signed_in", answer["session_token"], False
        session.notice = "MFA is enabled. From now on, sign in with a code from your app."
        return go(session, "/")

    # --- challenge: the code, or a backup code ----------------------------------------------

    @app.get("/portals/{org_id}/challenge")
    async def challenge_form(request: Request, org_id: OrgId, method: str = "totp") -> Response:
        session = load(request, sealer, org_id)
        if session.stage != "challenge":
            return (
                go(session, _home_of(session))
                if session.stage != "anonymous"
                else restart(session, messages.EXPIRED)
            )
        return page(
            request,
            session,
            "challenge.html",
            title="Enter your code",
            backup=method == "backup",
        )

    @app.post("/portals/{org_id}/challenge")
    async def challenge(
        request: Request,
        org_id: OrgId,
        otp: Text = "",
        backup_code: Text = "",
        csrf: Text = "",
    ) -> Response:
        session = load(request, sealer, org_id)
        if session.stage != "challenge":
            return restart(session, messages.EXPIRED)
        unforged(request, session, csrf)
        backup = bool(backup_code.strip())
        factor = {"backup_code": backup_code.strip()} if backup else {"otp": _code(otp)}
        try:
            answer = await api.challenge(session.token, **factor)
        except (Refused, Unreachable) as failed:
            step = "backup" if backup else "challenge"
            if isinstance(failed, Refused) and failed.kind in messages.EXPIRED_KINDS:
                return restart(session, messages.explain(failed, step=step))
            return failed_page(
                request,
                session,
                failed,
                "challenge.html",
                step,
                title="Enter your code",
                backup=backup,
            )
        session.stage, session.token = "signed_in", answer["session_token"]
        remaining = answer.get("backup_codes_remaining")
        if backup and remaining is not None:
            session.notice = f"You signed in with a backup code. {remaining} backup codes left."
        return go(session, "/")

    # --- signed in --------------------------------------------------------------------------

    @app.get("/portals/{org_id}/")
    async def home(request: Request, org_id: OrgId) -> Response:
        session = load(request, sealer, org_id)
        if session.stage != "signed_in":
            return (
                go(session, _home_of(session))
                if session.stage != "anonymous"
                else go(session, "/login")
            )
        try:
            who = await api.session(session.token)
        except (Refused, Unreachable) as failed:
            if isinstance(failed, Refused) and failed.status == 401:
                return restart(session, "Your session has ended. Sign in again.")
            return failed_page(
                request,
                session,
                failed,
                "home.html",
                "session",
                title="Signed in",
                who=None,
                email=session.email,
            )
        return page(request, session, "home.html", title="Signed in", who=who, email=session.email)

    @app.post("/portals/{org_id}/logout")
    async def logout(request: Request, org_id: OrgId, csrf: Text = "") -> Response:
        session = load(request, sealer, org_id)
        unforged(request, session, csrf)
        if session.stage == "signed_in":
            # The cookie goes anyway; auth's session expires on its own if this fails.
            with contextlib.suppress(Refused, Unreachable):
                await api.logout(session.token)
        return restart(session, "You are signed out.")

    # --- invitation: set a password ---------------------------------------------------------

    @app.get("/portals/{org_id}/invitation")
    async def invitation_form(request: Request, org_id: OrgId, token: str = "") -> Response:
        session = load(request, sealer, org_id)
        return page(
            request, session, "invitation.html", title="Set your password", token=token[:256]
        )

    @app.post("/portals/{org_id}/invitation")
    async def accept_invitation(
        request: Request,
        org_id: OrgId,
        token: Text = "",
        password: Text = "",
        confirm: Text = "",
        csrf: Text = "",
    ) -> Response:
        session = load(request, sealer, org_id)
        unforged(request, session, csrf)
        error = ""
        if len(password) < 8:
            error = "Choose a password of at least 8 characters."
        elif password != confirm:
            error = "The two passwords differ."
        else:
            try:
                await api.accept_invitation(org_id, token.strip(), password)
            except Refused as refused:
                error = messages.explain(refused, step="login")
            except Unreachable:
                error = messages.UNREACHABLE
        if error:
            return page(
                request,
                session,
                "invitation.html",
                status=400,
                title="Set your password",
                token=token,
                error=error,
            )
        session.restart("Your password is set. Sign in.")
        return go(session, "/login")

    return app


def _home_of(session: PortalSession) -> str:
    return {
        "anonymous": "/login",
        "enroll": "/mfa/enable",
        "challenge": "/challenge",
        "signed_in": "/",
    }[session.stage]


def _code(text: str) -> str:
    # Apps show "123 456"; people paste with spaces.
    return "".join(text.split())
