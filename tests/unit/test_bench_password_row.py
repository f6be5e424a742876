"""The password step's row: `python -m bench password` runs it alone, and beside the rate
ratio it gives each group's CPU per login net of the idle stack and the ratio that CPU
allows (the comparable figure on a shared machine)."""

from __future__ import annotations

import pytest

from bench.__main__ import _parse_args
from bench.portal_http import Rate, password_row


def test_the_password_step_can_be_run_alone() -> None:
    args = _parse_args(["password", "--quick"])
    assert (args.what, args.quick) == ("password", True)


def _rate(count: int, seconds: float, cpu: dict[str, float]) -> Rate:
    rate = Rate(0, 0.0)
    rate.add(Rate(count, seconds, cpu))
    return rate


def test_cpu_per_login_is_net_of_the_idle_stack_and_gives_the_ratio_the_cpu_allows() -> None:
    # Bare: 100 verifies in 2 s, 20 ms each; the idle stack spends 0.1 s/s in auth and in
    # PostgreSQL. Logins: 100 in 4 s, auth 2.9 s (0.4 of it idle), PostgreSQL 0.6 s.
    bare = _rate(100, 2.0, {"this process": 2.0, "auth": 0.2, "postgres": 0.2})
    login = _rate(100, 4.0, {"this process": 0.0, "auth": 2.9, "postgres": 0.6})
    login.threads = {"hash running": 2.0, "hash waiting": 1.0, "hash wall": 4.0}

    row = password_row(bare, login)

    assert row.ratio == pytest.approx(0.5)  # 25 logins/s of 50 verifies/s
    net = row.detail["net_cpu_ms_per_login"]
    assert net["auth"] == pytest.approx(25.0)
    assert net["postgres"] == pytest.approx(2.0)
    assert row.detail["ratio_allowed_by_cpu"] == pytest.approx(20.0 / 27.0)
    assert row.detail["hash_threads_running_share"] == pytest.approx(0.5)
    assert row.detail["hash_threads_waiting_share"] == pytest.approx(0.25)
    assert row.detail["rounds_logins_per_s"] == [pytest.approx(25.0)]
