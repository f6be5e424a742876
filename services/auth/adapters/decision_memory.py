"""Login-requirement answers kept in memory, correct with any number of auth replicas,
and never answered while the database may be away.

The answer is a function of rows in auth's database (the projected org policy and
contact, the events held beyond a gap, the contact's enabled enrollment). Triggers on
those tables NOTIFY every auth replica of the contact or org that changed, in the
writing transaction, so whichever replica (or rebuild swap) wrote it. Each replica
LISTENs on a connection of its own and forgets what changed.

A replica answers from memory only while it is sure it has heard every change and that
its database is there:

- it stores an answer only if nothing was forgotten while that answer was being read (a
  generation count), so a change racing the read can never be cached over;
- it trusts its memory only while its listening connection answered a `SELECT 1` sent
  less than TRUST_WINDOW_S ago. PostgreSQL delivers a session's pending notifications
  before the answer to its next query, so a check that came back proves every change
  committed before it was sent has been heard (this catches a connection that hangs
  without closing);
- the moment a database failure is seen — the listening connection closes or errs, a
  request meets one, readiness finds the database away — the memory is cleared and off
  until a check *sent after that failure* comes back. Meanwhile every lookup reads the
  database, which answers or fails: a lookup answers 503 while PostgreSQL is down, as
  every other route does (fail closed; tests/faults/test_auth_fails_closed.py).

So while the listening connection is sound, a change reaches every replica's answers as
soon as its event loop reads the notification (milliseconds: well inside the 250 ms in
which a reset must reach every replica, tests/integration/test_decision_memory.py); a
connection that fails is off at once, one that hangs silently within TRUST_WINDOW_S.
Going off for a failure is said once (a log line), counted (a metric) and shown by
/readyz (`lookup_memory`); it is not a readiness failure, since the database answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Final, Literal

import asyncpg
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from shared.login_rule.login_requirement import LoginRequirement
from shared.transient import failure_name

log = logging.getLogger(__name__)

CHANNEL: Final = "login_requirement_changed"
EVERYTHING: Final = "*"  # a rebuild's swap: every answer may have changed
ORG_PREFIX: Final = "org:"
CONTACT_PREFIX: Final = "contact:"
# Answers kept, least recently used dropped: ~830 bytes each (measured), so ≤ ~40 MB —
# the contacts logging in now, not all 1,000,000 (the §9 memory row is 200 MB in all).
CAPACITY: Final = 50_000
# A check every 200 ms; the memory answers while one sent in the last second came back.
# The window only bounds a listener cut *silently* (no reset, no error: the check hangs);
# a closed or failing connection turns the memory off at once, and while the connection
# is sound a change is heard as soon as the event loop reads its socket (a notification
# is delivered to an idle session at once: the check's rate does not delay it). Tighter
# windows (150 ms was tried) turn the memory off whenever a busy process answers its own
# check late — half the lookups read the database at a load average of 9 on 2 cores.
# 200 ms leaves ~800 ms for a late answer inside the window, at 5 checks a second (a
# check every 50 ms was 20: ~4 ms/s of auth's and PostgreSQL's CPU with nothing to do).
CHECK_INTERVAL_S: Final = 0.2
TRUST_WINDOW_S: Final = 1.0
CHECK_TIMEOUT_S: Final = TRUST_WINDOW_S
RECONNECT_S: Final = 0.5
# Where a failure was seen (a closed set: metric labels).
Witness = Literal["listener", "request", "readiness"]
_NOT_YET: Final = "its listener has not yet heard from the database"


@dataclass(frozen=True, slots=True)
class Answer:
    """A lookup's answer, with the JSON body it is sent as (encoded once, not per hit)."""

    decision: LoginRequirement
    body: bytes


class DecisionMemory:
    def __init__(self, capacity: int = CAPACITY, registry: CollectorRegistry | None = None) -> None:
        self._capacity = capacity
        # contact id → {org id → answer}: a contact's change forgets it for every org.
        self._answers: OrderedDict[str, dict[str, Answer]] = OrderedDict()
        self._generation = 0
        self._heard_up_to = float("-inf")  # monotonic time the last answered check was sent
        self._failed_at = float("-inf")  # monotonic time a database failure was last seen
        self.off_because: str | None = _NOT_YET
        # Lookups answered from memory and read from the database (metrics, the bench).
        self.hits = 0
        self.reads = 0
        self._failures: Counter | None = None
        if registry is not None:
            registry.register(_MemoryMetrics(self))
            self._failures = Counter(
                "portal_mfa_lookup_memory_failures",
                "Database failures that switched the lookup's memory off, by where seen",
                ["seen_by"],
                registry=registry,
            )

    @property
    def trusted(self) -> bool:
        heard = self._heard_up_to
        return heard > self._failed_at and time.monotonic() - heard < TRUST_WINDOW_S

    @property
    def generation(self) -> int:
        return self._generation

    def state(self) -> str:
        """For /readyz: "on", or "off: why" (off is slower, never less correct)."""
        if self.trusted:
            return "on"
        return f"off: {self.off_because or 'its listener has not answered lately'}"

    def get(self, org_id: str, contact_id: str) -> Answer | None:
        if not self.trusted:
            return None
        found = self._answers.get(contact_id)
        if found is None:
            return None
        self._answers.move_to_end(contact_id)
        answer = found.get(org_id)
        if answer is not None:
            self.hits += 1
        return answer

    def put(self, org_id: str, contact_id: str, answer: Answer, read_at_generation: int) -> None:
        """Keep an answer read from the database, unless anything changed meanwhile."""
        self.reads += 1
        if read_at_generation != self._generation or not self.trusted:
            return
        self._answers.setdefault(contact_id, {})[org_id] = answer
        self._answers.move_to_end(contact_id)
        while len(self._answers) > self._capacity:
            self._answers.popitem(last=False)

    def changed(self, what: str) -> None:
        """A notification: forget what it names (and anything being read right now)."""
        self._generation += 1
        if what.startswith(CONTACT_PREFIX):
            self._answers.pop(what.removeprefix(CONTACT_PREFIX), None)
        elif what.startswith(ORG_PREFIX):
            org_id = what.removeprefix(ORG_PREFIX)
            for answers in self._answers.values():
                answers.pop(org_id, None)
        else:  # EVERYTHING, or anything not understood: the safe reading
            self._answers.clear()

    def heard_up_to(self, sent_at: float) -> None:
        """A check sent at `sent_at` came back: every change committed before it is heard."""
        self._heard_up_to = max(self._heard_up_to, sent_at)
        if self.off_because is not None and sent_at > self._failed_at:
            if self.off_because != _NOT_YET:
                log.info("login-requirement memory on again: its database answers")
            self.off_because = None

    def forget_all(self) -> None:
        """Start empty: what was sent while nobody listened is lost."""
        self._generation += 1
        self._answers.clear()

    def failed(self, seen_by: Witness, exc: BaseException | None = None) -> None:
        """A database failure was seen: off (and empty) until a check sent after now
        comes back. Said once per outage, not once per failed request."""
        self._failed_at = time.monotonic()
        self.forget_all()
        if self._failures is not None:
            self._failures.labels(seen_by).inc()
        if self.off_because is None:
            why = f"the {seen_by} saw " + (failure_name(exc) if exc else "the database fail")
            self.off_because = f"database failure ({why})"
            log.warning("login-requirement memory off, lookups read the database: %s", why)


class _MemoryMetrics:
    """Read when scraped: whether the memory answers now, and where answers came from."""

    def __init__(self, memory: DecisionMemory) -> None:
        self._memory = memory

    def collect(self) -> list[Metric]:
        on = GaugeMetricFamily(
            "portal_mfa_lookup_memory_on",
            "1 while the login-requirement lookup may answer from memory, 0 while it reads"
            " the database (its listener not heard from lately, or a database failure seen)",
            value=1.0 if self._memory.trusted else 0.0,
        )
        answers = CounterMetricFamily(
            "portal_mfa_lookup_answers",
            "Login-requirement lookups answered, by where the answer came from",
            labels=["source"],
        )
        answers.add_metric(["memory"], self._memory.hits)
        answers.add_metric(["database"], self._memory.reads)
        return [on, answers]


# What the listener meets while the database is away, restarting or cut.
_FAILURES = (
    OSError,
    TimeoutError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.InternalClientError,
)


async def listen(memory: DecisionMemory, database_url: str) -> None:
    """Run until cancelled: keep a listening connection and prove it hears, reconnecting
    (with the memory off and cleared) whenever it fails."""
    while True:
        try:
            await _listen_once(memory, database_url)
        except asyncio.CancelledError:
            raise
        except _FAILURES as exc:
            memory.failed("listener", exc)
        await asyncio.sleep(RECONNECT_S)


async def _listen_once(memory: DecisionMemory, database_url: str) -> None:
    def lost(_conn: object) -> None:
        # A closed connection is a failure at once, not at the next check: the memory
        # must not answer a moment longer while PostgreSQL may be gone.
        memory.failed("listener")

    conn = await asyncpg.connect(database_url, timeout=5)
    try:
        conn.add_termination_listener(lost)
        await conn.add_listener(CHANNEL, lambda _c, _pid, _ch, what: memory.changed(what))
        # Only now listening: nothing read before this (an older generation) is kept.
        memory.forget_all()
        while True:
            sent_at = time.monotonic()
            await conn.fetchval("SELECT 1", timeout=CHECK_TIMEOUT_S)
            memory.heard_up_to(sent_at)
            await asyncio.sleep(CHECK_INTERVAL_S)
    finally:
        conn.remove_termination_listener(lost)  # our own close is no failure
        memory.forget_all()
        with contextlib.suppress(Exception):
            await conn.close(timeout=1)


def triggers_sql(schema: str, *, live_schema: str) -> str:
    """The NOTIFY triggers of the projection's tables in `schema`. They fire only while the
    schema is the live one, so a rebuild's fresh schema writes its million rows silently
    (its swap notifies EVERYTHING instead)."""
    notify = _notify_function(live_schema)
    return f"""
{notify}
DROP TRIGGER IF EXISTS login_requirement_changed ON {schema}.contacts;
CREATE TRIGGER login_requirement_changed AFTER INSERT OR UPDATE OR DELETE
    ON {schema}.contacts FOR EACH ROW EXECUTE FUNCTION login_requirement_changed('contact');
DROP TRIGGER IF EXISTS login_requirement_changed ON {schema}.org_policies;
CREATE TRIGGER login_requirement_changed AFTER INSERT OR UPDATE OR DELETE
    ON {schema}.org_policies FOR EACH ROW EXECUTE FUNCTION login_requirement_changed('org');
DROP TRIGGER IF EXISTS login_requirement_changed ON {schema}.pending_events;
CREATE TRIGGER login_requirement_changed AFTER INSERT OR UPDATE OR DELETE
    ON {schema}.pending_events FOR EACH ROW EXECUTE FUNCTION login_requirement_changed('held');
"""


def enrollment_triggers_sql(live_schema: str) -> str:
    """auth's own enrollments: a change of status or epoch (not the replay guard's step)."""
    return f"""
{_notify_function(live_schema)}
DROP TRIGGER IF EXISTS login_requirement_changed ON enrollments;
CREATE TRIGGER login_requirement_changed
    AFTER INSERT OR DELETE OR UPDATE OF status, mfa_epoch, enrolled_event_id, contact_id
    ON enrollments FOR EACH ROW EXECUTE FUNCTION login_requirement_changed('contact');
"""


def _notify_function(live_schema: str) -> str:
    return f"""
CREATE OR REPLACE FUNCTION login_requirement_changed() RETURNS trigger AS $$
DECLARE
    changed record;
BEGIN
    IF TG_TABLE_SCHEMA NOT IN ('{live_schema}', 'public') THEN
        RETURN NULL;
    END IF;
    IF TG_OP = 'DELETE' THEN
        changed := OLD;
    ELSE
        changed := NEW;
    END IF;
    -- Nested IFs: a record's field is resolved when its expression runs, and each table
    -- has only its own columns.
    IF TG_ARGV[0] = 'org' THEN
        PERFORM pg_notify('{CHANNEL}', '{ORG_PREFIX}' || changed.org_id);
        IF TG_OP = 'UPDATE' THEN
            IF OLD.org_id <> NEW.org_id THEN
                PERFORM pg_notify('{CHANNEL}', '{ORG_PREFIX}' || OLD.org_id);
            END IF;
        END IF;
    ELSIF TG_ARGV[0] = 'held' THEN
        IF changed.aggregate_type = 'contact' THEN
            PERFORM pg_notify('{CHANNEL}', '{CONTACT_PREFIX}' || changed.aggregate_id);
        ELSE
            PERFORM pg_notify('{CHANNEL}', '{ORG_PREFIX}' || changed.aggregate_id);
        END IF;
    ELSE
        PERFORM pg_notify('{CHANNEL}', '{CONTACT_PREFIX}' || changed.contact_id);
        IF TG_OP = 'UPDATE' THEN
            IF OLD.contact_id <> NEW.contact_id THEN
                PERFORM pg_notify('{CHANNEL}', '{CONTACT_PREFIX}' || OLD.contact_id);
            END IF;
        END IF;
    END IF;
    RETURN NULL;
END
$$ LANGUAGE plpgsql;
"""
