"""Runs one ProjectionConsumer until it is killed (a test's subprocess).

The projection is a LoginProjection in `--schema`, or with `--audit` the audit log.

    PYTHONPATH=<repo> python tests/integration/projection_process.py \
        --bootstrap HOST:PORT --database-url URL --schema NAME \
        --topic T1 --topic T2 --deadletter-topic DLT --batch-size N [--idempotence]

Prints `running` on stdout once the consumer has started (and sought to its stored offsets).
SIGTERM stops it cleanly; the tests mostly SIGKILL it instead.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal

from aiokafka import AIOKafkaProducer

from services.audit.adapters import SCHEMA as AUDIT_SCHEMA
from services.audit.adapters import AuditLog
from services.auth.projection import LoginProjection
from shared.db import open_pool, read_sql
from shared.projection import ProjectionConsumer
from tests.signing_keys import TEST_TRUST


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--schema", required=True)
    parser.add_argument("--topic", action="append", required=True)
    parser.add_argument("--deadletter-topic", required=True)
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--group-id", default=None)
    parser.add_argument("--idempotence", action="store_true")
    parser.add_argument("--audit", action="store_true", help="the audit log, not the login one")
    return parser.parse_args(argv)


async def _main(args: argparse.Namespace) -> None:
    pool = await open_pool(args.database_url, min_size=1, max_size=2)
    deadletter = AIOKafkaProducer(
        bootstrap_servers=args.bootstrap, acks="all", enable_idempotence=args.idempotence
    )
    projection: LoginProjection | AuditLog = (
        AuditLog() if args.audit else LoginProjection(schema=args.schema)
    )
    consumer = ProjectionConsumer(
        bootstrap=args.bootstrap,
        topics=args.topic,
        pool=pool,
        projection=projection,
        deadletter=deadletter,
        trust=TEST_TRUST,
        group_id=args.group_id,
        batch_size=args.batch_size,
        deadletter_topic=args.deadletter_topic,
    )
    try:
        async with pool.acquire() as conn:
            if isinstance(projection, AuditLog):
                await conn.execute(read_sql("services.audit", "schema.sql") + AUDIT_SCHEMA)
            else:
                await projection.create(conn)
        await deadletter.start()
        await consumer.start()
        print("running", flush=True)
        runner = asyncio.ensure_future(consumer.run())
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, runner.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await runner
    finally:
        await consumer.stop()
        await deadletter.stop()
        await pool.close()


def main(argv: list[str] | None = None) -> None:
    asyncio.run(_main(_arguments(argv)))


if __name__ == "__main__":
    main()
