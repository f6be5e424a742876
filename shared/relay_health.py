"""What a relay's readiness and metrics say about it, and one log line per change.

Two witnesses: the publishing loop (did its last attempt work?) and a backlog watcher
(is the oldest unsent row moving?). The watcher sees a stall the loop cannot report:
a send that hangs while the broker is paused raises nothing for a long time.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

log = logging.getLogger("shared.outbox")

STARTING = "relay starting: not connected yet"


class RelayHealth:
    def __init__(
        self, name: str, *, stuck_after_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.name = name
        self.stuck_after_s = stuck_after_s
        self._clock = clock
        self._failure: str | None = STARTING
        self._broken_since: float | None = clock()
        self.backlog_rows: int | None = None
        self.oldest_unsent_age_s: float | None = None
        self._oldest_position: int | None = None
        self._oldest_seen_since = clock()
        self._announced_broken = False
        self.published_total = 0

    # --- what the witnesses report ----------------------------------------------------------

    def failed(self, reason: str) -> None:
        self._failure = reason
        self._note()

    def working(self, published: int = 0) -> None:
        self._failure = None
        self.published_total += published
        if published:
            # The oldest row moved: the watcher's next look will see it, and until then
            # the backlog is not stuck.
            self._oldest_seen_since = self._clock()
        self._note()

    def backlog(self, rows: int, oldest_position: int | None, oldest_age_s: float | None) -> None:
        if oldest_position != self._oldest_position:
            self._oldest_position = oldest_position
            self._oldest_seen_since = self._clock()
        self.backlog_rows = rows
        self.oldest_unsent_age_s = oldest_age_s if rows else 0.0
        self._note()

    def backlog_unknown(self) -> None:
        self.backlog_rows = None
        self.oldest_unsent_age_s = None

    # --- what readiness reads ---------------------------------------------------------------

    @property
    def reason(self) -> str | None:
        """Why the relay cannot publish right now; None while it can."""
        if self._failure is not None:
            return self._failure
        stalled_s = self._clock() - self._oldest_seen_since
        if self.backlog_rows and stalled_s > self.stuck_after_s:
            return (
                f"outbox backlog stuck: {self.backlog_rows} unsent rows,"
                f" the oldest not moved for {stalled_s:.0f} s"
            )
        return None

    @property
    def healthy(self) -> bool:
        return self.reason is None

    def _note(self) -> None:
        # One line when it breaks and one when it recovers; not one per retry, nor per
        # change of reason while broken (/readyz shows the current one).
        reason = self.reason
        now = self._clock()
        if reason is None:
            if self._announced_broken and self._broken_since is not None:
                took = now - self._broken_since
                log.warning("outbox relay %s recovered after %.1f s", self.name, took)
            self._announced_broken = False
            self._broken_since = None
            return
        if self._broken_since is None:
            self._broken_since = now
        if not self._announced_broken and reason != STARTING:
            log.warning("outbox relay %s broken: %s", self.name, reason)
            self._announced_broken = True


class RelayMetrics(Collector):
    """Prometheus gauges read from the relay's health at scrape time."""

    def __init__(self, health: RelayHealth) -> None:
        self._health = health

    def collect(self) -> Iterator[Metric]:
        labels = [self._health.name]
        rows = GaugeMetricFamily(
            "portal_mfa_outbox_backlog_rows", "Outbox rows not yet published", labels=["service"]
        )
        rows.add_metric(labels, _or_nan(self._health.backlog_rows))
        age = GaugeMetricFamily(
            "portal_mfa_outbox_oldest_unsent_age_seconds",
            "Age of the oldest outbox row not yet published (0 when none)",
            labels=["service"],
        )
        age.add_metric(labels, _or_nan(self._health.oldest_unsent_age_s))
        healthy = GaugeMetricFamily(
            "portal_mfa_outbox_relay_healthy", "1 while the relay can publish", labels=["service"]
        )
        healthy.add_metric(labels, 1.0 if self._health.healthy else 0.0)
        published = CounterMetricFamily(
            "portal_mfa_outbox_published_events",
            "Outbox rows published to Kafka (a republish after a crash counts again)",
            labels=["service"],
        )
        published.add_metric(labels, float(self._health.published_total))
        yield from (rows, age, healthy, published)


def _or_nan(value: float | None) -> float:
    return math.nan if value is None else float(value)
