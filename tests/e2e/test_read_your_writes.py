"""Read-your-writes: a change's reply names its position, and a read given it never answers
from before the change (shared.read_your_writes); the CLI waits for it by default."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

import httpx
import pytest

from shared.read_your_writes import READ_WAIT_S
from tests.dev_stack import RunningStack
from tests.e2e.portal_client import Portal, User, assert_problem

pytestmark = pytest.mark.e2e

ROUNDS = 20


def lookup(portal: Portal, contact_id: str, position: str | None) -> httpx.Response:
    params = {"min_position": position} if position is not None else {}
    return portal.http.get(
        f"/v1/orgs/{portal.org}/contacts/{contact_id}/login-requirement",
        params=params,
        headers=portal.stack.bearer(portal.org, "audit"),
    )


def answered(ask: Callable[[], httpx.Response], attempts: int = 3) -> httpx.Response:
    """The first answer that is not `not-caught-up`: a 503 is allowed (a loaded machine may
    take longer than the bound to start the CLI), the old answer never is."""
    for _ in range(attempts - 1):
        answer = ask()
        if answer.status_code != 503:
            return answer
        assert_problem(answer, 503, "not-caught-up")
    return ask()


def reset_without_waiting(portal: Portal, user: User) -> dict[str, Any]:
    answer: dict[str, Any] = portal.admin("--no-wait", "contacts", "reset-mfa", user.contact_id)
    return answer


def test_a_reset_read_at_its_position_never_shows_the_old_answer(portal: Portal) -> None:
    # Each read is sent before the reset it names is even sent: only waiting for the
    # position keeps it from answering from before the reset.
    (user,) = portal.prepare("customer", policy=True)
    position = reset_without_waiting(portal, user)["position"]
    with ThreadPoolExecutor(max_workers=1) as pool:
        for epoch in range(2, ROUNDS + 2):
            aggregate_type, version, contact_id = position.split(":", 2)
            ahead = f"{aggregate_type}:{int(version) + 1}:{contact_id}"
            read = pool.submit(answered, partial(lookup, portal, user.contact_id, ahead))
            reset = reset_without_waiting(portal, user)
            assert (reset["mfa_epoch"], reset["position"]) == (epoch, ahead)
            answer = read.result()
            assert answer.status_code == 200, answer.text
            assert answer.json()["mfa_epoch"] == epoch, (epoch, answer.json())
            position = reset["position"]


def test_the_cli_returns_only_once_logins_reflect_the_reset(
    stack: RunningStack, portal: Portal
) -> None:
    (user,) = portal.prepare("vendor", policy=True)
    auth = stack.service_process("auth")
    with ThreadPoolExecutor(max_workers=1) as pool:
        auth.send_signal(signal.SIGSTOP)  # auth hangs: nothing can apply the reset
        try:
            reset = pool.submit(portal.admin, "contacts", "reset-mfa", user.contact_id)
            # contacts answers at once; the CLI still waits, for auth.
            time.sleep(3)
            assert not reset.done()
        finally:
            auth.send_signal(signal.SIGCONT)
        assert reset.result()["mfa_epoch"] == 1
    # Returning meant auth's decision had changed: no position, no polling needed.
    assert portal.requirement(user.contact_id)["mfa_epoch"] == 1


def test_a_position_auth_never_reaches_is_refused_within_the_bound(portal: Portal) -> None:
    (user,) = portal.prepare("customer")
    started = time.monotonic()
    answer = lookup(portal, user.contact_id, f"contact:999999:{user.contact_id}")
    took = time.monotonic() - started
    body = assert_problem(answer, 503, "not-caught-up")
    assert "Retry-After" in answer.headers
    assert user.contact_id not in str(body)
    # It waited for the projection, and no longer than the bound (plus a loaded machine).
    assert READ_WAIT_S - 0.5 <= took <= READ_WAIT_S + 5, took


def test_another_orgs_position_reveals_nothing(stack: RunningStack, portal: Portal) -> None:
    # An admin of this org names a write of another org's contact: auth has applied it, yet
    # the answer is the one for a contact that never existed, so nothing leaks across orgs.
    other = Portal(stack)
    try:
        (victim,) = other.prepare("customer")
        created = other.admin("--no-wait", "contacts", "reset-mfa", victim.contact_id)
        assert lookup(other, victim.contact_id, created["position"]).status_code == 200
        answer = lookup(portal, victim.contact_id, created["position"])
        assert_problem(answer, 503, "not-caught-up")
        policy = lookup(portal, "anyone", f"org_preferences:1:{other.org}")
        assert_problem(policy, 503, "not-caught-up")
    finally:
        other.close()


@pytest.mark.parametrize(
    "position",
    ["", "contact", "contact:one:c-1", "contact:1:", ":1:c-1", "contact:1:c 1", "x" * 300],
)
def test_a_malformed_position_is_refused_as_malformed(portal: Portal, position: str) -> None:
    assert_problem(lookup(portal, "c-1", position), 422, "invalid-request")


def test_a_policy_change_read_at_its_position_shows_the_new_policy(portal: Portal) -> None:
    with ThreadPoolExecutor(max_workers=1) as pool:
        for version, enabled in enumerate((True, False, True), start=1):
            # Asked before the change is sent: only the wait makes it show the new policy.
            ahead = f"org_preferences:{version}:{portal.org}"
            read = pool.submit(answered, partial(lookup, portal, "no-such-contact", ahead))
            changed = portal.admin("--no-wait", "mfa", "enable" if enabled else "disable")
            assert changed["position"] == ahead
            answer = read.result()
            assert answer.status_code == 200, answer.text
            assert answer.json()["policy_enabled"] is enabled


def test_the_audit_log_read_at_a_position_holds_the_change(portal: Portal) -> None:
    (user,) = portal.prepare("customer")
    audit = httpx.Client(base_url=portal.stack.url("audit"), timeout=30)
    try:
        with ThreadPoolExecutor(max_workers=1) as pool:
            for epoch in range(1, 6):
                # The contact stands at version 2 + resets so far (created, granted).
                ahead = f"contact:{epoch + 2}:{user.contact_id}"
                params = {
                    "org": portal.org,
                    "contact": user.contact_id,
                    "type": "MfaReset",
                    "min_position": ahead,
                }
                headers = portal.stack.bearer(portal.org, "audit")
                read = pool.submit(
                    answered, partial(audit.get, "/v1/events", params=params, headers=headers)
                )
                assert reset_without_waiting(portal, user)["position"] == ahead
                answer = read.result()
                assert answer.status_code == 200, answer.text
                epochs = [e["payload"]["mfa_epoch"] for e in answer.json()["events"]]
                assert epochs == list(range(1, epoch + 1)), epochs
        explained = audit.get(
            f"/v1/orgs/{portal.org}/contacts/{user.contact_id}/explain",
            params={"min_position": f"contact:999999:{user.contact_id}"},
            headers=portal.stack.bearer(portal.org, "audit"),
        )
        assert_problem(explained, 503, "not-caught-up")
    finally:
        audit.close()
