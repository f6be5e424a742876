from __future__ import annotations

import pytest

from shared.settings import SettingsError, load_settings


def test_defaults_are_the_production_profile(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("PORTAL_MFA_KAFKA_IDEMPOTENCE", "PORTAL_MFA_PROFILE", "PORTAL_MFA_AUTH_PORT"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings()
    assert settings.kafka_idempotence is True
    assert settings.profile == "production"
    assert settings.auth_port == 8000


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("PORTAL_MFA_AUTH_PORT", "not-a-port"),
        ("PORTAL_MFA_KAFKA_BOOTSTRAP", "no-port-here"),
        ("PORTAL_MFA_DATABASE_URL", "mysql://secret-password@db/x"),
    ],
)
def test_a_bad_value_is_one_line_naming_the_variable_not_the_value(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as refused:
        load_settings()
    message = str(refused.value)
    assert variable in message
    assert value not in message
    assert "\n" not in message
