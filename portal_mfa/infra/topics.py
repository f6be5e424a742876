"""Create Kafka topics that do not exist yet — on the embedded broker and on real Kafka —
and make sure event topics keep their history.

Events are kept forever (DESIGN.md §3): an event topic (`portal.<owner>.events`) is
created with `retention.ms=-1` and `retention.bytes=-1`, and a service refuses to start
on an event topic that would delete or compact history (Kafka's default deletes after
seven days).
"""

from __future__ import annotations

import fnmatch
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError, TopicAlreadyExistsError, for_code

log = logging.getLogger(__name__)

EVENT_TOPIC_PATTERN = "portal.*.events"
KEEP_FOREVER = {"retention.ms": "-1", "retention.bytes": "-1"}
_CHECKED = ("retention.ms", "retention.bytes", "cleanup.policy")


class HistoryAtRisk(SystemExit):
    """An event topic is set to delete or compact events; the service must not start."""


def is_event_topic(name: str) -> bool:
    return fnmatch.fnmatchcase(name, EVENT_TOPIC_PATTERN)


async def ensure_topics(
    bootstrap: str,
    topics: Mapping[str, int] | Iterable[str],
    partitions: int = 1,
    replication_factor: int = 1,
    *,
    security: Mapping[str, Any] | None = None,
) -> list[str]:
    """Create the missing ones of `topics` and return the names this call created.

    `topics` is either names (each gets `partitions`) or a mapping name -> partitions.
    An existing topic is left as it is, whatever its partition count; a topic created
    concurrently by someone else counts as existing. Event topics are created to keep
    every event. `security` is how to authenticate
    (`shared.kafka.security_options`); the embedded broker needs none.
    """
    wanted = dict(topics) if isinstance(topics, Mapping) else dict.fromkeys(topics, partitions)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **(security or {}))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(
                name,
                count,
                replication_factor,
                topic_configs=dict(KEEP_FOREVER) if is_event_topic(name) else {},
            )
            for name, count in wanted.items()
            if name not in existing
        ]
        if not missing:
            return []
        response = await admin.create_topics(missing)
        created = []
        # v0 of the response has (topic, error_code); later versions add a message.
        for name, error_code, *message in response.topic_errors:
            error = for_code(error_code)
            if error_code == 0:
                created.append(name)
            elif error is not TopicAlreadyExistsError:
                detail = message[0] if message and message[0] else error.description
                raise error(f"creating topic {name!r} on {bootstrap}: {detail}")
        return created
    finally:
        await admin.close()


async def check_event_retention(
    bootstrap: str,
    topics: Iterable[str],
    *,
    strict: bool,
    security: Mapping[str, Any] | None = None,
) -> None:
    """Raise HistoryAtRisk unless every event topic among `topics` keeps its history.

    A broker that cannot describe topic configs, or reports none (the embedded dev broker
    reports only the configs a topic was created with), cannot prove it: `strict` refuses
    that too; otherwise (the dev profile) it is logged and accepted.
    """
    names = [t for t in topics if is_event_topic(t)]
    if not names:
        return
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **(security or {}))
    await admin.start()
    try:
        try:
            responses = await admin.describe_configs(
                [ConfigResource(ConfigResourceType.TOPIC, name) for name in names]
            )
        except KafkaError as exc:
            _unproven(f"the broker cannot describe topic configs ({type(exc).__name__})", strict)
            return
    finally:
        await admin.close()
    reported: dict[str, dict[str, str | None]] = {}
    for response in responses:
        for error_code, _message, _type, name, entries in response.resources:
            if error_code != 0:
                raise HistoryAtRisk(
                    f"cannot check the retention of event topic {name!r} on {bootstrap}:"
                    f" {for_code(error_code).__name__}"
                )
            reported[name] = {entry[0]: entry[1] for entry in entries}
    for name in names:
        configs = reported.get(name, {})
        if not any(key in configs for key in _CHECKED):
            _unproven(f"the broker reports no retention settings for {name!r}", strict)
            continue
        risky = _deletes_history(configs)
        if risky:
            raise HistoryAtRisk(
                f"event topic {name!r} on {bootstrap} would delete events ({risky}); events"
                " are kept forever: set retention.ms=-1 and retention.bytes=-1 and"
                " cleanup.policy=delete on it (kafka-configs.sh --alter --entity-type topics"
                f" --entity-name {name} --add-config retention.ms=-1,retention.bytes=-1)"
            )


def _deletes_history(configs: Mapping[str, str | None]) -> str:
    risky = [
        f"{key}={configs[key]}"
        for key in ("retention.ms", "retention.bytes")
        if key in configs and configs[key] != "-1"
    ]
    if "compact" in (configs.get("cleanup.policy") or ""):
        risky.append(f"cleanup.policy={configs['cleanup.policy']}")
    return ", ".join(risky)


def _unproven(why: str, strict: bool) -> None:
    if strict:
        raise HistoryAtRisk(
            f"cannot confirm that event topics keep their history: {why}"
            " (the dev profile accepts this; production does not)"
        )
    log.warning("%s; accepted in the dev profile", why)
