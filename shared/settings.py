"""Settings: every `PORTAL_MFA_*` environment variable, validated at start.

A bad value stops the process with one line that names the variable, never its value
(some of them are keys).
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.http.client_address import parse_proxies


class SettingsError(SystemExit):
    """Raised with a one-line message naming the offending variable."""


class Settings(BaseSettings):
    # hide_input_in_errors: a refused value may be a password or a key, so no error repeats it.
    model_config = SettingsConfigDict(
        env_prefix="PORTAL_MFA_", extra="ignore", hide_input_in_errors=True
    )

    profile: Literal["production", "dev"] = "production"
    kafka_bootstrap: str = "127.0.0.1:9092"
    # Real Kafka takes the idempotent producer (no duplicates on retry); the memory-backed
    # dev broker refuses it, so the dev profile turns it off (DESIGN.md §7).
    kafka_idempotence: bool = True
    # How long a fetch may wait for records. Real Kafka answers as soon as records arrive;
    # the memory-backed dev broker holds every fetch this long, so `dev` sets it low.
    kafka_fetch_max_wait_ms: int = Field(default=500, ge=1, le=10_000)
    kafka_partitions: int = Field(default=3, ge=1, le=1000)
    kafka_replication_factor: int = Field(default=1, ge=1, le=10)
    # How this process proves who it is to the brokers (DESIGN.md §11; docs/security.md,
    # "The broker"): PLAINTEXT is the dev broker's; production Kafka authenticates each
    # service's principal (SASL/SCRAM, or mTLS with SSL) and its ACLs limit what it writes.
    kafka_security_protocol: Literal["PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL", "SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"] = "SCRAM-SHA-512"
    kafka_username: str = Field(default="", validate_default=True)
    kafka_password: SecretStr = Field(default=SecretStr(""), validate_default=True)
    # TLS: the CA that signed the brokers' certificates (default: the system's), and for
    # mTLS this service's own certificate and key.
    kafka_ca_file: str = Field(default="", validate_default=True)
    kafka_cert_file: str = Field(default="", validate_default=True)
    kafka_key_file: str = Field(default="", validate_default=True)
    database_url: str = "postgresql://postgres@127.0.0.1:5432/postgres"

    host: str = "127.0.0.1"
    auth_port: int = Field(default=8000, ge=1, le=65535)
    preferences_port: int = Field(default=8001, ge=1, le=65535)
    contacts_port: int = Field(default=8002, ge=1, le=65535)
    audit_port: int = Field(default=8003, ge=1, le=65535)
    dev_kafka_port: int = Field(default=9092, ge=1, le=65535)
    dev_seed: bool = True
    # Where the audit CLI finds the audit service; default: this machine's audit port.
    audit_url: str = ""
    # Where the admin CLI reads an org's preferences and contacts (HTTP, DESIGN.md §11).
    preferences_url: str = ""
    contacts_url: str = ""

    # The two web frontends (frontends/): the portal customers and vendors sign in to, and
    # the admin console. They reach auth (and the console the admin reads) over HTTP.
    portal_web_port: int = Field(default=8080, ge=1, le=65535)
    console_web_port: int = Field(default=8081, ge=1, le=65535)
    auth_url: str = ""
    # Where invitation links point (the console shows them); default: this machine's portal.
    portal_web_url: str = ""
    # Seals the frontends' session cookies (AES-GCM): base64 of 32 bytes. Required outside
    # dev; `dev` makes one per start.
    web_cookie_key: SecretStr = Field(default=SecretStr(""), repr=False)

    # AEAD keys for TOTP secrets at rest: "kid:base64key,kid2:base64key"; the first
    # that `secret_key_id` names encrypts, all of them decrypt (rotation).
    secret_keys: str = ""
    secret_key_id: str = ""

    # Ed25519 record signing (DESIGN.md §11; `shared.signing_settings` reads both):
    # this service's own key "kid:base64(32-byte seed)", and the keys a consumer trusts,
    # "kid=service:base64(public key),..." (several per service while keys rotate).
    signing_key: str = ""
    trusted_signers: str = ""

    command_timeout_s: float = Field(default=10.0, gt=0, le=300)
    relay_poll_interval_s: float = Field(default=1.0, gt=0, le=60)
    # The relay is not ready once its oldest unsent event has not moved for this long.
    relay_stuck_after_s: float = Field(default=15.0, gt=0, le=3600)
    projection_batch_size: int = Field(default=5000, ge=1, le=100000)
    admin: str = ""
    # Admin assertions (DESIGN.md §11): the issuer's public keys, "kid:base64key,...", all
    # trusted at once (rotation), and the `iss` they must carry. `dev` makes its own.
    admin_issuer_keys: str = ""
    admin_issuer: str = ""
    # An assertion from the identity provider, for the CLI outside the dev stack.
    admin_token: str = Field(default="", repr=False)

    # Observability (docs/observability.md): one JSON object per log line, or readable
    # text (the default in the dev profile only); the lowest level logged; and a directory
    # that receives finished spans as JSON lines (tests, local debugging). OTLP export is
    # OpenTelemetry's own `OTEL_EXPORTER_OTLP_ENDPOINT`.
    log_format: Literal["json", "text"] | None = None
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    trace_dir: str = ""
    # The reverse proxies in front of auth, as CIDRs ("10.0.0.0/8,127.0.0.1"): only their
    # X-Forwarded-For is believed, and only up to the right-most address not among them.
    # Empty: the header is ignored and the login limits count the TCP peer.
    trusted_proxies: str = ""

    # Names this process in its consumer groups (static membership), so a restart is not a
    # rebalance. Must be stable across restarts and unique among replicas; default: host
    # and HTTP port, which are both on one machine.
    instance_id: str = Field(default="", max_length=200)

    def group_instance_id(self, service: str) -> str:
        port = getattr(self, f"{service}_port", 0)
        return f"portal-mfa-{service}-{self.instance_id or f'{socket.gethostname()}-{port}'}"

    @field_validator("kafka_bootstrap")
    @classmethod
    def _host_port(cls, value: str) -> str:
        for address in value.split(","):
            host, _, port = address.strip().rpartition(":")
            if not host or not port.isdigit():
                raise ValueError("expected host:port[,host:port...]")
        return value

    # The kafka_* checks below see the fields defined before theirs in `info.data` (a field
    # that failed its own check is absent, and its error is the one reported).

    @field_validator("kafka_sasl_mechanism")
    @classmethod
    def _no_password_in_clear(cls, value: str, info: ValidationInfo) -> str:
        if value == "PLAIN" and info.data.get("kafka_security_protocol") == "SASL_PLAINTEXT":
            raise ValueError(
                "PLAIN over SASL_PLAINTEXT sends the password in clear; use SCRAM-SHA-512, "
                "or PORTAL_MFA_KAFKA_SECURITY_PROTOCOL=SASL_SSL"
            )
        return value

    @field_validator("kafka_username", "kafka_password")
    @classmethod
    def _sasl_credential(cls, value: str | SecretStr, info: ValidationInfo) -> str | SecretStr:
        protocol = info.data.get("kafka_security_protocol")
        given = bool(value.get_secret_value() if isinstance(value, SecretStr) else value.strip())
        if protocol in _SASL and not given:
            raise ValueError(f"required with PORTAL_MFA_KAFKA_SECURITY_PROTOCOL={protocol}")
        if protocol is not None and protocol not in _SASL and given:
            # Set but unused would look like authentication that is not happening.
            raise ValueError(
                f"only SASL_PLAINTEXT and SASL_SSL use it, and "
                f"PORTAL_MFA_KAFKA_SECURITY_PROTOCOL is {protocol}"
            )
        return value

    @field_validator("kafka_ca_file", "kafka_cert_file", "kafka_key_file")
    @classmethod
    def _tls_file(cls, value: str, info: ValidationInfo) -> str:
        protocol = info.data.get("kafka_security_protocol")
        if value and protocol is not None and protocol not in _TLS:
            raise ValueError(
                f"only SSL and SASL_SSL use it, and "
                f"PORTAL_MFA_KAFKA_SECURITY_PROTOCOL is {protocol}"
            )
        if value and not Path(value).is_file():
            raise ValueError("no such file")
        return value

    @field_validator("kafka_cert_file")
    @classmethod
    def _client_certificate(cls, value: str, info: ValidationInfo) -> str:
        # With SSL alone the broker knows a client only by its certificate: without one
        # this service would be ANONYMOUS, which no ACL here allows.
        if info.data.get("kafka_security_protocol") == "SSL" and not value:
            raise ValueError("required with PORTAL_MFA_KAFKA_SECURITY_PROTOCOL=SSL (mTLS)")
        return value

    @field_validator("kafka_key_file")
    @classmethod
    def _client_key(cls, value: str, info: ValidationInfo) -> str:
        if bool(value) != bool(info.data.get("kafka_cert_file")):
            raise ValueError("goes with PORTAL_MFA_KAFKA_CERT_FILE: set both or neither")
        return value

    @field_validator("database_url")
    @classmethod
    def _postgres_url(cls, value: str) -> str:
        if not value.startswith(("postgresql://", "postgres://")):
            raise ValueError("expected a postgresql:// URL")
        return value

    @field_validator("signing_key")
    @classmethod
    def _signing_key(cls, value: str) -> str:
        if value.strip():
            # Imported only when set: it imports this module, and the signing machinery
            # costs a process with no key of its own (the admin CLI) ~15 ms of start-up.
            from shared.signing_settings import parse_signing_key

            parse_signing_key(value)
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _trusted_proxies(cls, value: str) -> str:
        parse_proxies(value)
        return value

    @field_validator("trusted_signers")
    @classmethod
    def _trusted_signers(cls, value: str) -> str:
        if value:  # an empty map is valid; parsed only when set (as the signing key)
            from shared.signing_settings import parse_trust_map

            parse_trust_map(value)
        return value


_SASL = ("SASL_PLAINTEXT", "SASL_SSL")
_TLS = ("SSL", "SASL_SSL")


def audit_url(settings: Settings) -> str:
    return settings.audit_url or f"http://127.0.0.1:{settings.audit_port}"


def preferences_url(settings: Settings) -> str:
    return settings.preferences_url or f"http://127.0.0.1:{settings.preferences_port}"


def contacts_url(settings: Settings) -> str:
    return settings.contacts_url or f"http://127.0.0.1:{settings.contacts_port}"


def auth_url(settings: Settings) -> str:
    return settings.auth_url or f"http://127.0.0.1:{settings.auth_port}"


def portal_web_url(settings: Settings) -> str:
    return settings.portal_web_url or f"http://127.0.0.1:{settings.portal_web_port}"


def load_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else "?"
        raise SettingsError(f"invalid setting PORTAL_MFA_{field.upper()}: {first['msg']}") from None
