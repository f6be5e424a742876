"""What a projection consumer's metrics say about it, read at scrape time.

Lag in records is the broker's high-water mark less the next offset the projection will
apply, summed over its partitions. Lag in seconds is how old the newest applied record
is while records wait behind it (0 when none wait): how stale a login decision may be.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from shared.projection import ProjectionConsumer


class ProjectionMetrics(Collector):
    def __init__(self, projection: ProjectionConsumer) -> None:
        self._projection = projection

    def collect(self) -> Iterator[Metric]:
        p = self._projection
        label = [p.name]
        behind = p.lag_records()
        records = GaugeMetricFamily(
            "portal_mfa_projection_lag_records",
            "Records on the broker not yet applied by the projection",
            labels=["projection"],
        )
        records.add_metric(label, float(behind))
        seconds = GaugeMetricFamily(
            "portal_mfa_projection_lag_seconds",
            "Age of the newest applied record while records wait behind it (0 when none do)",
            labels=["projection"],
        )
        since = p.newest_applied_at if p.newest_applied_at is not None else p.started_at
        seconds.add_metric(label, max(0.0, time.time() - since) if behind else 0.0)
        applied = CounterMetricFamily(
            "portal_mfa_projection_applied_events",
            "Events the projection applied (duplicates skipped count too)",
            labels=["projection"],
        )
        applied.add_metric(label, float(p.applied))
        ready = GaugeMetricFamily(
            "portal_mfa_projection_ready",
            "1 while the projection has caught up and is applying",
            labels=["projection"],
        )
        ready.add_metric(label, 1.0 if p.ready else 0.0)
        yield from (records, seconds, applied, ready)
