"""DESIGN.md §11 "Gapless", with no I/O: the rule, the folds that obey it, the decision."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from services.auth.http.problems import install_problem_handlers
from shared.contracts import (
    Cause,
    ContactCreated,
    ContactCreatedPayload,
    Empty,
    MfaPolicyDisabled,
    MfaPolicyEnabled,
    MfaReset,
    MfaResetPayload,
)
from shared.login_rule.gapless import HistoryIncomplete, InOrder, VersionGap, in_order
from shared.login_rule.history import requirement_from_history
from shared.login_rule.login_requirement import Held, decide
from shared.login_rule.projected import OrgPolicy, ProjectedContact


@dataclass(frozen=True)
class Ev:
    aggregate_version: int
    name: str


@dataclass
class Stream:
    """One aggregate as a projection keeps it: the applied version, what waits, and the log."""

    applied: int = 0
    held: tuple[Ev, ...] = ()
    log: tuple[Ev, ...] = ()

    def deliver(self, batch: list[Ev]) -> InOrder[Ev]:
        step = in_order(self.applied, self.held, batch)
        for event in step.applicable:
            assert event.aggregate_version == self.applied + 1, "applied beyond a gap"
            self.applied = event.aggregate_version
        self.log += step.applicable
        self.held = step.held
        return step


GENUINE = [Ev(v, f"v{v}") for v in (1, 2, 3, 4)]
FORGED = Ev(9, "forged-v9")
DUPLICATE = Ev(2, "v2")  # v2 redelivered


def splits(events: tuple[Ev, ...]) -> list[list[list[Ev]]]:
    """Every way to cut a delivery order into consecutive batches."""
    ways = []
    for cuts in itertools.product([False, True], repeat=len(events) - 1):
        batches, batch = [], [events[0]]
        for event, cut in zip(events[1:], cuts, strict=True):
            if cut:
                batches.append(batch)
                batch = []
            batch.append(event)
        ways.append([*batches, batch])
    return ways


def test_every_interleaving_applies_the_genuine_versions_once_in_order() -> None:
    deliveries = set(itertools.permutations([*GENUINE, FORGED, DUPLICATE]))
    assert len(deliveries) == 360
    for batches in (b for delivery in sorted(deliveries, key=str) for b in splits(delivery)):
        stream = Stream()
        seen: list[Ev] = []
        for batch in batches:
            held_before = stream.held
            step = stream.deliver(batch)
            seen += batch
            # What applied so far is exactly the longest gap-free run delivered from v1.
            versions = {e.aggregate_version for e in seen}
            prefix = 0
            while prefix + 1 in versions:
                prefix += 1
            assert stream.applied == prefix
            assert all(e.aggregate_version > stream.applied + 1 for e in stream.held)
            assert [e.aggregate_version for e in stream.held] == sorted(
                e.aggregate_version for e in stream.held
            )
            # The store's bookkeeping: what is held now = held before - unheld + newly held.
            kept = [e for e in held_before if e not in step.unheld]
            assert sorted([*kept, *step.newly_held], key=lambda e: e.aggregate_version) == list(
                stream.held
            )
        assert [e.name for e in stream.log] == ["v1", "v2", "v3", "v4"]
        assert stream.held == (FORGED,), "the forged version never applies: v5..v8 never came"


def test_the_held_event_applies_once_the_missing_versions_arrive() -> None:
    stream = Stream()
    assert stream.deliver([Ev(1, "a")]).applicable == (Ev(1, "a"),)
    step = stream.deliver([Ev(4, "d")])
    assert (step.applicable, step.held, step.newly_held) == ((), (Ev(4, "d"),), (Ev(4, "d"),))
    assert step.started_waiting
    step = stream.deliver([Ev(5, "e")])  # later events wait too, quietly
    assert step.held == (Ev(4, "d"), Ev(5, "e"))
    assert step.newly_held == (Ev(5, "e"),)
    assert not step.started_waiting
    step = stream.deliver([Ev(3, "c")])
    assert step.applicable == ()
    step = stream.deliver([Ev(2, "b")])
    assert [e.name for e in step.applicable] == ["b", "c", "d", "e"]
    assert set(step.unheld) == {Ev(3, "c"), Ev(4, "d"), Ev(5, "e")}
    assert step.held == step.newly_held == ()
    assert [e.name for e in stream.log] == ["a", "b", "c", "d", "e"]


def test_duplicates_are_skipped_and_the_first_event_of_a_version_keeps_its_place() -> None:
    step = in_order(2, [], [Ev(1, "old"), Ev(2, "old"), Ev(3, "new"), Ev(3, "again")])
    assert step.applicable == (Ev(3, "new"),)
    assert step.skipped == (Ev(1, "old"), Ev(2, "old"), Ev(3, "again"))

    held = [Ev(5, "first")]
    step = in_order(3, held, [Ev(5, "second")])
    assert (step.held, step.newly_held, step.skipped) == (tuple(held), (), (Ev(5, "second"),))
    step = in_order(3, held, [Ev(4, "gap filled"), Ev(5, "second")])
    assert [e.name for e in step.applicable] == ["gap filled", "first"]
    assert step.unheld == (Ev(5, "first"),)


def test_the_common_case_takes_the_batch_whole() -> None:
    batch = [Ev(v, str(v)) for v in range(8, 20)]
    step = in_order(7, [], batch)
    assert step.applicable == tuple(batch)
    assert step.held == step.skipped == step.unheld == ()


# --- the folds refuse a jump --------------------------------------------------------------

CAUSE = Cause(actor="system", at=datetime(2026, 3, 1, tzinfo=UTC))


def policy_event(cls: Any, version: int, org: str = "acme") -> Any:
    return cls.new(
        org_id=org, aggregate_id=org, aggregate_version=version, payload=Empty(), cause=CAUSE
    )


def contact_event(cls: Any, version: int, payload: Any, contact: str = "c1") -> Any:
    return cls.new(
        org_id="acme", aggregate_id=contact, aggregate_version=version, payload=payload, cause=CAUSE
    )


CREATED = ContactCreatedPayload(kind="vendor", display_name="V", email="v@example.com")


def test_evolve_skips_a_duplicate_and_refuses_a_jump() -> None:
    enabled = OrgPolicy("acme").evolve(policy_event(MfaPolicyEnabled, 1))
    assert enabled.evolve(policy_event(MfaPolicyDisabled, 1)) is enabled
    with pytest.raises(VersionGap):
        enabled.evolve(policy_event(MfaPolicyDisabled, 50))
    contact = ProjectedContact("c1", "acme").evolve(contact_event(ContactCreated, 1, CREATED))
    with pytest.raises(VersionGap):
        contact.evolve(contact_event(MfaReset, 99, MfaResetPayload(mfa_epoch=9, reason="x")))


# --- the decision fails closed --------------------------------------------------------------


def test_a_policy_with_a_gap_counts_as_enabled() -> None:
    off = OrgPolicy("acme", version=3, mfa_enabled=False)
    assert decide(off, None, None).requirement == "password"
    decision = decide(off, None, None, Held(policy=(50,)))
    assert (decision.requirement, decision.policy_enabled, decision.complete) == (
        "enroll",
        True,
        False,
    )
    assert decision.as_dict()["held_versions"] == {"policy": [50], "contact": []}
    assert decision.as_dict()["complete"] is False
    assert decide(off, None, None).as_dict()["complete"] is True


def test_a_contact_with_a_gap_gets_the_strict_requirement() -> None:
    off = OrgPolicy("acme", version=3, mfa_enabled=False)
    contact = ProjectedContact("c1", "acme", version=2)
    decision = decide(off, contact, None, Held(contact=(99,)))
    assert (decision.requirement, decision.complete) == ("enroll", False)
    assert decision.held.contact == (99,)


def test_explain_over_a_forged_history_agrees_with_the_projection() -> None:
    enabled = policy_event(MfaPolicyEnabled, 1)
    forged = policy_event(MfaPolicyDisabled, 50)
    created = contact_event(ContactCreated, 1, CREATED)
    forged_reset = contact_event(MfaReset, 99, MfaResetPayload(mfa_epoch=7, reason="forged"))
    decision = requirement_from_history("acme", "c1", [enabled, created, forged, forged_reset])
    assert decision.requirement == "enroll"
    assert decision.policy_enabled is True
    assert decision.mfa_epoch == 0, "the forged reset did not apply"
    assert decision.held == Held(policy=(50,), contact=(99,))
    assert decision.decided_by == (enabled.event_id,)

    # The genuine versions 2..49 arrive: the held one fits after them and applies.
    genuine = [
        policy_event(MfaPolicyEnabled if v % 2 else MfaPolicyDisabled, v) for v in range(2, 50)
    ]
    decision = requirement_from_history("acme", "c1", [enabled, created, forged, *genuine])
    assert decision.held == Held()
    assert (decision.requirement, decision.policy_enabled) == ("password", False)
    assert decision.decided_by == (forged.event_id,)


def test_a_contact_whose_stream_waits_is_answered_503_problem_json() -> None:
    app = FastAPI()
    install_problem_handlers(app)

    @app.post("/login")
    async def waiting() -> None:
        raise HistoryIncomplete("contact c1 waits beyond a version gap")

    answer = TestClient(app).post("/login")
    assert answer.status_code == 503
    assert answer.headers["content-type"] == "application/problem+json"
    body = answer.json()
    assert body["type"] == "https://portal-mfa.dev/problems/history-incomplete"
    assert "c1" not in answer.text, "the problem names no contact"
