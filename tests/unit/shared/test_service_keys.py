"""Each service refuses to start without the keys its part in signing needs (DESIGN.md §11)."""

from __future__ import annotations

import base64

import pytest

from services.audit.main import create_app as audit_app
from services.auth.main import create_app as auth_app
from services.contacts.main import create_app as contacts_app
from services.preferences.main import create_app as preferences_app
from shared.admin_identity import AssertionIssuer
from shared.settings import Settings, SettingsError
from shared.signing import RecordSigner
from shared.signing_settings import format_signing_key, format_trust_map

URL = "postgresql://postgres@127.0.0.1:1/unused"  # never reached: the refusal comes first
KEY = format_signing_key(RecordSigner.generate("k1"))
TRUST = format_trust_map({"preferences": RecordSigner.generate("k2")})
# Every service also verifies admin assertions: given here, so the refusal is the signing one.
ADMIN = {
    "admin_issuer_keys": AssertionIssuer.generate(key_id="a1", issuer="idp").trusted_key_entry,
    "admin_issuer": "idp",
}
AEAD = {"secret_keys": f"s1:{base64.b64encode(bytes(32)).decode()}", "secret_key_id": "s1"}


@pytest.mark.parametrize("create_app", [preferences_app, contacts_app, auth_app])
def test_a_publisher_does_not_start_without_its_signing_key(create_app: object) -> None:
    assert callable(create_app)
    with pytest.raises(SettingsError, match="PORTAL_MFA_SIGNING_KEY"):
        create_app(Settings(trusted_signers=TRUST, **AEAD, **ADMIN), URL)


@pytest.mark.parametrize("create_app", [auth_app, audit_app])
def test_a_consumer_does_not_start_trusting_nobody(create_app: object) -> None:
    assert callable(create_app)
    with pytest.raises(SettingsError, match="PORTAL_MFA_TRUSTED_SIGNERS"):
        create_app(Settings(signing_key=KEY, **AEAD, **ADMIN), URL)


def test_with_their_keys_they_are_built() -> None:
    preferences_app(Settings(signing_key=KEY, **ADMIN), URL)
    auth_app(Settings(signing_key=KEY, trusted_signers=TRUST, **AEAD, **ADMIN), URL)
    audit_app(Settings(trusted_signers=TRUST, **ADMIN), URL)
