"""Property tests of the login rule (DESIGN.md §1) under every arrival order of its events.

Policy switches, a contact's resets and auth's enrollments travel on three topics, so
they reach a reader interleaved in any way. Hypothesis draws the histories and the
interleavings; the invariants below must hold after every event, for the audit log's fold
(`history`) and for a fold that works as auth's projection does (`projected` + `gapless`,
in batches, with the reset's crypto-shredding).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.contracts import (
    Cause,
    ContactCreated,
    ContactCreatedPayload,
    Empty,
    Event,
    MfaEnrolled,
    MfaEnrolledPayload,
    MfaPolicyDisabled,
    MfaPolicyEnabled,
    MfaReset,
    MfaResetPayload,
    PortalAccessGranted,
    PortalAccessGrantedPayload,
)
from shared.login_rule.gapless import in_order
from shared.login_rule.history import requirement_from_history
from shared.login_rule.login_requirement import (
    ActiveEnrollment,
    Held,
    LoginRequirement,
    decide,
)
from shared.login_rule.projected import ContactEvent, OrgPolicy, PolicyEvent, ProjectedContact

ORG = "acme"
CONTACT = "contact-1"
T0 = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)
CAUSE = Cause(actor="system", at=T0)


@dataclass(frozen=True)
class Scenario:
    """One contact's story on the three topics, each topic in its own order."""

    policy: tuple[Event, ...]  # MfaPolicyEnabled/Disabled, versions 1..n
    contact: tuple[Event, ...]  # created, granted, then resets to epochs 1..k
    enrollments: tuple[Event, ...]  # MfaEnrolled, each at an epoch auth may have known

    @property
    def latest_epoch(self) -> int:
        return len(self.contact) - 2


def _policy_events(switches: list[bool]) -> tuple[Event, ...]:
    common = {"org_id": ORG, "aggregate_id": ORG, "cause": CAUSE, "payload": Empty()}
    return tuple(
        (MfaPolicyEnabled if on else MfaPolicyDisabled).new(aggregate_version=v, **common)
        for v, on in enumerate(switches, start=1)
    )


def _contact_events(resets: int) -> tuple[Event, ...]:
    common = {"org_id": ORG, "aggregate_id": CONTACT, "cause": CAUSE}
    created = ContactCreatedPayload(kind="vendor", display_name="V", email="v@example.com")
    granted = PortalAccessGrantedPayload(
        email="v@example.com", invitation_hash="0" * 64, expires_at=T0 + timedelta(days=7)
    )
    events: list[Event] = [
        ContactCreated.new(aggregate_version=1, payload=created, **common),
        PortalAccessGranted.new(aggregate_version=2, payload=granted, **common),
    ]
    events += [
        MfaReset.new(aggregate_version=2 + e, payload=MfaResetPayload(mfa_epoch=e), **common)
        for e in range(1, resets + 1)
    ]
    return tuple(events)


def _enrolled(version: int, epoch: int) -> Event:
    payload = MfaEnrolledPayload(enrollment_id=uuid.uuid4(), mfa_epoch=epoch)
    return MfaEnrolled.new(
        org_id=ORG, aggregate_id=CONTACT, aggregate_version=version, payload=payload, cause=CAUSE
    )


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    switches = draw(st.lists(st.booleans(), max_size=5))
    resets = draw(st.integers(min_value=0, max_value=3))
    # Auth enrolls at the epoch it knew, which may be behind the latest reset.
    epochs = draw(st.lists(st.integers(min_value=0, max_value=resets), max_size=3))
    enrollments = tuple(_enrolled(10 + i, e) for i, e in enumerate(epochs))
    return Scenario(_policy_events(switches), _contact_events(resets), enrollments)


@st.composite
def interleavings(draw: st.DrawFn, scenario: Scenario) -> list[Event]:
    """The three topics merged in any order, each topic's own order kept (as Kafka does)."""
    streams = [list(scenario.policy), list(scenario.contact), list(scenario.enrollments)]
    labels = [i for i, stream in enumerate(streams) for _ in stream]
    order = draw(st.permutations(labels))
    return [streams[label].pop(0) for label in order]


@st.composite
def stories(draw: st.DrawFn) -> tuple[Scenario, list[Event]]:
    scenario = draw(scenarios())
    return scenario, draw(interleavings(scenario))


def latest_enrollment(arrived: list[Event]) -> MfaEnrolled | None:
    enrolled = [e for e in arrived if isinstance(e, MfaEnrolled)]
    return enrolled[-1] if enrolled else None


def applied_epoch(arrived: list[Event]) -> int:
    """The contact's epoch from the resets that have arrived (their streams are in order)."""
    return max((e.payload.mfa_epoch for e in arrived if isinstance(e, MfaReset)), default=0)


# --- the invariants, after every event -------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(stories())
def test_an_enrollment_from_before_the_latest_reset_never_counts(
    story: tuple[Scenario, list[Event]],
) -> None:
    _, arrived = story
    for n in range(len(arrived) + 1):
        decision = requirement_from_history(ORG, CONTACT, arrived[:n])
        enrollment = latest_enrollment(arrived[:n])
        if decision.enrolled:
            assert enrollment is not None
            assert enrollment.payload.mfa_epoch >= applied_epoch(arrived[:n])
        if enrollment is not None and enrollment.payload.mfa_epoch < applied_epoch(arrived[:n]):
            assert not decision.enrolled
            assert decision.requirement != "totp"


@settings(max_examples=300, deadline=None)
@given(stories())
def test_enrolled_at_the_current_epoch_means_totp_whatever_the_policy(
    story: tuple[Scenario, list[Event]],
) -> None:
    _, arrived = story
    for n in range(len(arrived) + 1):
        prefix = arrived[:n]
        enrollment = latest_enrollment(prefix)
        known = any(isinstance(e, ContactCreated) for e in prefix)
        current = enrollment is not None and enrollment.payload.mfa_epoch >= applied_epoch(prefix)
        decision = requirement_from_history(ORG, CONTACT, prefix)
        assert (decision.requirement == "totp") is (known and current), (prefix, decision)


@settings(max_examples=300, deadline=None)
@given(stories())
def test_policy_off_and_not_enrolled_means_password(story: tuple[Scenario, list[Event]]) -> None:
    _, arrived = story
    for n in range(len(arrived) + 1):
        decision = requirement_from_history(ORG, CONTACT, arrived[:n])
        switches = [e for e in arrived[:n] if isinstance(e, MfaPolicyEnabled | MfaPolicyDisabled)]
        policy_on = bool(switches) and isinstance(switches[-1], MfaPolicyEnabled)
        if not decision.enrolled:
            assert decision.requirement == ("enroll" if policy_on else "password")


@settings(max_examples=200, deadline=None)
@given(stories())
def test_folding_the_log_again_changes_nothing(story: tuple[Scenario, list[Event]]) -> None:
    scenario, arrived = story
    once = requirement_from_history(ORG, CONTACT, arrived)
    # A consumer that re-reads its log from the start (a restart before its offsets were
    # stored) sees every event twice.
    assert requirement_from_history(ORG, CONTACT, arrived + arrived) == once

    policy = _fold_policy(OrgPolicy(ORG), scenario.policy)
    assert _fold_policy(policy, scenario.policy) == policy
    contact = _fold_contact(ProjectedContact(CONTACT, ORG), scenario.contact)
    assert _fold_contact(contact, scenario.contact) == contact


@settings(max_examples=100, deadline=None)
@given(stories())
def test_a_folded_state_reads_back_from_its_row_unchanged(
    story: tuple[Scenario, list[Event]],
) -> None:
    # The projection stores `row()` and reads it back with `from_row` (no __init__).
    scenario, _ = story
    policy = _fold_policy(OrgPolicy(ORG), scenario.policy)
    contact = _fold_contact(ProjectedContact(CONTACT, ORG), scenario.contact)
    assert OrgPolicy.from_row(policy.row()) == policy
    assert ProjectedContact.from_row(contact.row()) == contact
    assert ProjectedContact.from_row(contact.row()).row() == contact.row()


@settings(max_examples=200, deadline=None)
@given(stories(), st.data())
def test_audit_and_auth_fold_to_the_same_answer(
    story: tuple[Scenario, list[Event]], data: st.DataObject
) -> None:
    _, arrived = story
    auth = AuthFold()
    taken = 0
    while taken < len(arrived):
        # auth's consumer applies what the broker hands it, in batches of any size.
        size = data.draw(st.integers(min_value=1, max_value=len(arrived) - taken))
        auth.apply(arrived[taken : taken + size])
        taken += size
        assert auth.decision() == requirement_from_history(ORG, CONTACT, arrived[:taken])


@settings(max_examples=200, deadline=None)
@given(stories(), st.data())
def test_every_arrival_order_ends_in_the_same_answer(
    story: tuple[Scenario, list[Event]], data: st.DataObject
) -> None:
    scenario, in_order_arrival = story
    expected = requirement_from_history(ORG, CONTACT, in_order_arrival)
    # Policy and contact events scrambled and redelivered (a forged or lost order): the
    # gapless rule holds each one until its predecessors arrive, so the end is the same.
    scrambled = data.draw(st.permutations([*scenario.policy, *scenario.contact]))
    repeats = data.draw(st.lists(st.sampled_from(scrambled), max_size=4)) if scrambled else []
    arrival = [*scrambled, *repeats, *scenario.enrollments]
    for n in range(len(arrival)):
        early = requirement_from_history(ORG, CONTACT, arrival[:n])
        if not early.complete:
            # Something waits beyond a gap: the answer fails closed, never `password`.
            assert early.policy_enabled and early.requirement != "password"
    assert requirement_from_history(ORG, CONTACT, arrival) == expected
    auth = AuthFold()
    auth.apply(arrival)
    assert auth.decision() == expected


# --- auth's side: the projection's fold, batch by batch ---------------------------------------


@dataclass
class AuthFold:
    """What auth keeps, folded as its projection does: each aggregate through `in_order`,
    held events kept between batches, and an applied reset shredding older enrollments."""

    policy: OrgPolicy = field(default_factory=lambda: OrgPolicy(ORG))
    contact: ProjectedContact | None = None
    policy_held: tuple[PolicyEvent, ...] = ()
    contact_held: tuple[ContactEvent, ...] = ()
    enrollment: ActiveEnrollment | None = None

    def apply(self, batch: list[Event]) -> None:
        policy_events = [e for e in batch if isinstance(e, MfaPolicyEnabled | MfaPolicyDisabled)]
        contact_events = [e for e in batch if isinstance(e, ContactCreated | PortalAccessGranted)]
        contact_events += [e for e in batch if isinstance(e, MfaReset)]
        contact_events.sort(key=batch.index)
        step = in_order(self.policy.version, self.policy_held, policy_events)
        for event in step.applicable:
            self.policy = self.policy.evolve(event)
        self.policy_held = step.held
        version = self.contact.version if self.contact else 0
        contact_step = in_order(version, self.contact_held, contact_events)
        for applied in contact_step.applicable:
            self.contact = (self.contact or ProjectedContact(CONTACT, ORG)).evolve(applied)
            shredded = (
                isinstance(applied, MfaReset)
                and self.enrollment is not None
                and self.enrollment.mfa_epoch < applied.payload.mfa_epoch
            )
            if shredded:
                self.enrollment = None
        self.contact_held = contact_step.held
        # Enrollments are auth's own rows, enabled in its own order.
        for event in batch:
            if isinstance(event, MfaEnrolled):
                p = event.payload
                self.enrollment = ActiveEnrollment(p.enrollment_id, p.mfa_epoch, event.event_id)

    def decision(self) -> LoginRequirement:
        held = Held(
            policy=tuple(e.aggregate_version for e in self.policy_held),
            contact=tuple(e.aggregate_version for e in self.contact_held),
        )
        return decide(self.policy, self.contact, self.enrollment, held)


def _fold_policy(policy: OrgPolicy, events: tuple[Event, ...]) -> OrgPolicy:
    for event in events:
        assert isinstance(event, MfaPolicyEnabled | MfaPolicyDisabled)
        policy = policy.evolve(event)
    return policy


def _fold_contact(contact: ProjectedContact, events: tuple[Event, ...]) -> ProjectedContact:
    for event in events:
        assert isinstance(event, ContactCreated | PortalAccessGranted | MfaReset)
        contact = contact.evolve(event)
    return contact
