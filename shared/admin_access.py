"""Admin reads over HTTP: `Authorization: Bearer <admin assertion>`, scoped to one org.

The dependency verifies nothing by itself: the route asks for the org it serves once
its path is validated (a malformed path is a 422 whoever asks), and an unauthorized
caller gets `AssertionRejected`, which the app answers as problem+json (401 or 403).
The app provides the verifier as `app.state.admin_verifier`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Header, Request

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


def _credential(
    request: Request, authorization: Annotated[str | None, Header()] = None
) -> AdminCredential:
    verifier: AssertionVerifier = request.app.state.admin_verifier
    scheme, _, value = (authorization or "").partition(" ")
    token = value.strip() if scheme.lower() == "bearer" else ""
    return AdminCredential(token or None, verifier)


AdminBearer = Annotated[AdminCredential, Depends(_credential)]
