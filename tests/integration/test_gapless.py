"""DESIGN.md §11 "Gapless" on the real broker and PostgreSQL, playing the attacker.

Records with made-up high versions go onto the event topics as anyone with write access
could put them there: a `MfaPolicyDisabled` at version 50 for an org whose policy is on
at version 1, and a `MfaReset` at version 99 for an enrolled contact. They must wait (in
`pending_events`, across restarts and rebuilds), weaken no decision, trigger no reaction,
and apply in order only once the genuine versions before them have.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from random import Random
from typing import Any

import asyncpg
import pytest

from services.auth.adapters import enrollments, tokens
from services.auth.decisions import login_requirement
from services.auth.domain.secret_box import SecretBox, generate_key
from services.auth.flows import login, sessions
from services.auth.held_events import Waiting
from services.auth.projection import LoginProjection
from services.auth.reactions import AuthProjection
from services.auth.rebuild import rebuild
from services.auth.runtime import AuthRuntime
from shared.contracts import (
    CONTACTS_EVENTS,
    PREFERENCES_EVENTS,
    Cause,
    ContactCreated,
    ContactCreatedPayload,
    Empty,
    Event,
    MfaPolicyDisabled,
    MfaPolicyEnabled,
    MfaReset,
    MfaResetPayload,
    PortalAccessGranted,
    PortalAccessGrantedPayload,
    PortalNameSet,
    now_utc,
)
from shared.db import EVENTSTORE_SQL, apply_schema, read_sql
from shared.login_rule.gapless import HistoryIncomplete
from shared.login_rule.login_requirement import Held, LoginRequirement
from shared.projection import ProjectionConsumer
from shared.tokens import hash_token
from tests.integration.streams import (
    Placed,
    Setup,
    ends_of,
    fold,
    history,
    new_consumer,
    produce,
    projected,
    raw_rows,
    running,
    stored,
    until,
)
from tests.signing_keys import TEST_TRUST

pytestmark = pytest.mark.integration

ORG, CONTACT, OTHER = "org-gap", "contact-gap", "contact-fine"
PASSWORD = "correct-horse-battery"
EMAIL = {CONTACT: "gap@example.com", OTHER: "fine@example.com"}
CAUSE = Cause(actor="system", at=now_utc())
_POLICY = (MfaPolicyEnabled, MfaPolicyDisabled, PortalNameSet)


def policy_event(cls: Any, version: int, org: str = ORG) -> Any:
    return cls.new(
        org_id=org, aggregate_id=org, aggregate_version=version, payload=Empty(), cause=CAUSE
    )


def contact_event(cls: Any, version: int, payload: Any, contact: str = CONTACT) -> Any:
    return cls.new(
        org_id=ORG, aggregate_id=contact, aggregate_version=version, payload=payload, cause=CAUSE
    )


def created(contact: str) -> ContactCreated:
    payload = ContactCreatedPayload(kind="vendor", display_name=contact, email=EMAIL[contact])
    return contact_event(ContactCreated, 1, payload, contact)  # type: ignore[no-any-return]


def granted(contact: str, version: int, invitation: str) -> PortalAccessGranted:
    payload = PortalAccessGrantedPayload(
        email=EMAIL[contact],
        invitation_hash=hash_token(invitation),
        expires_at=now_utc() + timedelta(days=7),
    )
    return contact_event(PortalAccessGranted, version, payload, contact)  # type: ignore[no-any-return]


def reset(version: int, epoch: int) -> MfaReset:
    payload = MfaResetPayload(mfa_epoch=epoch, reason="lost device")
    return contact_event(MfaReset, version, payload)  # type: ignore[no-any-return]


class Auth:
    """auth's database (its own tables and the live projection) over the test's setup."""

    def __init__(self, setup: Setup, bootstrap: str) -> None:
        self.setup = setup
        self.bootstrap = bootstrap
        self.projection = LoginProjection()
        self.placed: list[Placed] = []

    def consumer(self) -> ProjectionConsumer:
        return new_consumer(
            bootstrap=self.bootstrap,
            topics=self.setup.topics,
            pool=self.setup.pool,
            projection=AuthProjection(self.projection),  # type: ignore[arg-type]
            deadletter=self.setup.producer,
            batch_size=20,
        )

    def runtime(self, consumer: ProjectionConsumer) -> AuthRuntime:
        box = SecretBox({"k1": generate_key()}, "k1")
        return AuthRuntime(self.setup.pool, self.projection, consumer, box, now_utc)

    async def publish(self, *events: Event) -> None:
        self.placed += await produce(self.setup.producer, self.setup.topics, list(events))

    async def consumed(self, consumer: ProjectionConsumer, task: Any) -> None:
        """Until the consumer has stored offsets past everything published so far."""
        ends = ends_of(self.placed)

        async def done() -> bool:
            async with self.setup.pool.acquire() as conn:
                reached = await stored(conn, self.projection.schema)
            return all(reached.get(p, 0) >= end for p, end in ends.items()) and consumer.ready

        await until(done, within=30, what="everything published consumed", watch=[task])

    async def decision(self, contact: str) -> LoginRequirement:
        async with self.setup.pool.acquire() as conn:
            return await login_requirement(conn, self.projection, ORG, contact)

    async def pending(self) -> set[tuple[str, str, int]]:
        async with self.setup.pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT aggregate_id, aggregate_type, version"
                f" FROM {self.projection.schema}.pending_events"
            )
        return {tuple(r) for r in rows}  # type: ignore[misc]

    async def invalidations(self) -> list[asyncpg.Record]:
        """The MfaEnrollmentInvalidated events auth recorded (its reaction to a reset)."""
        async with self.setup.pool.acquire() as conn:
            return list(
                await conn.fetch(
                    "SELECT envelope->>'causation_id' AS cause FROM events"
                    " WHERE event_type = 'MfaEnrollmentInvalidated' ORDER BY global_position"
                )
            )


@pytest.fixture
async def auth(setup: Setup, kafka_bootstrap: str) -> AsyncIterator[Auth]:
    await apply_schema(setup.pool, EVENTSTORE_SQL, read_sql("services.auth", "schema.sql"))
    found = Auth(setup, kafka_bootstrap)
    async with setup.pool.acquire() as conn:
        await found.projection.create(conn)
    yield found


async def enroll(pool: asyncpg.Pool, contact_id: str, epoch: int) -> uuid.UUID:
    enrollment_id = uuid.uuid4()
    async with pool.acquire() as conn, conn.transaction():
        await enrollments.create(conn, enrollment_id, contact_id, ORG, b"sealed", epoch)
        row = await enrollments.get(conn, enrollment_id)
        assert row is not None
        await enrollments.enable(conn, row, epoch, uuid.uuid4(), now_utc())
    return enrollment_id


async def secret_kept(pool: asyncpg.Pool, enrollment_id: uuid.UUID) -> bool:
    async with pool.acquire() as conn:
        found = await enrollments.get(conn, enrollment_id)
    return found is not None and found.status == "enabled" and found.secret_blob is not None


def gap_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and "waits for version" in r.getMessage()
    ]


async def test_forged_high_versions_wait_weaken_nothing_and_apply_in_order_later(
    auth: Auth, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="services.auth.projection")
    enabled = policy_event(MfaPolicyEnabled, 1)
    invitations = {CONTACT: "invitation-gap-0123456789", OTHER: "invitation-fine-0123456789"}
    await auth.publish(
        enabled,
        *(e for c in (CONTACT, OTHER) for e in (created(c), granted(c, 2, invitations[c]))),
    )
    pool = auth.setup.pool

    first = auth.consumer()
    async with running(first) as task:
        await auth.consumed(first, task)
        rt = auth.runtime(first)
        for contact in (CONTACT, OTHER):
            await login.accept_invitation(rt, ORG, invitations[contact], PASSWORD, "10.0.0.1")
        enrolled = await enroll(pool, CONTACT, epoch=0)
        async with pool.acquire() as conn:
            session, _ = await tokens.issue(conn, "session", CONTACT, ORG, now_utc(), mfa=True)
        assert (await auth.decision(CONTACT)).requirement == "totp"
        assert (await login.login(rt, ORG, EMAIL[CONTACT], PASSWORD, "10.0.0.1"))[
            "status"
        ] == "mfa_required"

        # The attack; then redeliveries of genuine events (a duplicate changes nothing).
        forged_disable = policy_event(MfaPolicyDisabled, 50)
        forged_reset = reset(99, epoch=5)
        await auth.publish(forged_disable, forged_reset)
        await auth.consumed(first, task)
        await auth.publish(enabled, created(CONTACT))
        await auth.consumed(first, task)

        async with pool.acquire() as conn:
            policy = await auth.projection.policy(conn, ORG)
            assert (policy.version, policy.mfa_enabled) == (1, True)
            assert policy.policy_event_id == enabled.event_id
            [row] = await auth.projection.contacts(conn, [CONTACT])
            assert (row.version, row.mfa_epoch, row.reset_event_id) == (2, 0, None)
            assert await auth.projection.waiting(conn) == Waiting(aggregates=2, events=2)
        assert await auth.pending() == {(ORG, "org_preferences", 50), (CONTACT, "contact", 99)}

        # No reaction to what was not applied: the secret is kept, the session lives.
        assert await secret_kept(pool, enrolled)
        assert await auth.invalidations() == []
        assert (await sessions.whoami(rt, await _session(pool, OTHER)))["contact_id"] == OTHER

        # The decisions fail closed, and say why.
        gapped = await auth.decision(CONTACT)
        assert (gapped.requirement, gapped.policy_enabled, gapped.enrolled) == ("totp", True, True)
        assert gapped.held == Held(policy=(50,), contact=(99,))
        assert gapped.as_dict()["complete"] is False
        async with pool.acquire() as conn:
            elsewhere = await login_requirement(conn, auth.projection, "org-else", CONTACT)
        assert (elsewhere.known, elsewhere.held) == (False, Held()), "other orgs learn nothing"
        fine = await auth.decision(OTHER)
        assert (fine.requirement, fine.policy_enabled) == ("enroll", True)
        assert fine.held == Held(policy=(50,))
        with pytest.raises(HistoryIncomplete):
            await login.login(rt, ORG, EMAIL[CONTACT], PASSWORD, "10.0.0.1")
        with pytest.raises(HistoryIncomplete):
            await sessions.whoami(rt, session)
        # Another contact of the org still logs in, on the strict side.
        answer = await login.login(rt, ORG, EMAIL[OTHER], PASSWORD, "10.0.0.2")
        assert answer["status"] == "mfa_enrollment_required"
        assert len(gap_warnings(caplog)) == 2

    # A restart keeps what waits, and re-reads nothing.
    second = auth.consumer()
    async with running(second) as task:
        await auth.consumed(second, task)
        assert second.applied == 0
        assert await auth.pending() == {(ORG, "org_preferences", 50), (CONTACT, "contact", 99)}

        # The genuine versions arrive: each stream fills, then the held event fits and applies.
        genuine_policy = [
            policy_event(MfaPolicyEnabled if v % 2 else MfaPolicyDisabled, v) for v in range(2, 50)
        ]
        genuine_contact = [
            granted(CONTACT, v, f"invitation-{v:03d}-0123456789") for v in range(3, 99)
        ]
        await auth.publish(*genuine_policy, *genuine_contact)
        await auth.consumed(second, task)
        assert second.applied == len(genuine_policy) + len(genuine_contact)

        async with pool.acquire() as conn:
            policy = await auth.projection.policy(conn, ORG)
            assert (policy.version, policy.mfa_enabled) == (50, False)
            assert policy.policy_event_id == forged_disable.event_id
            [row] = await auth.projection.contacts(conn, [CONTACT])
            assert (row.version, row.mfa_epoch) == (99, 5)
            assert row.reset_event_id == forged_reset.event_id
            assert await auth.projection.waiting(conn) == Waiting(aggregates=0, events=0)
        assert await auth.pending() == set()
        assert await auth.invalidations() == [(str(forged_reset.event_id),)]
        assert not await secret_kept(pool, enrolled)
        settled = await auth.decision(CONTACT)
        assert (settled.requirement, settled.complete, settled.mfa_epoch) == ("password", True, 5)
        assert len(gap_warnings(caplog)) == 2, "one warning per wait, not one per batch"

        # A redelivered reset is a duplicate: its reaction does not run again.
        later = await enroll(pool, CONTACT, epoch=0)
        rows_before = await _rows(auth)
        await auth.publish(forged_reset, genuine_contact[-1], forged_disable)
        await auth.consumed(second, task)
        assert await _rows(auth) == rows_before
        assert await secret_kept(pool, later)
        assert len(await auth.invalidations()) == 1


async def _session(pool: asyncpg.Pool, contact: str) -> str:
    # With a second factor: the org's policy is on, and a password-only session would not count.
    async with pool.acquire() as conn:
        token, _ = await tokens.issue(conn, "session", contact, ORG, now_utc(), mfa=True)
    return token


async def _rows(auth: Auth) -> dict[str, list[tuple[Any, ...]]]:
    async with auth.setup.pool.acquire() as conn:
        return await raw_rows(conn, auth.projection.schema)


async def test_a_gap_inside_one_batch_holds_the_rest_of_that_batch_too(auth: Auth) -> None:
    """v1, v3, v4 in one batch: v1 applies, v3 and v4 wait; v2 alone then releases both."""
    events = [
        policy_event(MfaPolicyEnabled, 1),
        *(policy_event(MfaPolicyDisabled, v) for v in (3, 4)),
    ]
    async with auth.setup.pool.acquire() as conn, conn.transaction():
        applied = await auth.projection.apply_in_order(conn, events)
        assert [e.aggregate_version for e in applied] == [1]
        assert (await auth.projection.policy(conn, ORG)).mfa_enabled is True
        missing = policy_event(MfaPolicyEnabled, 2)
        applied = await auth.projection.apply_in_order(conn, [missing, events[1]])
        assert [e.event_id for e in applied] == [
            missing.event_id,
            events[1].event_id,
            events[2].event_id,
        ]
        assert (await auth.projection.policy(conn, ORG)).version == 4
        assert await auth.projection.waiting(conn) == Waiting(0, 0)


async def test_rebuild_from_offset_0_ends_identical_to_the_live_projection_with_what_waits(
    auth: Auth,
) -> None:
    genuine = history(Random(99), orgs=8, contacts=60, total=1200)
    last: dict[str, Event] = {}
    for event in genuine:
        last[event.aggregate_id] = event
    orgs = sorted(k for k, e in last.items() if isinstance(e, _POLICY))[:3]
    contacts = sorted(k for k, e in last.items() if not isinstance(e, _POLICY))[:3]
    forged = [policy_event(MfaPolicyDisabled, last[o].aggregate_version + 5, o) for o in orgs]
    forged += [
        MfaReset.new(
            org_id=last[c].org_id,
            aggregate_id=c,
            aggregate_version=last[c].aggregate_version + 3,
            payload=MfaResetPayload(mfa_epoch=50, reason="forged"),
            cause=CAUSE,
        )
        for c in contacts
    ]
    # One contact's gap is filled later by genuine events; the rest keep waiting.
    filled = contacts[0]
    fills = [
        PortalAccessGranted.new(
            org_id=last[filled].org_id,
            aggregate_id=filled,
            aggregate_version=last[filled].aggregate_version + step,
            payload=PortalAccessGrantedPayload(
                email="filled@example.com", invitation_hash="ab" * 32, expires_at=now_utc()
            ),
            cause=CAUSE,
        )
        for step in (1, 2)
    ]
    await auth.publish(*genuine, *forged, *fills)

    live = auth.consumer()
    async with running(live) as task:
        await auth.consumed(live, task)
    await rebuild(
        auth.setup.pool,
        auth.bootstrap,
        auth.setup.producer,
        trust=TEST_TRUST,
        topics=[auth.setup.topics[PREFERENCES_EVENTS], auth.setup.topics[CONTACTS_EVENTS]],
        swap=False,
        batch_size=97,
    )
    async with auth.setup.pool.acquire() as conn:
        live_rows = await raw_rows(conn, auth.projection.schema)
        assert live_rows == await raw_rows(conn, "login_projection_rebuild")
        waiting = {(r[0], r[2]) for r in live_rows["pending_events"]}
        assert waiting == {(e.aggregate_id, e.aggregate_version) for e in forged[:3] + forged[4:]}
        resolved = forged[3]
        assert await projected(conn, auth.projection.schema) == fold(
            [*genuine, *fills, resolved]
        ), "what does not wait is the plain fold of the genuine streams"
