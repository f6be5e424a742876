"""Admin assertions: what the verifier accepts, and everything it must refuse."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from shared.admin_identity import (
    AdminAssertion,
    AssertionIssuer,
    AssertionRejected,
    AssertionVerifier,
    canonical_digest,
    parse_trusted_keys,
    verifier_from,
)
from shared.contracts import CreateContact, EnableMfaPolicy, ResetPortalMfa, wire_digest
from shared.settings import Settings, SettingsError

ISSUER = "https://idp.example"
ALL_SCOPES = frozenset({"admin", "audit"})


@pytest.fixture
def issuer() -> AssertionIssuer:
    return AssertionIssuer.generate(key_id="k1", issuer=ISSUER)


@pytest.fixture
def verifier(issuer: AssertionIssuer) -> AssertionVerifier:
    return AssertionVerifier.from_setting(issuer.trusted_key_entry, issuer=ISSUER)


def refused(kind: str, call: Any, *args: Any, **kwargs: Any) -> str:
    with pytest.raises(AssertionRejected) as caught:
        call(*args, **kwargs)
    assert caught.value.kind == kind, caught.value
    return caught.value.message


def test_a_fresh_assertion_verifies_with_its_claims(
    issuer: AssertionIssuer, verifier: AssertionVerifier
) -> None:
    minted = issuer.mint(sub="alice@acme", org="acme", scope="audit")
    claims = verifier.verify(minted.token)
    assert (claims.iss, claims.sub, claims.org, claims.scope) == (
        ISSUER,
        "alice@acme",
        "acme",
        "audit",
    )
    assert claims.cmd is None
    assert claims.expires_at == minted.expires_at
    assert timedelta(minutes=4) < minted.expires_at - datetime.now(UTC) <= timedelta(minutes=5)
    assert jwt.get_unverified_header(minted.token) == {"alg": "EdDSA", "kid": "k1", "typ": "JWT"}
    assert issuer.mint(sub="a", org="acme").token != minted.token  # a new jti every time


@pytest.mark.parametrize("sub", ["alice@acme", "zoë \u202e ünal", 'quote " and \\'])
def test_a_minted_assertion_is_the_token_pyjwt_makes(issuer: AssertionIssuer, sub: str) -> None:
    # Minting is done without PyJWT (it is slow to import for the CLI); the token must be
    # byte for byte what PyJWT's encode makes of the same claims and key, and verify there.
    minted = issuer.mint(sub=sub, org="acme", cmd=canonical_digest({"a": 1}))
    public_key = parse_trusted_keys(issuer.trusted_key_entry)["k1"]
    claims = jwt.decode(minted.token, public_key, algorithms=["EdDSA"], issuer=ISSUER)
    assert claims["sub"] == sub
    private_key = Ed25519PrivateKey.from_private_bytes(base64.b64decode(issuer.private_text))
    made_by_pyjwt = jwt.encode(claims, private_key, algorithm="EdDSA", headers={"kid": "k1"})
    assert minted.token == made_by_pyjwt
    # And a flipped signature bit is refused by PyJWT (the signature is over these bytes).
    head, body, signature = minted.token.split(".")
    raw = bytearray(base64.urlsafe_b64decode(signature + "=="))
    raw[0] ^= 1
    forged = f"{head}.{body}.{base64.urlsafe_b64encode(bytes(raw)).rstrip(b'=').decode()}"
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(forged, public_key, algorithms=["EdDSA"], issuer=ISSUER)


def test_missing_or_garbage_is_unauthenticated(verifier: AssertionVerifier) -> None:
    assert refused("unauthenticated", verifier.verify, None) == "no admin assertion"
    refused("unauthenticated", verifier.verify, "")
    refused("unauthenticated", verifier.verify, "not-a-jwt")
    refused("unauthenticated", verifier.verify, "a.b.c")
    refused("unauthenticated", verifier.verify, "x" * 5000)


def test_an_expired_assertion_is_refused() -> None:
    key = Ed25519PrivateKey.generate()
    past = AssertionIssuer(
        key,
        key_id="k1",
        issuer=ISSUER,
        clock=lambda: datetime.now(UTC) - timedelta(minutes=10),
    )
    trusting = AssertionVerifier.from_setting(past.trusted_key_entry, issuer=ISSUER)
    message = refused("unauthenticated", trusting.verify, past.mint(sub="a", org="o").token)
    assert "expired" in message


def test_a_little_clock_skew_is_tolerated() -> None:
    key = Ed25519PrivateKey.generate()
    # Expired 10 s ago by our clock: within the leeway of 30 s.
    skewed = AssertionIssuer(
        key,
        key_id="k1",
        issuer=ISSUER,
        lifetime=timedelta(minutes=1),
        clock=lambda: datetime.now(UTC) - timedelta(seconds=70),
    )
    trusting = AssertionVerifier.from_setting(skewed.trusted_key_entry, issuer=ISSUER)
    assert trusting.verify(skewed.mint(sub="a", org="o").token).sub == "a"


def test_the_wrong_issuer_is_refused(issuer: AssertionIssuer) -> None:
    other_iss = AssertionVerifier.from_setting(issuer.trusted_key_entry, issuer="https://else")
    message = refused("unauthenticated", other_iss.verify, issuer.mint(sub="a", org="o").token)
    assert "issuer" in message


def test_an_unknown_key_id_or_a_stranger_key_is_refused(
    issuer: AssertionIssuer, verifier: AssertionVerifier
) -> None:
    stranger = AssertionIssuer.generate(key_id="k2", issuer=ISSUER)
    message = refused("unauthenticated", verifier.verify, stranger.mint(sub="a", org="o").token)
    assert "unknown key" in message
    # A stranger's key under the trusted kid: the signature does not verify.
    impostor = AssertionIssuer(Ed25519PrivateKey.generate(), key_id="k1", issuer=ISSUER)
    refused("unauthenticated", verifier.verify, impostor.mint(sub="a", org="o").token)


def test_several_keys_are_trusted_at_once(issuer: AssertionIssuer) -> None:
    second = AssertionIssuer.generate(key_id="k2", issuer=ISSUER)
    both = AssertionVerifier.from_setting(
        f"{issuer.trusted_key_entry}, {second.trusted_key_entry}", issuer=ISSUER
    )
    assert both.verify(issuer.mint(sub="a", org="o").token).sub == "a"
    assert both.verify(second.mint(sub="b", org="o").token).sub == "b"


def _signed(claims: dict[str, Any], issuer: AssertionIssuer, **headers: Any) -> str:
    key = Ed25519PrivateKey.from_private_bytes(base64.b64decode(issuer.private_text))
    return jwt.encode(claims, key, algorithm="EdDSA", headers={"kid": "k1", **headers})


def _claims(**override: Any) -> dict[str, Any]:
    now = int(datetime.now(UTC).timestamp())
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "sub": "a",
        "org": "acme",
        "scope": "admin",
        "iat": now,
        "exp": now + 120,
        "jti": str(uuid.uuid4()),
    }
    claims.update(override)
    return {k: v for k, v in claims.items() if v is not None}


@pytest.mark.parametrize("claim", ["iss", "sub", "org", "scope", "exp", "iat", "jti"])
def test_every_claim_is_required(
    claim: str, issuer: AssertionIssuer, verifier: AssertionVerifier
) -> None:
    refused("unauthenticated", verifier.verify, _signed(_claims(**{claim: None}), issuer))


def test_unknown_scope_or_long_life_or_another_algorithm_is_refused(
    issuer: AssertionIssuer, verifier: AssertionVerifier
) -> None:
    refused("unauthenticated", verifier.verify, _signed(_claims(scope="root"), issuer))
    now = int(datetime.now(UTC).timestamp())
    long_lived = _claims(iat=now, exp=now + 24 * 3600)
    assert "too long" in refused("unauthenticated", verifier.verify, _signed(long_lived, issuer))
    hs256 = jwt.encode(_claims(), "a-shared-secret-of-enough-length!", "HS256", {"kid": "k1"})
    refused("unauthenticated", verifier.verify, hs256)
    unsigned = jwt.encode(_claims(), None, "none", {"kid": "k1"})
    refused("unauthenticated", verifier.verify, unsigned)


def test_a_command_needs_scope_admin_and_its_org(
    issuer: AssertionIssuer, verifier: AssertionVerifier
) -> None:
    command = EnableMfaPolicy(org_id="acme")
    digest = command.digest()
    ok = verifier.for_command(
        issuer.mint(sub="a", org="acme", cmd=digest).token, org_id="acme", digest=digest
    )
    assert ok.sub == "a"
    operator = issuer.mint(sub="op", org="*", cmd=digest).token
    assert verifier.for_command(operator, org_id="acme", digest=digest).org == "*"
    other_org = issuer.mint(sub="a", org="globex", cmd=digest).token
    assert "another org" in refused(
        "forbidden", verifier.for_command, other_org, org_id="acme", digest=digest
    )
    audit = issuer.mint(sub="a", org="acme", scope="audit", cmd=digest).token
    assert "scope" in refused(
        "forbidden", verifier.for_command, audit, org_id="acme", digest=digest
    )


def test_a_digest_bound_assertion_authorizes_only_its_command(
    issuer: AssertionIssuer, verifier: AssertionVerifier
) -> None:
    reset = ResetPortalMfa(org_id="acme", contact_id="c1", reason="lost phone")
    token = issuer.mint(sub="a", org="acme", cmd=reset.digest()).token
    retargeted = reset.model_copy(update={"contact_id": "c2"})
    resent = reset.model_copy(update={"command_id": uuid.uuid4()})
    for other in (retargeted, resent):
        message = refused(
            "forbidden", verifier.for_command, token, org_id="acme", digest=other.digest()
        )
        assert "another command" in message


def test_the_digest_is_the_same_on_the_wire() -> None:
    command = CreateContact(
        org_id="acme", kind="vendor", display_name="Vera Vendør", email="vera@example.com"
    )
    signed = command.signed("a.b.c")
    raw = json.loads(signed.model_dump_json())
    assert raw["assertion"] == "a.b.c"
    assert wire_digest(raw) == command.digest() == signed.digest()
    raw["contact_id"] = "someone-else"
    assert wire_digest(raw) != command.digest()
    assert canonical_digest({"b": 1, "a": [1, 2]}) == canonical_digest({"a": [1, 2], "b": 1})


def test_reads_refuse_command_assertions_other_orgs_and_other_scopes(
    issuer: AssertionIssuer, verifier: AssertionVerifier
) -> None:
    admin_only = frozenset({"admin"})
    read = issuer.mint(sub="a", org="acme").token
    assert verifier.for_read(read, org_id="acme", scopes=admin_only).sub == "a"
    refused("forbidden", verifier.for_read, read, org_id="globex", scopes=admin_only)
    # Every org at once: only an operator (org *).
    refused("forbidden", verifier.for_read, read, org_id=None, scopes=admin_only)
    operator = issuer.mint(sub="op", org="*", scope="audit").token
    assert verifier.for_read(operator, org_id=None, scopes=ALL_SCOPES).org == "*"
    assert verifier.for_read(operator, org_id="globex", scopes=ALL_SCOPES).org == "*"
    refused("forbidden", verifier.for_read, operator, org_id="acme", scopes=admin_only)
    # One that travelled with a command (anyone reading the topic has seen it) reads nothing.
    for_command = issuer.mint(sub="a", org="acme", cmd="0" * 64).token
    assert "command" in refused(
        "forbidden", verifier.for_read, for_command, org_id="acme", scopes=admin_only
    )
    refused("unauthenticated", verifier.for_read, None, org_id="acme", scopes=admin_only)


def test_claims_model_covers_its_org_or_every_org() -> None:
    now = int(datetime.now(UTC).timestamp())
    base = {"iss": ISSUER, "sub": "a", "scope": "admin", "exp": now, "iat": now, "jti": "j"}
    assert AdminAssertion.model_validate({**base, "org": "acme"}).covers("acme")
    assert not AdminAssertion.model_validate({**base, "org": "acme"}).covers("globex")
    assert AdminAssertion.model_validate({**base, "org": "*"}).covers("globex")


def test_trusted_keys_setting_is_checked_without_echoing_keys(issuer: AssertionIssuer) -> None:
    for bad in ("", "no-colon", "k1:not base64!", "k1:" + "QUFB", ":abc"):
        with pytest.raises(ValueError) as caught:
            parse_trusted_keys(bad)
        assert issuer.private_text not in str(caught.value)
    twice = f"{issuer.trusted_key_entry},{issuer.trusted_key_entry}"
    with pytest.raises(ValueError, match="twice"):
        parse_trusted_keys(twice)


def test_services_refuse_to_start_without_issuer_keys(issuer: AssertionIssuer) -> None:
    with pytest.raises(SettingsError, match="PORTAL_MFA_ADMIN_ISSUER_KEYS"):
        verifier_from(Settings(admin_issuer=ISSUER))
    with pytest.raises(SettingsError, match="PORTAL_MFA_ADMIN_ISSUER"):
        verifier_from(Settings(admin_issuer_keys=issuer.trusted_key_entry))
    with pytest.raises(SettingsError) as caught:
        verifier_from(Settings(admin_issuer=ISSUER, admin_issuer_keys="k1:QUFB"))
    assert "QUFB" not in str(caught.value)
    assert verifier_from(Settings(admin_issuer=ISSUER, admin_issuer_keys=issuer.trusted_key_entry))


# --- the verified-assertion cache: the same answers, the signature checked once -----------


def test_a_verified_assertion_expires_in_the_cache_too(
    issuer: AssertionIssuer, verifier: AssertionVerifier, monkeypatch: pytest.MonkeyPatch
) -> None:
    minted = issuer.mint(sub="a", org="acme")
    assert verifier.verify(minted.token).sub == "a"  # verified, and now remembered
    expires = minted.expires_at.timestamp()
    # Within the leeway after expiry it still passes, as a fresh verify would…
    monkeypatch.setattr("shared.admin_identity.time.time", lambda: expires + 29)
    assert verifier.verify(minted.token).sub == "a"
    # …and past it the remembered assertion is refused like an unknown expired one.
    monkeypatch.setattr("shared.admin_identity.time.time", lambda: expires + 31)
    assert "expired" in refused("unauthenticated", verifier.verify, minted.token)


def test_a_remembered_assertion_does_not_vouch_for_an_altered_one(
    issuer: AssertionIssuer, verifier: AssertionVerifier
) -> None:
    token = issuer.mint(sub="a", org="acme", scope="audit").token
    verifier.verify(token)
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["org"] = "*"  # an attacker widens a captured assertion to every org
    forged_payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    forged = f"{header}.{forged_payload}.{signature}"
    refused("unauthenticated", verifier.verify, forged)
    # and a signature byte changed on the very token that was remembered
    flipped = token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]
    refused("unauthenticated", verifier.verify, flipped)


def test_the_cache_stays_bounded(
    issuer: AssertionIssuer, verifier: AssertionVerifier, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("shared.admin_identity.VERIFIED_CACHE_SIZE", 3)
    tokens = [issuer.mint(sub=f"s{i}", org="acme").token for i in range(5)]
    for token in tokens:
        verifier.verify(token)
    # Every one still verifies (the evicted ones the long way), and memory stays bounded.
    assert [verifier.verify(t).sub for t in tokens] == [f"s{i}" for i in range(5)]
    assert len(verifier._verified) == 3
