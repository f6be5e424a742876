"""Login-requirement answers kept in memory, correct with any number of auth replicas.

The answer is a function of rows in auth's database (the projected org policy and
contact, the events held beyond a gap, the contact's enabled enrollment). Triggers on
those tables NOTIFY every auth replica of the contact or org that changed, in the
writing transaction, so whichever replica (or rebuild swap) wrote it. Each replica
LISTENs on a connection of its own and forgets what changed.

A replica answers from memory only while it is sure it has heard every change:

- it stores an answer only if nothing was forgotten while that answer was being read (a
  generation count), so a change racing the read can never be cached over;
- it trusts its memory only while its listening connection answered a `SELECT 1` sent
  less than TRUST_WINDOW_S ago. PostgreSQL delivers a session's pending notifications
  before the answer to its next query, so a check that came back proves every change
  committed before it was sent has been heard. While the connection is slow, lost or
  reconnecting, every lookup reads the database (which is never less strict), and the
  memory is cleared on reconnect, since notifications sent meanwhile are lost.

So an answer from memory reflects every change committed more than TRUST_WINDOW_S plus
one check interval ago, well inside the 250 ms in which a reset must reach every replica.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from typing import Final

import asyncpg

from shared.login_rule.login_requirement import LoginRequirement

log = logging.getLogger(__name__)

CHANNEL: Final = "login_requirement_changed"
EVERYTHING: Final = "*"  # a rebuild's swap: every answer may have changed
ORG_PREFIX: Final = "org:"
CONTACT_PREFIX: Final = "contact:"
# Answers kept, least recently used dropped: ~830 bytes each (measured), so ≤ ~40 MB —
# the contacts logging in now, not all 1,000,000 (the §9 memory row is 200 MB in all).
CAPACITY: Final = 50_000
CHECK_INTERVAL_S: Final = 0.05
TRUST_WINDOW_S: Final = 0.15


class DecisionCache:
    def __init__(self, capacity: int = CAPACITY) -> None:
        self._capacity = capacity
        # contact id → {org id → answer}: a contact's change forgets it for every org.
        self._answers: OrderedDict[str, dict[str, LoginRequirement]] = OrderedDict()
        self._generation = 0
        self._heard_up_to = float("-inf")  # monotonic time of the last check's sending

    @property
    def trusted(self) -> bool:
        return time.monotonic() - self._heard_up_to < TRUST_WINDOW_S

    @property
    def generation(self) -> int:
        return self._generation

    def get(self, org_id: str, contact_id: str) -> LoginRequirement | None:
        if not self.trusted:
            return None
        found = self._answers.get(contact_id)
        if found is None:
            return None
        self._answers.move_to_end(contact_id)
        return found.get(org_id)

    def put(
        self, org_id: str, contact_id: str, answer: LoginRequirement, read_at_generation: int
    ) -> None:
        """Keep an answer read from the database, unless anything changed meanwhile."""
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
        self._heard_up_to = max(self._heard_up_to, sent_at)

    def distrust(self) -> None:
        """The listening connection is gone: notifications may be lost from now on."""
        self._heard_up_to = float("-inf")
        self._generation += 1
        self._answers.clear()


async def listen(cache: DecisionCache, database_url: str) -> None:
    """Run until cancelled: keep a listening connection and prove it hears, reconnecting
    (with the memory distrusted and cleared) whenever it fails."""
    while True:
        conn: asyncpg.Connection | None = None
        try:
            conn = await asyncpg.connect(database_url, timeout=5)
            await conn.add_listener(CHANNEL, lambda _c, _pid, _ch, what: cache.changed(what))
            # A connection seen closing is distrusted at once, not at the next check.
            conn.add_termination_listener(lambda _c: cache.distrust())
            cache.distrust()  # anything sent while nobody listened is lost: start empty
            while True:
                sent_at = time.monotonic()
                await conn.fetchval("SELECT 1", timeout=1)
                cache.heard_up_to(sent_at)
                await asyncio.sleep(CHECK_INTERVAL_S)
        except asyncio.CancelledError:
            raise
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning(
                "login-requirement memory off: its listener failed (%s)", type(exc).__name__
            )
            cache.distrust()
            await asyncio.sleep(1)
        finally:
            cache.distrust()
            if conn is not None:
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
