"""Settings: every `PORTAL_MFA_*` environment variable, validated at start.

A bad value stops the process with one line that names the variable, never its value
(some of them are keys).
"""

from __future__ import annotations

import socket
from typing import Literal

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class SettingsError(SystemExit):
    """Raised with a one-line message naming the offending variable."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PORTAL_MFA_", extra="ignore")

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

    @field_validator("database_url")
    @classmethod
    def _postgres_url(cls, value: str) -> str:
        if not value.startswith(("postgresql://", "postgres://")):
            raise ValueError("expected a postgresql:// URL")
        return value

    @field_validator("signing_key")
    @classmethod
    def _signing_key(cls, value: str) -> str:
        from shared.signing_settings import parse_signing_key  # it imports this module

        if value.strip():
            parse_signing_key(value)
        return value

    @field_validator("trusted_signers")
    @classmethod
    def _trusted_signers(cls, value: str) -> str:
        from shared.signing_settings import parse_trust_map  # it imports this module

        parse_trust_map(value)
        return value


def audit_url(settings: Settings) -> str:
    return settings.audit_url or f"http://127.0.0.1:{settings.audit_port}"


def preferences_url(settings: Settings) -> str:
    return settings.preferences_url or f"http://127.0.0.1:{settings.preferences_port}"


def contacts_url(settings: Settings) -> str:
    return settings.contacts_url or f"http://127.0.0.1:{settings.contacts_port}"


def load_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else "?"
        raise SettingsError(f"invalid setting PORTAL_MFA_{field.upper()}: {first['msg']}") from None
