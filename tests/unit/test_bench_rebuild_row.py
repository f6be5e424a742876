"""The rebuild row names both of its baselines: §9's bare loop, on which the verdict is,
and the bare loop that also checks each record's signature (the design's mandatory work)."""

from __future__ import annotations

import pytest

from bench.projection_rebuild import Measured, ratios, report, row_detail

BARE = Measured(100_000, 1.0, {"this process": 0.6, "postgres": 0.2, "broker": 0.2})
CHECKING = Measured(100_000, 4.0, {"this process": 4.6, "postgres": 0.2, "broker": 0.2})
REBUILD = Measured(100_000, 8.0, {"this process": 9.0, "postgres": 0.8, "broker": 0.2})


def test_the_detail_holds_the_ratio_to_each_baseline_by_rate_and_by_cpu() -> None:
    detail = row_detail(100_000, BARE, REBUILD, CHECKING)

    assert detail["ratio_vs_bare"] == pytest.approx(1 / 8)
    assert detail["ratio_vs_checking_loop"] == pytest.approx(4 / 8)
    # CPU per event: bare 10 µs, checking 50 µs, rebuild 100 µs.
    assert detail["cpu_ratio_vs_bare"] == pytest.approx(0.1)
    assert detail["cpu_ratio_vs_checking_loop"] == pytest.approx(0.5)
    assert detail["checking_loop_events_per_s"] == pytest.approx(25_000)
    assert "signature" in str(detail["checking_loop"])


def test_without_the_checking_loop_only_the_bare_ratio_is_given() -> None:
    detail = row_detail(100_000, BARE, REBUILD, None)

    assert detail["ratio_vs_bare"] == pytest.approx(1 / 8)
    assert "ratio_vs_checking_loop" not in detail


def test_the_verdict_stays_on_the_bare_loop(capsys: pytest.CaptureFixture[str]) -> None:
    # 50 % of the checking loop, 12.5 % of the bare one: missed, as §9 words it.
    assert report(100_000, BARE, REBUILD, CHECKING) is False
    printed = capsys.readouterr().out
    assert "the bare loop (§9; the verdict)" in printed
    assert "the bare loop checking each signature" in printed
    assert ratios(REBUILD, CHECKING)["rate"] == pytest.approx(0.5)
