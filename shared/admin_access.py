"""Admin reads over HTTP: `Authorization: Bearer <admin assertion>`, scoped to one org.

The dependency verifies nothing by itself: the route asks for the org it serves once
its path is validated (a malformed path is a 422 whoever asks), and an unauthorized
caller gets `AssertionRejected`, which the app answers as problem+json (401 or 403).
The app provides the verifier as `app.state.admin_verifier`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from shared.admin_identity import AdminAssertion, AssertionVerifier, Scope

ADMIN_ONLY: frozenset[Scope] = frozenset({"admin"})
# The audit log and the login-requirement lookup: for auditors and admins alike.
AUDIT_READERS: frozenset[Scope] = frozenset({"admin", "audit"})


@dataclass(frozen=True)
class AdminCredential:
    token: str | None = field(repr=False)
    verifier: AssertionVerifier

    def for_org(self, org_id: str, scopes: frozenset[Scope] = ADMIN_ONLY) -> AdminAssertion:
        return self.verifier.for_read(self.token, org_id=org_id, scopes=scopes)

    def for_every_org(self, scopes: frozenset[Scope] = ADMIN_ONLY) -> AdminAssertion:
        return self.verifier.for_read(self.token, org_id=None, scopes=scopes)


# Declared as a security scheme, so the OpenAPI document says which routes need it.
# auto_error=False: a missing or non-bearer header is refused by the verifier, as a problem.
_admin_assertion = HTTPBearer(
    scheme_name="adminAssertion",
    bearerFormat="JWT",
    description="An admin assertion (a JWT) for the org: `portal-mfa admin token` prints one",
    auto_error=False,
)


# async: FastAPI runs a plain `def` dependency on a worker thread; this one does no I/O.
async def _credential(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_admin_assertion)],
) -> AdminCredential:
    verifier: AssertionVerifier = request.app.state.admin_verifier
    token = bearer.credentials.strip() if bearer else ""
    return AdminCredential(token or None, verifier)


AdminBearer = Annotated[AdminCredential, Depends(_credential)]
