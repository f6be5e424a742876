"""Create Kafka topics that do not exist yet — on the embedded broker and on real Kafka."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError, for_code


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
    concurrently by someone else counts as existing. `security` is how to authenticate
    (`shared.kafka.security_options`); the embedded broker needs none.
    """
    wanted = dict(topics) if isinstance(topics, Mapping) else dict.fromkeys(topics, partitions)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **(security or {}))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(name, count, replication_factor)
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
