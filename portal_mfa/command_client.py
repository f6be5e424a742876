"""Request/reply over Kafka for the admin console.

FastStream's `broker.request()` does not work for Kafka outside its test client, so the
console publishes with `reply_to` and `correlation_id` headers (the service's FastStream
subscriber publishes its return value there) and reads the reply topic itself.
"""

from __future__ import annotations

import asyncio
import time
from types import TracebackType

from aiokafka import AIOKafkaConsumer, TopicPartition
from opentelemetry.trace import SpanKind

from shared.contracts import ADMIN_REPLIES, Command, CommandReply, command_topic
from shared.kafka import new_producer, security_options
from shared.observability import tracing
from shared.settings import Settings


class NoAnswer(Exception):
    """The owning service did not reply in time."""


class CommandClient:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        # The console is where an admin command's trace begins; spans are exported only
        # where configured (OTLP, or PORTAL_MFA_TRACE_DIR).
        tracing.configure_tracing("cli", settings.trace_dir)
        # A retried command is recognised by its command_id, so the console needs no
        # idempotent producer, and so works against the dev broker with no settings.
        self._producer = new_producer(settings, linger_ms=0, idempotent=False)
        # One short-lived reader waiting for one reply: poll briskly (the dev broker holds a
        # fetch for its whole wait even when the reply is already there).
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap,
            enable_auto_commit=False,
            fetch_max_wait_ms=20,
            **security_options(settings),
        )

    async def __aenter__(self) -> CommandClient:
        try:
            # Both connect at once (neither needs the other); each start ends, well or
            # badly, before this goes on, so nothing is left starting on a failure.
            started = await asyncio.gather(
                self._producer.start(), self._consumer.start(), return_exceptions=True
            )
            for outcome in started:
                if isinstance(outcome, BaseException):
                    raise outcome
            # Before anything is published: no reply can arrive ahead of this position.
            await self._position_at_reply_end()
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        return self

    async def _position_at_reply_end(self) -> None:
        partitions = self._consumer.partitions_for_topic(ADMIN_REPLIES)
        if not partitions:
            await self._consumer.force_metadata_update()
            partitions = self._consumer.partitions_for_topic(ADMIN_REPLIES) or {0}
        tps = [TopicPartition(ADMIN_REPLIES, p) for p in sorted(partitions)]
        self._consumer.assign(tps)
        await self._consumer.seek_to_end(*tps)
        for tp in tps:
            # Resolve the position now, so no reply published after this point is missed.
            await self._consumer.position(tp)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._consumer.stop()
        await self._producer.stop()

    async def send(self, command: Command, timeout_s: float | None = None) -> CommandReply:
        kind = type(command).__name__
        # The trace starts here: the handler, its events and every projection that
        # applies them are this span's descendants (shared.observability.tracing).
        with tracing.span(
            f"portal-mfa admin {kind}",
            kind=SpanKind.PRODUCER,
            attributes={
                "portal_mfa.command_type": kind,
                "portal_mfa.command_id": str(command.command_id),
                "portal_mfa.org_id": command.org_id,
            },
        ):
            return await self._send(command, kind, timeout_s)

    async def _send(self, command: Command, kind: str, timeout_s: float | None) -> CommandReply:
        correlation = str(command.command_id)
        await self._producer.send_and_wait(
            command_topic(command),
            value=command.model_dump_json().encode(),
            key=command.target_id().encode(),
            headers=[
                ("reply_to", ADMIN_REPLIES.encode()),
                ("correlation_id", correlation.encode()),
                ("content-type", b"application/json"),
                ("command_type", kind.encode()),
                *tracing.trace_headers(),
            ],
        )
        limit = timeout_s or self._settings.command_timeout_s
        deadline = time.monotonic() + limit
        while (remaining := deadline - time.monotonic()) > 0:
            batch = await self._consumer.getmany(timeout_ms=int(min(remaining, 0.5) * 1000))
            for records in batch.values():
                for record in records:
                    headers = {k: v.decode() for k, v in record.headers}
                    if headers.get("correlation_id") == correlation and record.value:
                        return CommandReply.model_validate_json(record.value)
            await asyncio.sleep(0)
        raise NoAnswer(f"no answer to {type(command).__name__} within {limit:g}s")
