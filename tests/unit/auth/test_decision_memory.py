"""The lookup's memory forgets what a notification names, keeps nothing while unsure,
goes off at the first database failure seen until a later check answers, and stays
bounded (the integration test drives it through real notifications)."""

from __future__ import annotations

import time

import pytest
from prometheus_client import CollectorRegistry

from services.auth.adapters import decision_memory
from services.auth.adapters.decision_memory import Answer, DecisionMemory
from shared.login_rule.login_requirement import LoginRequirement

ANSWER = Answer(LoginRequirement("enroll", True, True, False, 0, ()), b"{}")


def listening(capacity: int = 100) -> DecisionMemory:
    cache = DecisionMemory(capacity)
    cache.heard_up_to(time.monotonic())
    return cache


def test_a_contact_change_forgets_it_in_every_org_and_nothing_else() -> None:
    cache = listening()
    for org, contact in (("a", "c1"), ("b", "c1"), ("a", "c2")):
        cache.put(org, contact, ANSWER, cache.generation)
    cache.changed(f"{decision_memory.CONTACT_PREFIX}c1")
    assert (cache.get("a", "c1"), cache.get("b", "c1")) == (None, None)
    assert cache.get("a", "c2") == ANSWER


def test_an_org_change_forgets_that_orgs_answers_and_anything_unknown_forgets_all() -> None:
    cache = listening()
    cache.put("a", "c1", ANSWER, cache.generation)
    cache.put("b", "c2", ANSWER, cache.generation)
    cache.changed(f"{decision_memory.ORG_PREFIX}a")
    assert (cache.get("a", "c1"), cache.get("b", "c2")) == (None, ANSWER)
    cache.changed("something new")  # not understood: the safe reading is "everything"
    assert cache.get("b", "c2") is None


def test_unsure_it_neither_answers_nor_keeps(monkeypatch: pytest.MonkeyPatch) -> None:
    cache = listening()
    cache.put("a", "c1", ANSWER, cache.generation)
    later = time.monotonic() + decision_memory.TRUST_WINDOW_S + 0.01
    monkeypatch.setattr("services.auth.adapters.decision_memory.time.monotonic", lambda: later)
    assert cache.get("a", "c1") is None  # no check came back lately: read the database
    cache.put("a", "c2", ANSWER, cache.generation)
    cache.heard_up_to(later)
    assert cache.get("a", "c1") == ANSWER  # heard again, and nothing changed meanwhile
    assert cache.get("a", "c2") is None  # what was read while unsure was not kept
    cache.forget_all()
    assert cache.get("a", "c1") is None  # a new listener starts empty


def test_it_stays_bounded_dropping_the_least_recently_used() -> None:
    cache = listening(capacity=2)
    cache.put("a", "c1", ANSWER, cache.generation)
    cache.put("a", "c2", ANSWER, cache.generation)
    assert cache.get("a", "c1") == ANSWER  # c1 used: c2 is now the oldest
    cache.put("a", "c3", ANSWER, cache.generation)
    assert (cache.get("a", "c1"), cache.get("a", "c2"), cache.get("a", "c3")) == (
        ANSWER,
        None,
        ANSWER,
    )


def test_a_database_failure_switches_it_off_at_once_until_a_later_check_answers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    registry = CollectorRegistry()
    cache = DecisionMemory(registry=registry)
    assert cache.state().startswith("off")  # nothing heard yet
    checked_at = time.monotonic()
    cache.heard_up_to(checked_at)
    cache.put("a", "c1", ANSWER, cache.generation)
    assert (cache.get("a", "c1"), cache.state()) == (ANSWER, "on")
    assert registry.get_sample_value("portal_mfa_lookup_memory_on") == 1.0

    with caplog.at_level("WARNING", logger=decision_memory.__name__):
        cache.failed("request", ConnectionResetError())
        cache.failed("listener")  # the same outage, seen again: not said again
    assert cache.get("a", "c1") is None  # within the trust window, yet off and empty
    assert cache.state() == "off: database failure (the request saw ConnectionResetError)"
    assert len(caplog.records) == 1
    assert registry.get_sample_value("portal_mfa_lookup_memory_on") == 0.0
    failures = "portal_mfa_lookup_memory_failures_total"
    assert registry.get_sample_value(failures, {"seen_by": "request"}) == 1.0
    assert registry.get_sample_value(failures, {"seen_by": "listener"}) == 1.0

    cache.heard_up_to(checked_at)  # a check sent before the failure proves nothing
    cache.put("a", "c1", ANSWER, cache.generation)
    assert (cache.get("a", "c1"), cache.trusted) == (None, False)
    cache.heard_up_to(time.monotonic())  # one sent after it does
    assert cache.state() == "on"
    assert cache.get("a", "c1") is None  # and the memory starts empty
