"""The admin console's pages, as the product page names them: *Settings → Customer Portal*
(**Enable multi-factor authentication (MFA)**, **Save**), *Customers* and *Vendors*, and a
contact's *Details* with its gear menu (**Reset Portal MFA**, portal access) and history.

Changes are the CLI's commands, published to Kafka and answered by the owning service
(portal_mfa.command_client); what is shown comes from the services' admin HTTP reads.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

from aiokafka.errors import KafkaError
from fastapi import FastAPI, Form, Request, Response
from fastapi.responses import RedirectResponse

from frontends.admin_web.reads import AdminReads, ReadRefused, Unreachable
from frontends.admin_web.session import AdminSession, forget, load, store
from frontends.common.pages import Pages
from frontends.common.sealed import sealer_from
from frontends.common.web import Answered, csrf_ok, frontend_app, templates_for
from portal_mfa import dev_state
from portal_mfa.admin_credentials import AdminCredentials
from portal_mfa.command_client import CommandClient, NoAnswer
from portal_mfa.mfa_impact import preview
from shared.admin_identity import AssertionRejected, AssertionVerifier, verifier_from
from shared.contracts import (
    Command,
    CreateContact,
    DisableMfaPolicy,
    EnableMfaPolicy,
    GrantPortalAccess,
    ResetPortalMfa,
    RevokePortalAccess,
)
from shared.http.path_params import ContactId, OrgId
from shared.observability.http import observe
from shared.settings import Settings, portal_web_url
from shared.tokens import hash_token, new_token

HERE = Path(__file__).parent
PRODUCT = "Admin console"
Text = Annotated[str, Form(max_length=1024)]
KIND_PAGES: dict[str, Literal["customer", "vendor"]] = {
    "customers": "customer",
    "vendors": "vendor",
}


class CommandFailed(Exception):
    """Rejected, unanswered or undeliverable: the message says which, for the page."""


def create_app(settings: Settings) -> FastAPI:
    sealer = sealer_from(settings)
    secure = settings.profile != "dev"
    templates = templates_for(HERE)
    reads = AdminReads(settings)
    verifier: AssertionVerifier | None = (
        verifier_from(settings) if settings.admin_issuer_keys else None
    )

    app = frontend_app("Admin console", HERE, on_stop=reads.close)
    # Request ids, the access log, the HTTP histogram, spans and /metrics, as the services;
    # not shared.http.hardening: these pages keep their own headers (frontends.common.web).
    observe(app, "console-web")

    def dev_issuer() -> Any:
        return dev_state.issuer(settings.kafka_bootstrap) if settings.profile == "dev" else None

    def frame(session: AdminSession | None, context: dict[str, Any]) -> dict[str, Any]:
        return {
            "product": PRODUCT,
            "admin": session,
            "csrf": session.csrf if session else "",
            "notice": session.take_notice() if session else context.pop("notice", ""),
        }

    def keep(response: Response, session: AdminSession | None) -> None:
        if session is not None:
            store(response, sealer, session, secure=secure, now=int(time.time()))

    pages = Pages[AdminSession | None](templates, frame, keep)
    page, go = pages.page, pages.go

    def signed_in(request: Request, org: str) -> tuple[AdminSession, AdminCredentials]:
        """The admin and their credentials, allowed to act on `org`; else Answered: sign in
        (again), or not your org."""
        session = load(request, sealer)
        if session is None:
            raise Answered(RedirectResponse("/signin", status_code=303))
        credentials = session.credentials(dev_issuer())
        if credentials is None:
            response = RedirectResponse("/signin", status_code=303)
            forget(response, secure=secure)
            raise Answered(response)
        if not session.may_act_on(org):
            raise Answered(
                page(
                    request,
                    session,
                    "message.html",
                    status=403,
                    title="Not your org",
                    error=f"You are signed in for org {session.org}, not {org}.",
                )
            )
        return session, credentials

    def refused_read(request: Request, session: AdminSession, exc: Exception) -> Response:
        if isinstance(exc, ReadRefused) and exc.status == 401:
            response = RedirectResponse("/signin", status_code=303)
            forget(response, secure=secure)
            return response
        message = (
            f"The {exc.service} service cannot be reached right now."
            if isinstance(exc, Unreachable)
            else f"Refused: {exc.title}"
            if isinstance(exc, ReadRefused)
            else str(exc)
        )
        status = exc.status if isinstance(exc, ReadRefused) else 503
        return page(
            request, session, "message.html", status=status, title="Cannot show this", error=message
        )

    async def send(credentials: AdminCredentials, command: Command) -> dict[str, Any]:
        try:
            signed = credentials.sign(command)
        except Exception as exc:  # NoCredentials and the like: said, never sent
            raise CommandFailed(str(exc)) from None
        try:
            async with CommandClient(settings) as client:
                reply = await client.send(signed)
        except NoAnswer:
            raise CommandFailed(
                "No answer in time. It may still apply: reload in a moment to see."
            ) from None
        except (OSError, KafkaError):
            raise CommandFailed("The command could not be sent: Kafka cannot be reached.") from None
        if not reply.ok:
            assert reply.rejection is not None
            raise CommandFailed(f"Refused ({reply.rejection.code}): {reply.rejection.message}")
        return reply.result

    def command_id(given: str) -> uuid.UUID:
        # The form carries the id it was rendered with: submitted twice, it applies once.
        try:
            return uuid.UUID(given)
        except ValueError:
            return uuid.uuid4()

    def forged(request: Request, session: AdminSession, given: str) -> bool:
        return not csrf_ok(request, session.csrf, given)

    async def carry_out(
        request: Request,
        org: str,
        csrf: str,
        order: Callable[[], Command],
        *,
        back: str,
        expired: str,
        failed: str,
        failed_status: int = 502,
    ) -> tuple[AdminSession, dict[str, Any]]:
        """A form's command: signed in, its CSRF token checked, sent, answered.

        Returns the session and the owning service's result; else Answered: sign in
        (again), `expired` said on `back`, or the `failed` page saying why.
        """
        session, credentials = signed_in(request, org)
        if forged(request, session, csrf):
            session.notice = expired
            raise Answered(go(session, back))
        try:
            result = await send(credentials, order())
        except CommandFailed as exc:
            raise Answered(
                page(
                    request,
                    session,
                    "message.html",
                    status=failed_status,
                    title=failed,
                    error=str(exc),
                    back=back,
                )
            ) from None
        return session, result

    # --- sign in ----------------------------------------------------------------------------

    @app.get("/")
    async def index(request: Request) -> Response:
        session = load(request, sealer)
        if session is None:
            return RedirectResponse("/signin", status_code=303)
        return RedirectResponse(
            f"/orgs/{session.home or session.org}/settings/customer-portal", status_code=303
        )

    @app.get("/signin")
    async def signin_form(request: Request) -> Response:
        return page(request, None, "signin.html", title="Sign in", dev=dev_issuer() is not None)

    @app.post("/signin/dev")
    async def signin_dev(
        request: Request,
        admin: Annotated[str, Form(max_length=200)] = "",
        org: Annotated[str, Form(max_length=100)] = "",
    ) -> Response:
        if dev_issuer() is None:
            return page(
                request,
                None,
                "signin.html",
                status=403,
                title="Sign in",
                dev=False,
                error="Signing in by name works only on a dev stack.",
            )
        admin, org = admin.strip(), org.strip()
        if not admin or not org or not _safe_id(org):
            return page(
                request,
                None,
                "signin.html",
                status=400,
                title="Sign in",
                dev=True,
                error="Enter your name and the org to administer (letters, digits, . _ : @ -).",
            )
        session = AdminSession(sub=admin, org=org, mode="dev", home=org)
        return go(session, f"/orgs/{org}/settings/customer-portal")

    @app.post("/signin/assertion")
    async def signin_assertion(
        request: Request,
        assertion: Annotated[str, Form(max_length=4096)] = "",
        org: Annotated[str, Form(max_length=100)] = "",
    ) -> Response:
        def refused(message: str) -> Response:
            return page(
                request,
                None,
                "signin.html",
                status=401,
                title="Sign in",
                dev=dev_issuer() is not None,
                error=message,
            )

        if verifier is None:
            return refused(
                "This console trusts no identity provider (PORTAL_MFA_ADMIN_ISSUER_KEYS)."
            )
        try:
            claims = verifier.verify(assertion.strip())
        except AssertionRejected as exc:
            return refused(f"Not signed in: {exc.message}.")
        if claims.scope != "admin" or claims.cmd is not None:
            return refused("Not signed in: this assertion is not an admin's sign-in.")
        target = claims.org if claims.org != "*" else org.strip()
        if not _safe_id(target):
            return refused("An operator assertion (org *) needs the org to administer.")
        session = AdminSession(
            sub=claims.sub,
            org=claims.org,
            mode="assertion",
            token=assertion.strip(),
            expires_at=claims.exp,
            home=target,
        )
        return go(session, f"/orgs/{target}/settings/customer-portal")

    @app.post("/signout")
    async def signout(request: Request, csrf: Text = "") -> Response:
        session = load(request, sealer)
        response = RedirectResponse("/signin", status_code=303)
        if session is not None and not forged(request, session, csrf):
            forget(response, secure=secure)
        return response

    # --- Settings → Customer Portal ---------------------------------------------------------

    async def settings_page(
        request: Request,
        session: AdminSession,
        credentials: AdminCredentials,
        org: str,
        *,
        status: int = 200,
        error: str = "",
    ) -> Response:
        try:
            policy = await reads.policy(credentials, org)
            contacts = await reads.contacts(credentials, org)
            requirements = await reads.requirements(
                credentials, org, [c["contact_id"] for c in contacts if c["portal_access"]]
            )
        except (ReadRefused, Unreachable) as exc:
            return refused_read(request, session, exc)
        enabled = bool(policy["mfa_enabled"])
        # What Save does if the box is flipped: the change this page is about to make.
        impact = preview(
            org,
            mfa_enabled_now=enabled,
            would_be=not enabled,
            contacts=contacts,
            requirements=requirements,
        )
        return page(
            request,
            session,
            "settings.html",
            status=status,
            title="Customer Portal",
            org=org,
            policy=policy,
            impact=impact,
            error=error,
            command_id=uuid.uuid4(),
        )

    @app.get("/orgs/{org_id}/settings/customer-portal")
    async def portal_settings(request: Request, org_id: OrgId) -> Response:
        return await settings_page(request, *signed_in(request, org_id), org_id)

    @app.post("/orgs/{org_id}/settings/customer-portal")
    async def save_portal_settings(
        request: Request,
        org_id: OrgId,
        mfa_enabled: Text = "",
        csrf: Text = "",
        command: Text = "",
    ) -> Response:
        session, credentials = signed_in(request, org_id)
        if forged(request, session, csrf):
            return await settings_page(
                request,
                session,
                credentials,
                org_id,
                status=403,
                error="That form had expired; nothing was saved.",
            )
        wanted = mfa_enabled == "on"
        change = EnableMfaPolicy if wanted else DisableMfaPolicy
        try:
            await send(credentials, change(org_id=org_id, command_id=command_id(command)))
        except CommandFailed as exc:
            return await settings_page(
                request, session, credentials, org_id, status=502, error=str(exc)
            )
        session.notice = (
            "Saved. MFA is enabled for both the customer and the vendor portal."
            if wanted
            else "Saved. MFA is disabled for both portals; contacts who configured it still"
            " need their code."
        )
        return go(session, f"/orgs/{org_id}/settings/customer-portal")

    # --- Customers, Vendors -----------------------------------------------------------------

    @app.get("/orgs/{org_id}/{kind_page}")
    async def contact_list(request: Request, org_id: OrgId, kind_page: str) -> Response:
        if kind_page not in KIND_PAGES:
            return page(
                request, None, "message.html", status=404, title="Not found", error="No such page."
            )
        session, credentials = signed_in(request, org_id)
        kind = KIND_PAGES[kind_page]
        try:
            contacts = [c for c in await reads.contacts(credentials, org_id) if c["kind"] == kind]
            requirements = await reads.requirements(
                credentials, org_id, [c["contact_id"] for c in contacts]
            )
        except (ReadRefused, Unreachable) as exc:
            return refused_read(request, session, exc)
        rows = [{**c, "mfa": _mfa_state(requirements.get(c["contact_id"]))} for c in contacts]
        return page(
            request,
            session,
            "contacts.html",
            title=kind_page.capitalize(),
            org=org_id,
            kind=kind,
            kind_page=kind_page,
            rows=rows,
            command_id=uuid.uuid4(),
        )

    @app.post("/orgs/{org_id}/{kind_page}")
    async def add_contact(
        request: Request,
        org_id: OrgId,
        kind_page: str,
        name: Text = "",
        email: Text = "",
        csrf: Text = "",
        command: Text = "",
    ) -> Response:
        if kind_page not in KIND_PAGES:
            return page(
                request, None, "message.html", status=404, title="Not found", error="No such page."
            )

        def created() -> Command:
            try:
                return CreateContact(
                    org_id=org_id,
                    kind=KIND_PAGES[kind_page],
                    display_name=name.strip(),
                    email=email.strip(),
                    command_id=command_id(command),
                )
            except ValueError:
                raise CommandFailed("Enter a name and a valid email.") from None

        session, result = await carry_out(
            request,
            org_id,
            csrf,
            created,
            back=f"/orgs/{org_id}/{kind_page}",
            expired="That form had expired; nothing was added.",
            failed="Not added",
            failed_status=400,
        )
        session.notice = f"Added {name.strip()}."
        return go(session, f"/orgs/{org_id}/contacts/{result['contact_id']}")

    # --- a contact's Details ----------------------------------------------------------------

    @app.get("/orgs/{org_id}/contacts/{contact_id}")
    async def details(request: Request, org_id: OrgId, contact_id: ContactId) -> Response:
        session, credentials = signed_in(request, org_id)
        try:
            contact = await reads.contact(credentials, org_id, contact_id)
            requirement = await reads.requirement(credentials, org_id, contact_id)
            explained = await reads.explain(credentials, org_id, contact_id)
            history = await reads.events(credentials, org_id, contact=contact_id)
            policy_events = [
                *await reads.events(credentials, org_id, type="MfaPolicyEnabled"),
                *await reads.events(credentials, org_id, type="MfaPolicyDisabled"),
            ]
        except (ReadRefused, Unreachable) as exc:
            return refused_read(request, session, exc)
        deciding = set(explained.get("decided_by", []))
        by_id = {e["event_id"]: e for e in [*history, *policy_events]}
        reasons = [by_id.get(event_id, {"event_id": event_id}) for event_id in deciding]
        reasons.sort(key=lambda e: str(e.get("occurred_at", "")))
        return page(
            request,
            session,
            "details.html",
            title=contact["display_name"],
            org=org_id,
            contact=contact,
            mfa=_mfa_state(requirement),
            explained=explained,
            reasons=reasons,
            history=history,
            deciding=deciding,
            kind_page="customers" if contact["kind"] == "customer" else "vendors",
            command_id=uuid.uuid4(),
        )

    @app.get("/orgs/{org_id}/contacts/{contact_id}/reset-mfa")
    async def reset_form(request: Request, org_id: OrgId, contact_id: ContactId) -> Response:
        session, credentials = signed_in(request, org_id)
        try:
            contact = await reads.contact(credentials, org_id, contact_id)
        except (ReadRefused, Unreachable) as exc:
            return refused_read(request, session, exc)
        return page(
            request,
            session,
            "reset.html",
            title="Reset Portal MFA",
            org=org_id,
            contact=contact,
            command_id=uuid.uuid4(),
        )

    @app.post("/orgs/{org_id}/contacts/{contact_id}/reset-mfa")
    async def reset(
        request: Request,
        org_id: OrgId,
        contact_id: ContactId,
        reason: Annotated[str, Form(max_length=500)] = "",
        csrf: Text = "",
        command: Text = "",
    ) -> Response:
        back = f"/orgs/{org_id}/contacts/{contact_id}"
        session, result = await carry_out(
            request,
            org_id,
            csrf,
            lambda: ResetPortalMfa(
                org_id=org_id,
                contact_id=contact_id,
                reason=reason.strip(),
                command_id=command_id(command),
            ),
            back=back,
            expired="That form had expired; nothing was reset.",
            failed="Not reset",
        )
        session.notice = (
            "Portal MFA was reset: they will configure MFA again at their next sign-in"
            f" (MFA epoch {result['mfa_epoch']})."
        )
        return go(session, back)

    @app.post("/orgs/{org_id}/contacts/{contact_id}/grant-portal-access")
    async def grant(
        request: Request,
        org_id: OrgId,
        contact_id: ContactId,
        csrf: Text = "",
        command: Text = "",
    ) -> Response:
        back = f"/orgs/{org_id}/contacts/{contact_id}"
        # Made here, shown once, only its hash sent: the token never crosses Kafka.
        token = new_token()
        session, result = await carry_out(
            request,
            org_id,
            csrf,
            lambda: GrantPortalAccess(
                org_id=org_id, contact_id=contact_id, invitation_hash=hash_token(token)
            ),
            back=back,
            expired="That form had expired; nothing was changed.",
            failed="Not invited",
        )
        link = f"{portal_web_url(settings)}/portals/{org_id}/invitation?token={token}"
        return page(
            request,
            session,
            "invited.html",
            title="Invitation",
            org=org_id,
            contact_id=contact_id,
            token=token,
            link=link,
            expires_at=result.get("invitation_expires_at"),
            back=back,
        )

    @app.post("/orgs/{org_id}/contacts/{contact_id}/revoke-portal-access")
    async def revoke(
        request: Request,
        org_id: OrgId,
        contact_id: ContactId,
        csrf: Text = "",
        command: Text = "",
    ) -> Response:
        back = f"/orgs/{org_id}/contacts/{contact_id}"
        session, _ = await carry_out(
            request,
            org_id,
            csrf,
            lambda: RevokePortalAccess(
                org_id=org_id, contact_id=contact_id, command_id=command_id(command)
            ),
            back=back,
            expired="That form had expired; nothing was changed.",
            failed="Not revoked",
        )
        session.notice = "Portal access revoked: their sign-in and sessions stop working."
        return go(session, back)

    return app


def _safe_id(value: str) -> bool:
    return 0 < len(value) <= 100 and all(c.isalnum() or c in "._:@-" for c in value)


def _mfa_state(requirement: dict[str, Any] | None) -> dict[str, str]:
    """What the lists and Details say about a contact's MFA, from auth's login requirement."""
    if requirement is None or not requirement.get("complete", True):
        return {"label": "Unknown for now", "css": "state-off", "requires": "?"}
    requires = str(requirement["requirement"])
    if requirement.get("enrolled"):
        return {"label": "Configured", "css": "state-on", "requires": requires}
    if requires == "enroll":
        return {
            "label": "Not configured: asked at next sign-in",
            "css": "state-off",
            "requires": requires,
        }
    return {"label": "Not configured", "css": "state-off", "requires": requires}
