"""Which failures may pass by themselves: the classes a retry or a 503 is for."""

from __future__ import annotations

import asyncpg
import pytest
from aiokafka.errors import KafkaTimeoutError, MessageSizeTooLargeError

from shared.transient import failure_name, is_transient, is_transient_database_error

TRANSIENT = [
    asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
    asyncpg.exceptions.ConnectionFailureError(),  # 08006
    asyncpg.exceptions.CannotConnectNowError(),  # 57P03, starting up or shutting down
    asyncpg.exceptions.AdminShutdownError(),  # 57P01
    asyncpg.QueryCanceledError("canceling statement due to statement timeout"),  # 57014
    asyncpg.exceptions.LockNotAvailableError(),  # 55P03, lock_timeout
    asyncpg.exceptions.SerializationError(),  # 40001
    asyncpg.exceptions.DeadlockDetectedError(),  # 40P01
    asyncpg.exceptions.TooManyConnectionsError(),  # 53300
    asyncpg.exceptions.DiskFullError(),  # 53100
    asyncpg.InterfaceError("cannot perform operation: connection is closed"),
    asyncpg.exceptions.InternalClientError(
        "cannot switch to state 12; another operation is in progress"
    ),
    asyncpg.exceptions.OutdatedSchemaCacheError("cached statement plan is invalid"),
    ConnectionRefusedError(),
    FileNotFoundError(),  # the unix socket, while the server restarts
    TimeoutError(),  # a pool that could not hand out a connection in time
]

PERMANENT = [
    asyncpg.UniqueViolationError(),  # 23505
    asyncpg.exceptions.InvalidTextRepresentationError(),  # 22P02
    asyncpg.exceptions.UndefinedTableError(),  # 42P01
    asyncpg.exceptions.ObjectInUseError(),  # 55006: 55 is transient only as 55P03
    ValueError("a bug"),
]


@pytest.mark.parametrize("exc", TRANSIENT, ids=lambda e: type(e).__name__)
def test_outages_and_interruptions_are_transient(exc: BaseException) -> None:
    assert is_transient_database_error(exc)
    assert is_transient(exc)


@pytest.mark.parametrize("exc", PERMANENT, ids=lambda e: type(e).__name__)
def test_what_fails_the_same_way_again_is_not(exc: BaseException) -> None:
    assert not is_transient(exc)


def test_any_broker_failure_is_transient_for_a_consumer() -> None:
    assert is_transient(KafkaTimeoutError())
    assert is_transient(MessageSizeTooLargeError())
    assert not is_transient_database_error(KafkaTimeoutError())


def test_a_failure_is_named_by_type_and_sqlstate_never_by_its_text() -> None:
    exc = asyncpg.QueryCanceledError("value 'hunter2' in the message")
    assert failure_name(exc) == "QueryCanceledError (57014)"
    assert failure_name(ConnectionRefusedError("secret")) == "ConnectionRefusedError"
