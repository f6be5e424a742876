"""Embedded infrastructure for the dev stack and the tests, and setup shared with real servers."""

from portal_mfa.infra.broker import BrokerStartFailed, EmbeddedBroker, PortTaken, ensure_port_free
from portal_mfa.infra.postgres import (
    EmbeddedPostgres,
    database_url,
    drop_database,
    ensure_database,
)
from portal_mfa.infra.topics import HistoryAtRisk, check_event_retention, ensure_topics

__all__ = [
    "BrokerStartFailed",
    "EmbeddedBroker",
    "EmbeddedPostgres",
    "HistoryAtRisk",
    "PortTaken",
    "check_event_retention",
    "database_url",
    "drop_database",
    "ensure_database",
    "ensure_port_free",
    "ensure_topics",
]
