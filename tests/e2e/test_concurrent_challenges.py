"""Portal login with MFA, end to end: one code, many concurrent challenges."""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.e2e.portal_client import (
    CHALLENGE,
    PROBLEM_BASE,
    Portal,
    assert_problem,
    whoami,
)

pytestmark = pytest.mark.e2e


# --- 10. One code, many concurrent challenges -------------------------------------------------


def test_the_same_code_sent_concurrently_is_accepted_once(portal: Portal) -> None:
    (user,) = portal.prepare("customer", policy=True)
    enrolled = portal.enroll(user)
    challenge_tokens = [portal.login_as(user, "mfa_required")["challenge_token"] for _ in range(20)]
    code = enrolled.app.code()
    start = threading.Barrier(len(challenge_tokens))

    def answer(challenge_token: str) -> httpx.Response:
        with httpx.Client(base_url=portal.stack.url("auth"), timeout=30) as client:
            start.wait()
            return client.post(CHALLENGE, json={"challenge_token": challenge_token, "otp": code})

    with ThreadPoolExecutor(max_workers=len(challenge_tokens)) as pool:
        answers = list(pool.map(answer, challenge_tokens))

    statuses = Counter(a.status_code for a in answers)
    assert statuses[200] == 1, statuses
    winner = next(a for a in answers if a.status_code == 200)
    assert whoami(portal, winner.json()["session_token"])["mfa"] is True
    # Every other attempt is a replay, refused. The refusals also count toward the lockout
    # (5 consecutive failures), so after five "wrong code" answers the rest are "locked out".
    losers = [a for a in answers if a.status_code != 200]
    kinds = Counter(assert_problem(a, a.status_code)["type"] for a in losers)
    assert kinds == {PROBLEM_BASE + "wrong-code": 5, PROBLEM_BASE + "locked-out": 14}, kinds
