"""Run one outbox relay as its own process, for tests that kill it.

    python relay_process.py DATABASE_URL BOOTSTRAP IDEMPOTENCE(0|1) [BATCH_SIZE]

Runs `shared.outbox.OutboxRelay` until killed. The repository root is put on `sys.path`, so
no PYTHONPATH is needed.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from shared.kafka import new_producer
from shared.outbox import OutboxRelay
from shared.settings import Settings
from tests.signing_keys import TEST_SIGNERS


async def main(database_url: str, bootstrap: str, idempotence: bool, batch_size: int) -> None:
    settings = Settings(
        database_url=database_url, kafka_bootstrap=bootstrap, kafka_idempotence=idempotence
    )
    producer = new_producer(settings)
    await producer.start()
    try:
        await OutboxRelay(
            settings.database_url,
            producer,
            TEST_SIGNERS["preferences"],
            poll_interval_s=0.2,
            batch_size=batch_size,
        ).run()
    finally:
        await producer.stop()


if __name__ == "__main__":
    if len(sys.argv) not in (4, 5):
        sys.exit(__doc__)
    database_url, bootstrap, idempotence = sys.argv[1:4]
    batch_size = int(sys.argv[4]) if len(sys.argv) == 5 else 500
    asyncio.run(main(database_url, bootstrap, idempotence == "1", batch_size))
