"""The relay's health: why it cannot publish, when its backlog is stuck, and one log line
per change of state (not per retry)."""

from __future__ import annotations

import math

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from shared.relay_health import STARTING, RelayHealth, RelayMetrics


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def health(clock: Clock) -> RelayHealth:
    return RelayHealth("auth", stuck_after_s=10.0, clock=clock)


def broken_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "shared.outbox"]


def test_not_healthy_until_it_has_worked_once(health: RelayHealth) -> None:
    assert health.reason == STARTING
    health.working()
    assert health.healthy and health.reason is None


def test_one_line_when_it_breaks_and_one_when_it_recovers_whatever_the_retries(
    health: RelayHealth, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="shared.outbox")
    health.working()
    for n in range(50):
        clock.now += 0.5
        health.failed(
            "PostgreSQL unavailable: ConnectionRefusedError"
            if n % 2
            else "cannot publish to Kafka: KafkaTimeoutError"
        )
    assert not health.healthy
    clock.now += 1
    health.working(published=3)
    assert health.healthy
    lines = broken_lines(caplog)
    assert len(lines) == 2, lines
    assert lines[0].startswith("outbox relay auth broken: cannot publish to Kafka")
    assert lines[1] == "outbox relay auth recovered after 25.5 s"


def test_a_backlog_whose_oldest_row_does_not_move_is_stuck(
    health: RelayHealth, clock: Clock
) -> None:
    health.working()
    health.backlog(rows=40, oldest_position=7, oldest_age_s=0.2)
    clock.now += 9
    health.backlog(rows=90, oldest_position=7, oldest_age_s=9.2)
    assert health.healthy, "not yet: within stuck_after_s"
    clock.now += 2
    health.backlog(rows=120, oldest_position=7, oldest_age_s=11.2)
    assert not health.healthy
    assert health.reason is not None and "stuck" in health.reason and "120" in health.reason


def test_a_backlog_that_moves_is_not_stuck_however_old(health: RelayHealth, clock: Clock) -> None:
    health.working()
    for position in range(1, 30):
        clock.now += 5
        health.backlog(rows=100_000, oldest_position=position * 500, oldest_age_s=3600.0)
    assert health.healthy


def test_publishing_resets_the_stuck_clock_before_the_watcher_looks_again(
    health: RelayHealth, clock: Clock
) -> None:
    health.working()
    health.backlog(rows=10, oldest_position=1, oldest_age_s=0.0)
    clock.now += 30
    assert not health.healthy
    health.working(published=10)
    assert health.healthy


def test_metrics_report_backlog_age_and_health(health: RelayHealth) -> None:
    registry = CollectorRegistry()
    registry.register(RelayMetrics(health))
    health.working()
    health.backlog(rows=12, oldest_position=3, oldest_age_s=4.5)
    text = generate_latest(registry).decode()
    assert 'portal_mfa_outbox_backlog_rows{service="auth"} 12.0' in text
    assert 'portal_mfa_outbox_oldest_unsent_age_seconds{service="auth"} 4.5' in text
    assert 'portal_mfa_outbox_relay_healthy{service="auth"} 1.0' in text
    health.backlog_unknown()
    assert math.isnan(
        registry.get_sample_value("portal_mfa_outbox_backlog_rows", {"service": "auth"}) or 0.0
    )
