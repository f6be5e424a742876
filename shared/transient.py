"""Which failures may pass by themselves (retry, answer 503) and which never will.

Transient: the database or broker is away, busy, or interrupted this statement — the
same work can succeed later unchanged. PostgreSQL says so by SQLSTATE class: 08
connection, 40 transaction rollback (serialization failure, deadlock), 53 insufficient
resources (too many connections, disk full), 57 operator intervention (statement
cancelled or timed out, admin shutdown, cannot connect now), and 55P03 lock not
available (lock_timeout).
"""

from __future__ import annotations

import asyncpg
from aiokafka.errors import KafkaError

TRANSIENT_SQLSTATE_CLASSES = frozenset({"08", "40", "53", "57"})
TRANSIENT_SQLSTATES = frozenset({"55P03"})


def is_transient_database_error(exc: BaseException) -> bool:
    """A PostgreSQL failure (or a failure to reach PostgreSQL) that may pass by itself."""
    if isinstance(exc, asyncpg.PostgresError):
        sqlstate = str(getattr(exc, "sqlstate", "") or "")
        return sqlstate[:2] in TRANSIENT_SQLSTATE_CLASSES or sqlstate in TRANSIENT_SQLSTATES
    # A connection used after it broke (or caught mid-statement when the server died,
    # which asyncpg reports as an internal client error), or a cached statement outdated
    # by DDL elsewhere (a rebuild's swap): a fresh connection or a second try succeeds.
    if isinstance(
        exc,
        asyncpg.InterfaceError
        | asyncpg.exceptions.InternalClientError
        | asyncpg.exceptions.OutdatedSchemaCacheError,
    ):
        return True
    # Refused, reset or a missing unix socket while PostgreSQL restarts; a pool that could
    # not hand out a connection in time.
    return isinstance(exc, OSError | TimeoutError)


def is_transient(exc: BaseException) -> bool:
    """Transient for the database, or any broker failure (the broker heals or is healed)."""
    return is_transient_database_error(exc) or isinstance(exc, KafkaError)


def failure_name(exc: BaseException) -> str:
    """A short, stable name for logs and readiness: the type and SQLSTATE, never the text
    (an error's text may quote values)."""
    sqlstate = getattr(exc, "sqlstate", None) if isinstance(exc, asyncpg.PostgresError) else None
    return f"{type(exc).__name__} ({sqlstate})" if sqlstate else type(exc).__name__
