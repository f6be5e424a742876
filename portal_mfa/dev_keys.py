"""Fresh record-signing keys at every `portal-mfa dev` start, one per publishing service.

Each service process gets only its own private key (`PORTAL_MFA_SIGNING_KEY`); every process
gets the trust map of public keys (`PORTAL_MFA_TRUSTED_SIGNERS`). The private keys live in
this supervisor's memory and its children's environments, nowhere else: the dev stack's
data does not outlive it, so neither need its keys.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from shared.signing import AGGREGATE_TYPE_OF_SIGNER, RecordSigner
from shared.signing_settings import (
    SIGNING_KEY_VAR,
    TRUSTED_SIGNERS_VAR,
    format_signing_key,
    format_trust_map,
)


@dataclass(frozen=True)
class DevSigningKeys:
    signers: dict[str, RecordSigner]

    @classmethod
    def generate(cls) -> DevSigningKeys:
        run = secrets.token_hex(4)  # a new kid per start: an old stack's records stay foreign
        return cls(
            {
                service: RecordSigner.generate(f"dev-{service}-{run}")
                for service in AGGREGATE_TYPE_OF_SIGNER
            }
        )

    def trusted_signers(self) -> str:
        return format_trust_map(self.signers)

    def env_for(self, service: str) -> dict[str, str]:
        """What one service process is given: its own key, if it publishes, and the trust map."""
        env = {TRUSTED_SIGNERS_VAR: self.trusted_signers(), SIGNING_KEY_VAR: ""}
        if service in self.signers:
            env[SIGNING_KEY_VAR] = format_signing_key(self.signers[service])
        return env
