"""How the CLI proves who the admin is: an assertion per command, or one it was given.

On the machine that runs `portal-mfa dev`, the CLI mints short-lived assertions from the
dev stack's issuer key (in its private dev state); each command gets its own, bound to
the command's digest. Anywhere else it cannot mint: it sends the assertion the identity
provider issued, from `PORTAL_MFA_ADMIN_TOKEN` (one command per token; docs/security.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from portal_mfa import dev_state
from shared.admin_identity import AssertionIssuer, Minted, Scope
from shared.contracts import Command
from shared.settings import Settings

C = TypeVar("C", bound=Command)
DEV_ADMIN = "dev-admin"


class NoCredentials(Exception):
    """The CLI has no way to prove an admin identity here; the message says what to do."""


class AdminCredentials(Protocol):
    def sign(self, command: C) -> C: ...

    def bearer(self, org: str, scope: Scope) -> str: ...

    def mint(self, org: str, scope: Scope) -> Minted: ...


@dataclass(frozen=True)
class DevIssuer:
    issuer: AssertionIssuer
    actor: str

    def sign(self, command: C) -> C:
        return command.signed_by(self.issuer, self.actor)

    def bearer(self, org: str, scope: Scope) -> str:
        return self.mint(org, scope).token

    def mint(self, org: str, scope: Scope) -> Minted:
        return self.issuer.mint(sub=self.actor, org=org, scope=scope)


@dataclass(frozen=True)
class GivenToken:
    token: str = field(repr=False)

    def sign(self, command: C) -> C:
        return command.signed(self.token)

    def bearer(self, org: str, scope: Scope) -> str:
        return self.token

    def mint(self, org: str, scope: Scope) -> Minted:
        raise NoCredentials(
            "only the dev stack's CLI can mint assertions; ask your identity provider"
        )


def admin_credentials(settings: Settings, actor: str | None = None) -> AdminCredentials:
    if settings.admin_token:
        if actor:
            raise NoCredentials(
                "--actor names the admin on the dev stack only;"
                " PORTAL_MFA_ADMIN_TOKEN already says who you are"
            )
        return GivenToken(settings.admin_token)
    issuer = dev_state.issuer(settings.kafka_bootstrap)
    if issuer is None:
        raise NoCredentials(
            "no admin assertion: set PORTAL_MFA_ADMIN_TOKEN (from your identity provider),"
            f" or run `portal-mfa dev` on this machine (none found for {settings.kafka_bootstrap})"
        )
    return DevIssuer(issuer, actor or settings.admin or DEV_ADMIN)
