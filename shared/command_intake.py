"""A command topic's subscriber, as FastStream means it: typed commands in, typed replies out.

A service's handler is an ordinary FastStream subscriber,

    async def preferences_commands(command: PreferencesCommand, admin: Admin) -> CommandReply

and `CommandIntake.subscribe` puts around it, as a per-message middleware, what every
command topic needs:

- admission first: the admin assertion is verified against the command *as received* (its
  org, the digest of its bytes) before it is parsed (shared.command_handling.admit). What
  is not JSON, not signed by an admin, or not a command of the handler's type is answered
  with a rejection and committed: a poison command never reaches the handler, never
  loops, and is never dead-lettered in silence;
- an infrastructure failure (the database away) is redelivered (NACK) after a back-off
  that grows while failures go on, so an outage costs a few attempts a minute instead of
  hundreds a second; the command log makes the retry harmless;
- the reply goes to the admin reply topic only, whatever `reply_to` a sender names (a
  command topic is open to every admin console, and a reply must not land on an event
  topic), and only when the sender asked for one (a `reply_to` header);
- one log line when a command arrives and one when it is done, a span that continues the
  console's trace, and the command metrics (shared.command_metrics).

The handler's `command` annotation is the one type everything reads: FastStream validates
with it, admission parses with it, and the AsyncAPI document (shared.asyncapi) names it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Annotated, Any, Protocol, TypeVar, get_type_hints

from faststream import BaseMiddleware, Context
from faststream.kafka import KafkaBroker, KafkaRouter
from faststream.message import StreamMessage
from faststream.middlewares import AckPolicy
from opentelemetry.trace import SpanKind
from pydantic import TypeAdapter

from shared import command_metrics
from shared.admin_identity import AdminAssertion, AssertionVerifier
from shared.backoff import Backoff
from shared.command_handling import admit
from shared.contracts import ADMIN_REPLIES, CommandReply
from shared.kafka import faststream_security
from shared.observability import context, tracing
from shared.settings import Settings
from shared.transient import failure_name

log = logging.getLogger(__name__)
# One line when a command arrives and one when it is done, each in the command's context.
command_log = logging.getLogger("portal_mfa.command")

# The verified admin, as a handler receives it (FastStream's context, set by admission).
Admin = Annotated[AdminAssertion, Context("admin")]
Handler = TypeVar("Handler", bound=Callable[..., Awaitable[CommandReply]])


class CommandFailed(Exception):
    """A command that could not be handled now; it is redelivered after a back-off."""


class Verifies(Protocol):
    """Whoever holds the admin verifier once the service is up."""

    @property
    def verifier(self) -> AssertionVerifier: ...


class CommandIntake:
    """The broker of one command-owning service, and how it is doing at its commands."""

    def __init__(self, *, name: str, settings: Settings, owner: Callable[[], Verifies]) -> None:
        self.name = name
        self._settings = settings
        self._owner = owner
        self.broker = KafkaBroker(
            settings.kafka_bootstrap,
            acks="all",
            enable_idempotence=settings.kafka_idempotence,
            client_id=f"portal-mfa-{name}",
            security=faststream_security(settings),
            # FastStream's lines go through the process's log format
            # (shared.observability.logs).
            logger=logging.getLogger("faststream.kafka"),
            # Its per-message "Received"/"Processed" lines are written outside the command's
            # context: DEBUG, and the intake writes the service's own pair inside it.
            log_level=logging.DEBUG,
        )
        # Why commands fail right now (readiness names it), None while they succeed.
        self.failure: str | None = None
        self.failures = Backoff(first_s=0.5, cap_s=10.0)
        # What each topic's subscriber admits, from its `command` annotation.
        self.admits: dict[str, TypeAdapter[Any]] = {}

    def subscribe(self, topic: str) -> Callable[[Handler], Handler]:
        """Subscribe a handler to `topic`; its return value is the reply."""

        def register(handler: Handler) -> Handler:
            commands: TypeAdapter[Any] = TypeAdapter(
                get_type_hints(handler, include_extras=True)["command"]
            )
            self.admits[topic] = commands
            router = KafkaRouter(middlewares=[_ScopeFactory(self, commands)])
            subscriber = router.subscriber(
                topic,
                group_id=f"portal-mfa-{self.name}",
                # Static membership: a restarted instance takes its partitions back at once
                # instead of waiting out a rebalance (measured on the dev broker: 19.6 s ->
                # 9.4 s to answer).
                group_instance_id=self._settings.group_instance_id(self.name),
                auto_offset_reset="earliest",
                fetch_max_wait_ms=self._settings.kafka_fetch_max_wait_ms,
                # A command is committed only after its reply is out; an infrastructure
                # failure leaves it to be redelivered.
                ack_policy=AckPolicy.NACK_ON_ERROR,
                # Never FastStream's own answer to `reply_to`: the publisher below is the
                # only way out, to the admin reply topic.
                no_reply=True,
                # The body as JSON whatever its content-type says: admission has parsed it
                # so already, and FastStream's own decoder would hand a `text/plain` command
                # over as a string that no command type accepts (a redelivery loop).
                decoder=_command_body,
                title=topic,
            )
            replies = router.publisher(ADMIN_REPLIES, title=ADMIN_REPLIES)
            subscriber(replies(handler))
            self.broker.include_router(router)
            return handler

        return register


async def _command_body(msg: StreamMessage[Any]) -> Any:
    return json.loads(msg.body)


class _ScopeFactory:
    """FastStream makes one middleware per message: this makes ours."""

    def __init__(self, intake: CommandIntake, commands: TypeAdapter[Any]) -> None:
        self._intake = intake
        self._commands = commands

    def __call__(self, msg: Any, /, *, context: Any) -> _CommandScope:
        return _CommandScope(msg, context=context, intake=self._intake, commands=self._commands)


class _CommandScope(BaseMiddleware):
    """One command's life in the service: admission, handling, the reply, its telemetry."""

    def __init__(
        self, msg: Any, /, *, context: Any, intake: CommandIntake, commands: TypeAdapter[Any]
    ) -> None:
        super().__init__(msg, context=context)
        self._intake = intake
        self._commands = commands
        self._said = command_metrics.Described()
        self._started = time.perf_counter()
        self._within = contextlib.ExitStack()
        self._reply: CommandReply | None = None
        # A publish outside a command (none today) goes out as asked.
        self._reply_wanted = True

    async def on_receive(self) -> None:
        if self.msg is None:  # a publish, not a message: nothing to scope
            return
        self._said = said = command_metrics.described(self.msg.value or b"")
        # The console's span is this one's parent: the events it writes carry the trace on.
        self._within.enter_context(
            context.unit_of_work(correlation=said.correlation_id, org=said.org_id)
        )
        self._within.enter_context(
            tracing.span(
                f"{self._intake.name} handle {said.command_type}",
                kind=SpanKind.CONSUMER,
                parent=tracing.context_from(self.msg.headers or ()),
                attributes={"portal_mfa.command_type": said.command_type},
            )
        )
        self._started = time.perf_counter()
        command_log.info(
            "received %s", said.command_type, extra={"command_type": said.command_type}
        )

    async def consume_scope(
        self, call_next: Callable[[StreamMessage[Any]], Awaitable[Any]], msg: StreamMessage[Any]
    ) -> Any:
        self._reply_wanted = bool(msg.reply_to)
        intake = self._intake
        try:
            admitted = admit(self._commands, intake._owner().verifier, msg.body)
            if isinstance(admitted, CommandReply):
                # Poison or refused: answered, committed, never handed to the handler.
                reply = admitted
            else:
                with self.context.scope("admin", admitted.admin):
                    reply = await call_next(msg)
        except Exception as exc:
            if intake.failure is None:
                log.warning(
                    "%s: commands failing (%s); retrying with back-off",
                    intake.name,
                    failure_name(exc),
                )
            intake.failure = f"commands failing: {failure_name(exc)}"
            # Wait before the NACK: it redelivers at once, and the next attempt waits longer.
            await intake.failures.wait()
            # FastStream logs what it is handed with its message: hand it the kind only (an
            # exception's text may quote the command's values).
            raise CommandFailed(failure_name(exc)) from None
        if intake.failure is not None:
            log.warning("%s: commands succeed again", intake.name)
            intake.failure = None
        intake.failures.reset()
        self._reply = reply
        return reply

    async def publish_scope(self, call_next: Callable[[Any], Awaitable[Any]], cmd: Any) -> Any:
        if not self._reply_wanted:
            return None
        return await call_next(cmd)

    async def after_processed(
        self,
        exc_type: type[BaseException] | None = None,
        exc_val: BaseException | None = None,
        exc_tb: TracebackType | None = None,
    ) -> bool | None:
        if self.msg is None:
            return False
        # After the reply is out (or not): what the command took, reply included.
        took_s = time.perf_counter() - self._started
        reply = self._reply if exc_type is None else None
        kind = self._said.command_type
        command_metrics.count(self._intake.name, kind, reply, took_s)
        outcome = "failed" if reply is None else "accepted" if reply.ok else "rejected"
        command_log.info(
            "%s %s %.1f ms",
            outcome,
            kind,
            took_s * 1000,
            extra={
                "command_type": kind,
                "command_outcome": outcome,
                "duration_ms": round(took_s * 1000, 1),
            },
        )
        # The span ends last, marked with the failure's type if there was one.
        self._within.__exit__(exc_type, exc_val, exc_tb)
        return False
