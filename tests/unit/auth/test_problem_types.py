"""Every refusal a flow can raise has its answer in the HTTP layer's one table, and the
answers are those the portal API has always given (status, stable type, Retry-After)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.auth.domain import errors
from services.auth.domain.lockout import MfaAttempts
from services.auth.entrypoints.http.problems import problem_for

NOW = datetime(2031, 1, 1, tzinfo=UTC)


def every_refusal() -> list[errors.AuthRefusal]:
    return [
        errors.InvalidCredentials(),
        errors.InvalidToken("challenge"),
        errors.InvalidToken("enrollment"),
        errors.NoSession(),
        errors.WrongCode(),
        errors.WrongEnrollmentCode(),
        errors.AlreadyEnrolled(),
        errors.EnrollmentNotStarted(),
        errors.EnrollmentNotVerified(),
        errors.WeakPassword(10),
        errors.InvalidInvitation(),
        errors.NotReady(),
        errors.TooManyAttempts(NOW + timedelta(seconds=90), NOW),
        errors.LockedOut(MfaAttempts(locked_until=NOW + timedelta(minutes=5)), NOW),
    ]


def test_every_refusal_class_is_in_the_list() -> None:
    listed = {type(r) for r in every_refusal()}
    assert listed == set(errors.AuthRefusal.__subclasses__())


@pytest.mark.parametrize(
    ("refusal", "status", "kind", "retry_after"),
    [
        (errors.InvalidCredentials(), 401, "invalid-credentials", None),
        (errors.InvalidToken("challenge"), 401, "invalid-challenge-token", None),
        (errors.WrongCode(), 401, "wrong-code", None),
        (errors.WrongEnrollmentCode(), 400, "wrong-code", None),
        (errors.AlreadyEnrolled(), 409, "already-enrolled", None),
        (errors.NotReady(), 503, "not-ready", None),
        (errors.TooManyAttempts(NOW + timedelta(seconds=90), NOW), 429, "too-many-attempts", 90),
        (
            errors.LockedOut(MfaAttempts(locked_until=NOW + timedelta(seconds=1.5)), NOW),
            429,
            "locked-out",
            2,
        ),
        (errors.LockedOut(MfaAttempts(disabled=True), NOW), 429, "locked-out", None),
    ],
)
def test_answers(
    refusal: errors.AuthRefusal, status: int, kind: str, retry_after: int | None
) -> None:
    problem = problem_for(refusal)
    assert (problem.status, problem.kind, problem.retry_after_s) == (status, kind, retry_after)


def test_every_refusal_has_an_answer() -> None:
    for refusal in every_refusal():
        assert problem_for(refusal).title
