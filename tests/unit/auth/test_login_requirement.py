"""The decision table of DESIGN.md §1 and the mfa_epoch ordering rule, with no I/O."""

from __future__ import annotations

import uuid

import pytest

from shared.login_rule.login_requirement import ActiveEnrollment, decide
from shared.login_rule.projected import OrgPolicy, ProjectedContact

POLICY_EVENT = uuid.uuid4()
RESET_EVENT = uuid.uuid4()
ENROLLED_EVENT = uuid.uuid4()


def policy(enabled: bool) -> OrgPolicy:
    return OrgPolicy("acme", version=1, mfa_enabled=enabled, policy_event_id=POLICY_EVENT)


def contact(epoch: int = 0) -> ProjectedContact:
    return ProjectedContact(
        "c1", "acme", version=1, mfa_epoch=epoch, reset_event_id=RESET_EVENT if epoch else None
    )


def enrollment(epoch: int = 0) -> ActiveEnrollment:
    return ActiveEnrollment(uuid.uuid4(), mfa_epoch=epoch, enrolled_event_id=ENROLLED_EVENT)


@pytest.mark.parametrize(
    ("enabled", "enrolled", "expected"),
    [
        (True, False, "enroll"),
        (True, True, "totp"),
        (False, True, "totp"),
        (False, False, "password"),
    ],
)
def test_decision_table(enabled: bool, enrolled: bool, expected: str) -> None:
    decision = decide(policy(enabled), contact(), enrollment() if enrolled else None)
    assert decision.requirement == expected
    assert decision.enrolled is enrolled
    assert decision.policy_enabled is enabled
    assert decision.known is True


def test_unknown_contact_is_answered_from_the_policy_alone() -> None:
    decision = decide(policy(True), None, None)
    assert (decision.requirement, decision.known, decision.decided_by) == (
        "enroll",
        False,
        (POLICY_EVENT,),
    )
    assert decide(OrgPolicy("never-seen"), None, None).requirement == "password"


def test_a_reset_wins_over_an_enrollment_made_before_it() -> None:
    # The enrollment recorded epoch 0; the contact has since been reset to epoch 1.
    decision = decide(policy(False), contact(epoch=1), enrollment(epoch=0))
    assert decision.requirement == "password"
    assert decision.enrolled is False
    assert decision.decided_by == (POLICY_EVENT, RESET_EVENT)


def test_an_enrollment_made_after_the_reset_is_active() -> None:
    decision = decide(policy(False), contact(epoch=1), enrollment(epoch=1))
    assert decision.requirement == "totp"
    assert decision.decided_by == (POLICY_EVENT, RESET_EVENT, ENROLLED_EVENT)
    assert decision.as_dict()["decided_by"] == [
        str(POLICY_EVENT),
        str(RESET_EVENT),
        str(ENROLLED_EVENT),
    ]


def test_projection_schema_names_are_checked() -> None:
    from services.auth.adapters.projection import LoginProjection

    assert LoginProjection("login_projection_rebuild").schema == "login_projection_rebuild"
    with pytest.raises(ValueError, match="not a schema name"):
        LoginProjection("x; DROP TABLE contacts")
