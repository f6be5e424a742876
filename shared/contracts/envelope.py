"""The envelope every event shares: ids, aggregate, version, who and why, and its Kafka form."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, ClassVar, Self

from pydantic import BaseModel, ConfigDict, Field, field_serializer

if TYPE_CHECKING:
    from shared.signing import SignedRecord


@dataclass(frozen=True)
class Cause:
    """Who and what made events happen, and when: copied into every envelope it causes."""

    actor: str
    at: datetime
    correlation_id: str | None = None
    causation_id: str | None = None


# defer_build: a model's validator is built when it is first used, not at import. The admin
# CLI imports every contract to send one command; building all ~60 models cost it ~40 ms.
class Payload(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)


class EventEnvelope(BaseModel):
    """Fields shared by every event; subclasses fix `event_type` and `payload`."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    topic: ClassVar[str]
    aggregate_kind: ClassVar[str]
    current_schema_version: ClassVar[int] = 1

    event_id: uuid.UUID
    event_type: str
    schema_version: int
    occurred_at: datetime
    org_id: str = Field(min_length=1)
    aggregate_type: str
    aggregate_id: str = Field(min_length=1)
    aggregate_version: int = Field(ge=1)
    correlation_id: str
    causation_id: str | None = None
    actor: str = Field(min_length=1)
    payload: Payload
    # Not part of the event: the signed Kafka record it was read from, once a consumer has
    # verified it (`shared.signing.verified_event`); the audit log keeps it as evidence.
    # Kept in pydantic's slot for private state, not declared as a `PrivateAttr`: a declared
    # one makes pydantic run Python code after validating every event to fill in its
    # default (≈ 1 µs of 4 per parse, more on a busy GIL; a rebuild parses every event).

    @property
    def signed_record(self) -> SignedRecord | None:
        private = self.__pydantic_private__
        return None if private is None else private.get("signed_record")

    def keep_signed_record(self, record: SignedRecord) -> None:
        object.__setattr__(self, "__pydantic_private__", {"signed_record": record})

    def __eq__(self, other: object) -> bool:
        # Equal by content: where an event was read from (its signed record) is not content.
        if not isinstance(other, EventEnvelope):
            return NotImplemented
        return type(self) is type(other) and self.__dict__ == other.__dict__

    @field_serializer("occurred_at")
    def _rfc3339_utc(self, value: datetime) -> str:
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")

    @classmethod
    def new(
        cls,
        *,
        org_id: str,
        aggregate_id: str,
        aggregate_version: int,
        payload: Payload,
        cause: Cause,
    ) -> Self:
        event_type = cls.model_fields["event_type"].default
        return cls(
            event_id=uuid.uuid4(),
            event_type=event_type,
            schema_version=cls.current_schema_version,
            occurred_at=cause.at,
            org_id=org_id,
            aggregate_type=cls.aggregate_kind,
            aggregate_id=aggregate_id,
            aggregate_version=aggregate_version,
            correlation_id=cause.correlation_id or str(uuid.uuid4()),
            causation_id=cause.causation_id,
            actor=cause.actor,
            payload=payload,
        )

    def kafka_key(self) -> bytes:
        return self.aggregate_id.encode()

    def kafka_headers(self) -> list[tuple[str, bytes]]:
        return [
            ("event_type", self.event_type.encode()),
            ("schema_version", str(self.schema_version).encode()),
        ]

    def to_json(self) -> bytes:
        return self.model_dump_json().encode()


class Empty(Payload):
    pass


def now_utc() -> datetime:
    return datetime.now(UTC)
