"""How the CLI proves who the admin is: the dev stack's private state, or a given token."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

import pytest

from portal_mfa import dev_state
from portal_mfa.admin_credentials import DevIssuer, GivenToken, NoCredentials, admin_credentials
from shared.admin_identity import AssertionIssuer, AssertionVerifier
from shared.contracts import EnableMfaPolicy
from shared.settings import Settings

BROKER = "127.0.0.1:29092"


@pytest.fixture(autouse=True)
def private_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.delenv("PORTAL_MFA_ADMIN_TOKEN", raising=False)
    monkeypatch.delenv("PORTAL_MFA_ADMIN", raising=False)
    return tmp_path


@pytest.fixture
def issuer() -> AssertionIssuer:
    return AssertionIssuer.generate(key_id="dev-1", issuer="portal-mfa-dev")


def test_the_dev_state_is_private_and_gives_back_the_issuer(issuer: AssertionIssuer) -> None:
    dev_state.write("postgresql://x", BROKER, issuer)
    path = dev_state.state_file(BROKER)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    found = dev_state.issuer(BROKER)
    assert found is not None and found.trusted_key_entry == issuer.trusted_key_entry


def test_a_state_others_could_read_or_plant_is_not_trusted(issuer: AssertionIssuer) -> None:
    dev_state.write("postgresql://x", BROKER, issuer)
    path = dev_state.state_file(BROKER)
    os.chmod(path, 0o644)
    assert dev_state.issuer(BROKER) is None
    os.chmod(path, 0o600)
    os.chmod(path.parent, 0o755)  # noqa: S103 (the planted, too open directory)
    assert dev_state.issuer(BROKER) is None
    with pytest.raises(PermissionError):
        dev_state.write("postgresql://x", BROKER, issuer)
    os.chmod(path.parent, 0o700)
    # A file left readable by an earlier run is closed again on the next write.
    os.chmod(path, 0o644)
    dev_state.write("postgresql://x", BROKER, issuer)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_on_the_dev_stack_the_cli_mints_one_assertion_per_command(
    issuer: AssertionIssuer,
) -> None:
    dev_state.write("postgresql://x", BROKER, issuer)
    credentials = admin_credentials(Settings(kafka_bootstrap=BROKER), actor="alice")
    assert isinstance(credentials, DevIssuer)
    verifier = AssertionVerifier.from_setting(issuer.trusted_key_entry, issuer=issuer.issuer)
    command = credentials.sign(EnableMfaPolicy(org_id="acme"))
    claims = verifier.for_command(command.assertion, org_id="acme", digest=command.digest())
    assert (claims.sub, claims.org, claims.cmd) == ("alice", "acme", command.digest())
    assert admin_credentials(Settings(kafka_bootstrap=BROKER, admin="e2e")).bearer("acme", "audit")
    default = admin_credentials(Settings(kafka_bootstrap=BROKER))
    assert isinstance(default, DevIssuer) and default.actor == "dev-admin"


def test_elsewhere_it_sends_the_given_token_and_cannot_mint(issuer: AssertionIssuer) -> None:
    settings = Settings(kafka_bootstrap=BROKER, admin_token="given.jwt.token")
    credentials = admin_credentials(settings)
    assert isinstance(credentials, GivenToken)
    assert credentials.sign(EnableMfaPolicy(org_id="acme")).assertion == "given.jwt.token"
    assert credentials.bearer("acme", "admin") == "given.jwt.token"
    with pytest.raises(NoCredentials):
        credentials.mint("acme", "admin")
    with pytest.raises(NoCredentials, match="--actor"):
        admin_credentials(settings, actor="eve")
    with pytest.raises(NoCredentials, match="PORTAL_MFA_ADMIN_TOKEN"):
        admin_credentials(Settings(kafka_bootstrap="127.0.0.1:1"))
