"""`portal-mfa dev` hands each service process its own private key and everyone the trust map."""

from __future__ import annotations

from base64 import b64encode

from portal_mfa.dev_keys import DevSigningKeys
from portal_mfa.serve import SERVICES
from shared.signing_settings import parse_signing_key, parse_trust_map


def test_each_service_gets_only_its_own_key_and_all_get_the_trust_map() -> None:
    keys = DevSigningKeys.generate()
    seeds = {service: signer.private_seed() for service, signer in keys.signers.items()}
    for service in SERVICES:
        env = keys.env_for(service)
        trust = parse_trust_map(env["PORTAL_MFA_TRUSTED_SIGNERS"])
        assert {s.service for s in trust.signers()} == {"auth", "preferences", "contacts"}
        others = [b64encode(seed).decode() for name, seed in seeds.items() if name != service]
        assert not any(seed in value for seed in others for value in env.values())
        if service == "audit":
            assert env["PORTAL_MFA_SIGNING_KEY"] == "", "audit publishes nothing, holds no key"
            continue
        own = parse_signing_key(env["PORTAL_MFA_SIGNING_KEY"])
        assert own.private_seed() == seeds[service]
        assert [s.service for s in trust.signers() if s.kid == own.kid] == [service]


def test_every_start_makes_new_keys() -> None:
    first, second = DevSigningKeys.generate(), DevSigningKeys.generate()
    assert first.trusted_signers() != second.trusted_signers()
    assert first.signers["auth"].kid != second.signers["auth"].kid
