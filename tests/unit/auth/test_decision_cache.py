"""The lookup's memory forgets what a notification names, keeps nothing while unsure,
and stays bounded (the integration test drives it through real notifications)."""

from __future__ import annotations

import time

import pytest

from services.auth import decision_cache
from services.auth.decision_cache import DecisionCache
from shared.login_rule.login_requirement import LoginRequirement

ANSWER = LoginRequirement("enroll", True, True, False, 0, ())


def listening(capacity: int = 100) -> DecisionCache:
    cache = DecisionCache(capacity)
    cache.heard_up_to(time.monotonic())
    return cache


def test_a_contact_change_forgets_it_in_every_org_and_nothing_else() -> None:
    cache = listening()
    for org, contact in (("a", "c1"), ("b", "c1"), ("a", "c2")):
        cache.put(org, contact, ANSWER, cache.generation)
    cache.changed(f"{decision_cache.CONTACT_PREFIX}c1")
    assert (cache.get("a", "c1"), cache.get("b", "c1")) == (None, None)
    assert cache.get("a", "c2") == ANSWER


def test_an_org_change_forgets_that_orgs_answers_and_anything_unknown_forgets_all() -> None:
    cache = listening()
    cache.put("a", "c1", ANSWER, cache.generation)
    cache.put("b", "c2", ANSWER, cache.generation)
    cache.changed(f"{decision_cache.ORG_PREFIX}a")
    assert (cache.get("a", "c1"), cache.get("b", "c2")) == (None, ANSWER)
    cache.changed("something new")  # not understood: the safe reading is "everything"
    assert cache.get("b", "c2") is None


def test_unsure_it_neither_answers_nor_keeps(monkeypatch: pytest.MonkeyPatch) -> None:
    cache = listening()
    cache.put("a", "c1", ANSWER, cache.generation)
    later = time.monotonic() + decision_cache.TRUST_WINDOW_S + 0.01
    monkeypatch.setattr("services.auth.decision_cache.time.monotonic", lambda: later)
    assert cache.get("a", "c1") is None  # no check came back lately: read the database
    cache.put("a", "c2", ANSWER, cache.generation)
    cache.heard_up_to(later)
    assert cache.get("a", "c1") == ANSWER  # heard again, and nothing changed meanwhile
    assert cache.get("a", "c2") is None  # what was read while unsure was not kept
    cache.distrust()
    cache.heard_up_to(later)
    assert cache.get("a", "c1") is None  # a lost listener clears the memory


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
