from __future__ import annotations

from datetime import UTC, datetime

from services.preferences.domain import OrgPreferences
from shared.contracts import Cause, MfaPolicyDisabled, MfaPolicyEnabled, PortalNameSet

CAUSE = Cause(actor="admin-1", at=datetime(2026, 1, 1, tzinfo=UTC), correlation_id="corr")


def test_enabling_records_one_event_with_the_next_version_and_the_cause() -> None:
    [event] = OrgPreferences("acme").set_mfa_policy(True, CAUSE)
    assert isinstance(event, MfaPolicyEnabled)
    assert (event.org_id, event.aggregate_id, event.aggregate_version) == ("acme", "acme", 1)
    assert (event.actor, event.correlation_id, event.occurred_at) == ("admin-1", "corr", CAUSE.at)
    assert event.aggregate_type == "org_preferences"


def test_enabling_an_enabled_policy_records_nothing() -> None:
    prefs = OrgPreferences("acme")
    [enabled] = prefs.set_mfa_policy(True, CAUSE)
    prefs = prefs.apply(enabled)  # type: ignore[arg-type]
    assert prefs.mfa_enabled is True
    assert prefs.set_mfa_policy(True, CAUSE) == []
    [disabled] = prefs.set_mfa_policy(False, CAUSE)
    assert isinstance(disabled, MfaPolicyDisabled)
    assert disabled.aggregate_version == 2


def test_the_issuer_is_the_org_id_until_a_portal_name_is_set() -> None:
    prefs = OrgPreferences("acme")
    assert prefs.issuer == "acme"
    [named] = prefs.set_portal_name("Acme Portal", CAUSE)
    assert isinstance(named, PortalNameSet)
    prefs = prefs.apply(named)  # type: ignore[arg-type]
    assert prefs.issuer == "Acme Portal"
    assert prefs.set_portal_name("Acme Portal", CAUSE) == []


def test_state_is_rebuilt_from_events() -> None:
    prefs = OrgPreferences("acme")
    events = []
    for enabled in (True, False, True):
        [event] = prefs.set_mfa_policy(enabled, CAUSE)
        events.append(event)
        prefs = prefs.apply(event)  # type: ignore[arg-type]
    rebuilt = OrgPreferences.from_events("acme", events)  # type: ignore[arg-type]
    assert rebuilt == prefs
    assert (rebuilt.version, rebuilt.mfa_enabled) == (3, True)
