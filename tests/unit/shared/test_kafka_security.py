"""Broker credentials (DESIGN.md §11): refused when inconsistent, never shown, and mapped
to the same client keyword arguments for aiokafka and FastStream."""

from __future__ import annotations

import datetime as dt
import ssl
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from faststream.kafka.security import parse_security
from pydantic import ValidationError

from shared.kafka import faststream_security, new_producer, security_options
from shared.settings import Settings, SettingsError, load_settings

PASSWORD = "s3cret-broker-password-4711"
SASL_KEYS = {"sasl_mechanism", "sasl_plain_username", "sasl_plain_password"}
KAFKA_VARS = (
    "SECURITY_PROTOCOL",
    "SASL_MECHANISM",
    "USERNAME",
    "PASSWORD",
    "CA_FILE",
    "CERT_FILE",
    "KEY_FILE",
)


@pytest.fixture(autouse=True)
def _no_kafka_security_from_outside(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in KAFKA_VARS:
        monkeypatch.delenv(f"PORTAL_MFA_KAFKA_{name}", raising=False)


@pytest.fixture(scope="module")
def pem_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """A self-signed certificate and its key (serves as CA file and as client certificate)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "portal-mfa-test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(cert_file), str(key_file)


def refusal(monkeypatch: pytest.MonkeyPatch, **env: str) -> str:
    for name, value in env.items():
        monkeypatch.setenv(f"PORTAL_MFA_KAFKA_{name}", value)
    with pytest.raises(SettingsError) as refused:
        load_settings()
    return str(refused.value)


# --- refused combinations --------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"SECURITY_PROTOCOL": "SASL"}, "SECURITY_PROTOCOL"),
        ({"SECURITY_PROTOCOL": "SASL_PLAINTEXT"}, "USERNAME"),
        ({"SECURITY_PROTOCOL": "SASL_SSL", "PASSWORD": PASSWORD}, "USERNAME"),
        ({"SECURITY_PROTOCOL": "SASL_PLAINTEXT", "USERNAME": "auth"}, "PASSWORD"),
        # Credentials that would go unused look like authentication that is not happening.
        ({"USERNAME": "auth", "PASSWORD": PASSWORD}, "USERNAME"),
        ({"PASSWORD": PASSWORD}, "PASSWORD"),
        (
            {"SECURITY_PROTOCOL": "SSL", "USERNAME": "auth", "PASSWORD": PASSWORD},
            "USERNAME",
        ),
        (
            {
                "SECURITY_PROTOCOL": "SASL_PLAINTEXT",
                "SASL_MECHANISM": "SCRAM-SHA-1",
                "USERNAME": "auth",
                "PASSWORD": PASSWORD,
            },
            "SASL_MECHANISM",
        ),
        # PLAIN without TLS puts the password on the wire.
        (
            {
                "SECURITY_PROTOCOL": "SASL_PLAINTEXT",
                "SASL_MECHANISM": "PLAIN",
                "USERNAME": "auth",
                "PASSWORD": PASSWORD,
            },
            "SASL_MECHANISM",
        ),
        (
            {
                "SECURITY_PROTOCOL": "SASL_SSL",
                "USERNAME": "auth",
                "PASSWORD": PASSWORD,
                "CA_FILE": "/nonexistent/ca.pem",
            },
            "CA_FILE",
        ),
    ],
)
def test_an_inconsistent_broker_setting_is_refused_naming_it_never_the_password(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], named: str
) -> None:
    message = refusal(monkeypatch, **env)
    assert f"PORTAL_MFA_KAFKA_{named}:" in message
    assert PASSWORD not in message
    assert "\n" not in message


def test_tls_files_are_refused_without_tls(
    monkeypatch: pytest.MonkeyPatch, pem_files: tuple[str, str]
) -> None:
    cert, _ = pem_files
    message = refusal(monkeypatch, CA_FILE=cert)
    assert "PORTAL_MFA_KAFKA_CA_FILE:" in message
    assert "PLAINTEXT" in message


def test_ssl_alone_needs_a_client_certificate_and_its_key(
    monkeypatch: pytest.MonkeyPatch, pem_files: tuple[str, str]
) -> None:
    cert, _ = pem_files
    assert "PORTAL_MFA_KAFKA_CERT_FILE:" in refusal(monkeypatch, SECURITY_PROTOCOL="SSL")
    assert "PORTAL_MFA_KAFKA_KEY_FILE:" in refusal(
        monkeypatch, SECURITY_PROTOCOL="SSL", CERT_FILE=cert
    )


def test_the_password_is_in_no_validation_error_repr_or_dump() -> None:
    with pytest.raises(ValidationError) as refused:
        Settings(kafka_password=PASSWORD)  # type: ignore[arg-type]
    assert PASSWORD not in str(refused.value)
    assert PASSWORD not in repr(refused.value)
    settings = Settings(
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_username="auth",
        kafka_password=PASSWORD,  # type: ignore[arg-type]
    )
    for shown in (repr(settings), str(settings), settings.model_dump_json()):
        assert PASSWORD not in shown
    assert settings.kafka_password.get_secret_value() == PASSWORD


# --- the client keyword arguments ----------------------------------------------------------


def test_plaintext_by_default_adds_no_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings()
    assert security_options(settings) == {"security_protocol": "PLAINTEXT"}
    assert faststream_security(settings) is None


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-512", "SCRAM-SHA-256"])
def test_sasl_plaintext_carries_mechanism_user_and_password(mechanism: str) -> None:
    settings = Settings(
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_mechanism=mechanism,  # type: ignore[arg-type]
        kafka_username="preferences",
        kafka_password=PASSWORD,  # type: ignore[arg-type]
    )
    assert security_options(settings) == {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": mechanism,
        "sasl_plain_username": "preferences",
        "sasl_plain_password": PASSWORD,
    }


def test_scram_sha_512_is_the_default_mechanism() -> None:
    settings = Settings(
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_username="audit",
        kafka_password=PASSWORD,  # type: ignore[arg-type]
    )
    assert security_options(settings)["sasl_mechanism"] == "SCRAM-SHA-512"


def test_sasl_ssl_adds_a_verifying_context_for_the_ca(pem_files: tuple[str, str]) -> None:
    cert, _ = pem_files
    settings = Settings(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="PLAIN",
        kafka_username="console",
        kafka_password=PASSWORD,  # type: ignore[arg-type]
        kafka_ca_file=cert,
    )
    options = security_options(settings)
    assert options.keys() == {"security_protocol", "ssl_context"} | SASL_KEYS
    context = options["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode is ssl.CERT_REQUIRED
    assert context.check_hostname
    # The CA file's certificate is the one trusted.
    assert [c["subject"] for c in context.get_ca_certs()] == [
        ((("commonName", "portal-mfa-test"),),)
    ]


def test_ssl_is_mtls_without_sasl_keys(pem_files: tuple[str, str]) -> None:
    cert, key = pem_files
    settings = Settings(
        kafka_security_protocol="SSL", kafka_ca_file=cert, kafka_cert_file=cert, kafka_key_file=key
    )
    options = security_options(settings)
    assert options.keys() == {"security_protocol", "ssl_context"}
    assert options["security_protocol"] == "SSL"
    assert isinstance(options["ssl_context"], ssl.SSLContext)


def test_a_wrong_client_key_is_refused_when_the_context_is_made(
    tmp_path: Path, pem_files: tuple[str, str]
) -> None:
    cert, _ = pem_files
    other = ec.generate_private_key(ec.SECP256R1())
    wrong_key = tmp_path / "other.pem"
    wrong_key.write_bytes(
        other.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    settings = Settings(
        kafka_security_protocol="SSL", kafka_cert_file=cert, kafka_key_file=str(wrong_key)
    )
    with pytest.raises(ssl.SSLError):
        security_options(settings)


def _sasl_ssl(pem_files: tuple[str, str]) -> Settings:
    return Settings(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-256",
        kafka_username="contacts",
        kafka_password=PASSWORD,  # type: ignore[arg-type]
        kafka_ca_file=pem_files[0],
    )


@pytest.mark.parametrize(
    "case", ["sasl_plaintext_512", "sasl_plaintext_256", "sasl_ssl", "sasl_ssl_plain", "mtls"]
)
def test_faststream_gets_the_same_connection_as_aiokafka(
    case: str, pem_files: tuple[str, str]
) -> None:
    cert, key = pem_files
    settings = {
        "sasl_plaintext_512": Settings(
            kafka_security_protocol="SASL_PLAINTEXT",
            kafka_username="preferences",
            kafka_password=PASSWORD,  # type: ignore[arg-type]
        ),
        "sasl_plaintext_256": Settings(
            kafka_security_protocol="SASL_PLAINTEXT",
            kafka_sasl_mechanism="SCRAM-SHA-256",
            kafka_username="preferences",
            kafka_password=PASSWORD,  # type: ignore[arg-type]
        ),
        "sasl_ssl": _sasl_ssl(pem_files),
        "sasl_ssl_plain": _sasl_ssl(pem_files).model_copy(update={"kafka_sasl_mechanism": "PLAIN"}),
        "mtls": Settings(kafka_security_protocol="SSL", kafka_cert_file=cert, kafka_key_file=key),
    }[case]
    expected = security_options(settings)
    # What FastStream's KafkaBroker hands aiokafka for `security=`.
    given = {k: v for k, v in parse_security(faststream_security(settings)).items() if v}
    assert given.keys() == expected.keys()
    for name, value in expected.items():
        if name == "ssl_context":
            assert isinstance(given[name], ssl.SSLContext)
        else:
            assert given[name] == value, name


async def test_aiokafka_clients_accept_the_options(pem_files: tuple[str, str]) -> None:
    # aiokafka checks the combination when a client is made (a missing context or user
    # raises here); nothing is started, so no broker is needed.
    for settings in (
        Settings(),
        _sasl_ssl(pem_files),
        Settings(
            kafka_security_protocol="SSL",
            kafka_cert_file=pem_files[0],
            kafka_key_file=pem_files[1],
        ),
    ):
        options = security_options(settings)
        new_producer(settings)
        AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, **options)
        admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap, **options)
        await admin.close()


def test_the_dev_stack_refuses_sasl_on_its_plaintext_broker(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from portal_mfa import dev_process
    from portal_mfa.dev import DevStack, DevStackFailed

    monkeypatch.delenv("PORTAL_MFA_KAFKA_BOOTSTRAP", raising=False)
    ports = {f"{s}_port": dev_process.free_port() for s in ("auth", "preferences", "contacts")}
    settings = Settings(
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_username="auth",
        kafka_password=PASSWORD,  # type: ignore[arg-type]
        audit_port=dev_process.free_port(),
        **ports,  # type: ignore[arg-type]
    )
    stack = DevStack(settings)
    with pytest.raises(DevStackFailed, match="PORTAL_MFA_KAFKA_SECURITY_PROTOCOL"):
        stack.start()
    # Refused before anything was started.
    assert stack.broker is None and stack.postgres is None
