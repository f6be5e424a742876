"""Event topics keep their history (DESIGN.md §3): created with retention.ms=-1 and
retention.bytes=-1, and checked at service start on the real broker."""

from __future__ import annotations

import uuid

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from portal_mfa.infra import HistoryAtRisk, check_event_retention, ensure_topics

pytestmark = pytest.mark.integration


def event_topic() -> str:
    return f"portal.t{uuid.uuid4().hex[:10]}.events"


async def create_raw(bootstrap: str, name: str, configs: dict[str, str]) -> None:
    """A topic as someone else might have made it: not through ensure_topics."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, 1, 1, topic_configs=configs)])
    finally:
        await admin.close()


async def test_event_topics_are_created_to_keep_every_event(kafka_bootstrap: str) -> None:
    name = event_topic()
    assert await ensure_topics(kafka_bootstrap, [name]) == [name]
    await check_event_retention(kafka_bootstrap, [name], strict=True)


@pytest.mark.parametrize(
    ("configs", "named"),
    [
        ({"retention.ms": "604800000"}, "retention.ms=604800000"),
        ({"retention.ms": "-1", "retention.bytes": "1073741824"}, "retention.bytes=1073741824"),
        ({"retention.ms": "-1", "cleanup.policy": "compact"}, "cleanup.policy=compact"),
    ],
)
@pytest.mark.parametrize("strict", [True, False], ids=["production", "dev"])
async def test_a_service_refuses_an_event_topic_that_would_delete_history(
    kafka_bootstrap: str, configs: dict[str, str], named: str, strict: bool
) -> None:
    name = event_topic()
    await create_raw(kafka_bootstrap, name, configs)
    with pytest.raises(HistoryAtRisk, match=named):
        await check_event_retention(kafka_bootstrap, [name], strict=strict)


async def test_a_topic_whose_retention_cannot_be_confirmed_is_refused_in_production(
    kafka_bootstrap: str, kafka_idempotence: bool, caplog: pytest.LogCaptureFixture
) -> None:
    name = event_topic()
    await create_raw(kafka_bootstrap, name, {})
    with pytest.raises(HistoryAtRisk):
        await check_event_retention(kafka_bootstrap, [name], strict=True)
    external = kafka_idempotence  # real Kafka reports its default: seven days, refused
    if external:
        with pytest.raises(HistoryAtRisk):
            await check_event_retention(kafka_bootstrap, [name], strict=False)
    else:
        # The embedded broker reports only the configs a topic was created with: the dev
        # profile says so and accepts it.
        await check_event_retention(kafka_bootstrap, [name], strict=False)
        assert any("accepted in the dev profile" in r.getMessage() for r in caplog.records)


async def test_topics_that_hold_no_events_are_not_checked(kafka_bootstrap: str) -> None:
    name = f"portal.t{uuid.uuid4().hex[:10]}.commands"
    await create_raw(kafka_bootstrap, name, {"retention.ms": "86400000"})
    await check_event_retention(kafka_bootstrap, [name], strict=True)
