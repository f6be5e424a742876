"""A client's own X-Forwarded-For is not believed: with the default settings (no trusted
proxies) the login limits count the address the connection comes from, whatever the
header claims. Its own stack: the attack spends loopback's whole per-address budget.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest

from services.auth.domain.lockout import PER_CLIENT_ADDRESS
from tests.dev_stack import RunningStack, stack_running
from tests.e2e.portal_client import assert_problem, new_email, new_org

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def default_stack() -> Iterator[RunningStack]:
    with stack_running({"PORTAL_MFA_DEV_SEED": "0"}) as running:
        yield running


def spoofed() -> dict[str, str]:
    address = ".".join(str(random.randint(1, 254)) for _ in range(4))
    return {"X-Forwarded-For": address}


async def test_a_spoofed_forwarded_for_does_not_escape_the_address_limit(
    default_stack: RunningStack,
) -> None:
    org = new_org()
    guesses = PER_CLIENT_ADDRESS.attempts + 5
    # Password spraying: a different email and a made-up "client address" every time, ten
    # at a time (as fast as two cores verify them).
    async with httpx.AsyncClient(base_url=default_stack.url("auth"), timeout=60) as client:

        async def guess() -> httpx.Response:
            return await client.post(
                f"/v1/portals/{org}/login",
                json={"email": new_email("sprayed"), "password": "Winter2026!"},
                headers=spoofed(),
            )

        answers: list[httpx.Response] = []
        while len(answers) < guesses:
            answers += await asyncio.gather(*(guess() for _ in range(10)))

    statuses = Counter(a.status_code for a in answers)
    limit = PER_CLIENT_ADDRESS.attempts
    assert statuses == {401: limit, 429: len(answers) - limit}, statuses
    assert_problem(answers[-1], 429, "too-many-attempts")
