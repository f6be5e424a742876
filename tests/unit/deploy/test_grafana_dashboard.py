"""The shipped Grafana dashboard asks only for metrics the services export.

The names are read from the collectors themselves — the metrics the code defines, the
HTTP histogram as `observe` installs it, the relay's and a projection's scrape-time
gauges, the process collector — so a renamed metric breaks this test, not the dashboard
on the day it is needed.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from prometheus_client import REGISTRY, CollectorRegistry

import services.auth.adapters.account_metrics
import services.auth.adapters.held_events  # noqa: F401  (defines the version-gap gauges)
import shared.command_metrics
import shared.projection  # noqa: F401  (defines the dead-letter counter)
from shared.observability.http import observe
from shared.projection_metrics import ProjectionMetrics
from shared.relay_health import RelayHealth, RelayMetrics

DASHBOARD = Path(__file__).parents[3] / "deploy" / "grafana" / "portal-mfa.json"
# A metric name in PromQL: not a function, keyword or label (those are followed by `(`,
# or stand inside `by (...)` / `{...}`, which are removed first).
_GROUPING = re.compile(r"\b(by|without)\s*\([^)]*\)|\{[^}]*\}|\[[^\]]*\]|\"[^\"]*\"")
_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\b(?!\s*\()")
_PROMQL_WORDS = {"le", "by", "without", "on", "ignoring", "and", "or", "unless", "bool"}


class _Projection:
    """What ProjectionMetrics reads from a consumer, without a broker."""

    name = "login_requirement"
    applied = 3
    ready = True
    newest_applied_at = None
    started_at = 0.0

    def lag_records(self) -> int:
        return 0


def exported_names() -> set[str]:
    registry = CollectorRegistry()
    observe(FastAPI(), "auth", registry)
    registry.register(RelayMetrics(RelayHealth("auth", stuck_after_s=15)))
    registry.register(ProjectionMetrics(_Projection()))  # type: ignore[arg-type]
    names: set[str] = set()
    for source in (registry, REGISTRY):
        for family in source.collect():
            suffixes = {
                "counter": ("_total", "_created"),
                "histogram": ("_bucket", "_count", "_sum", "_created"),
                "summary": ("_count", "_sum", "_created"),
            }.get(family.type, ("",))
            names.update(family.name + suffix for suffix in suffixes)
    return names


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for panel in dashboard["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))
    return [p for p in found if p["type"] != "row"]


def metric_names(expr: str) -> set[str]:
    bare = _GROUPING.sub(" ", expr)
    return {n for n in _NAME.findall(bare) if n not in _PROMQL_WORDS and not n.isdigit()}


def test_every_panel_queries_metrics_that_exist() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exported = exported_names()
    queried: set[str] = set()
    for panel in panels(dashboard):
        assert panel["targets"], f"panel {panel['title']!r} has no query"
        for target in panel["targets"]:
            names = metric_names(target["expr"])
            assert names, target["expr"]
            unknown = names - exported
            assert not unknown, f"panel {panel['title']!r} asks for {sorted(unknown)}"
            queried |= names
    # The signals operators alert on are all on the dashboard.
    for wanted in (
        "portal_mfa_http_request_duration_seconds_bucket",
        "portal_mfa_logins_total",
        "portal_mfa_second_factor_failures_total",
        "portal_mfa_lockouts_total",
        "portal_mfa_backup_codes_used_total",
        "portal_mfa_commands_total",
        "portal_mfa_projection_lag_records",
        "portal_mfa_projection_lag_seconds",
        "portal_mfa_outbox_backlog_rows",
        "portal_mfa_outbox_oldest_unsent_age_seconds",
        "portal_mfa_deadlettered_records_total",
    ):
        assert wanted in queried, f"the dashboard shows no {wanted}"


def test_the_name_check_catches_a_typo() -> None:
    assert metric_names('sum by (reason) (rate(portal_mfa_logins_totl{job="x"}[5m]))') == {
        "portal_mfa_logins_totl"
    }
    assert "portal_mfa_logins_totl" not in exported_names()


def test_panels_have_unique_ids_and_a_place() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    assert dashboard["uid"] == "portal-mfa"
    for panel in dashboard["panels"]:
        assert {"h", "w", "x", "y"} <= panel["gridPos"].keys()
