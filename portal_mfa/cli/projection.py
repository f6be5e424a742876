"""`portal-mfa projection rebuild`: auth's login projection, rebuilt from offset 0."""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING

import typer

from portal_mfa import dev_state

if TYPE_CHECKING:
    from shared.settings import Settings

projection = typer.Typer(help="Auth's login-requirement projection.")


def auth_settings() -> Settings:
    """The settings, with a running dev stack's database and signers if it is the one meant."""
    from shared.settings import load_settings

    settings = load_settings()
    state = dev_state.read(settings.kafka_bootstrap)
    if state and "PORTAL_MFA_DATABASE_URL" not in os.environ:
        # The dev stack on that broker: its embedded PostgreSQL.
        settings = settings.model_copy(update={"database_url": state["database_url"]})
    if state and state.get("trusted_signers") and "PORTAL_MFA_TRUSTED_SIGNERS" not in os.environ:
        # ...and the public keys its services sign with, made fresh at its start.
        settings = settings.model_copy(update={"trusted_signers": state["trusted_signers"]})
    return settings


@projection.command("rebuild", help="Rebuild from offset 0 beside the live one, then swap.")
def rebuild() -> None:
    # Imported here: the rest of the CLI should not pay for the service stack's imports.
    import asyncio

    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from portal_mfa.infra.postgres import ensure_database
    from portal_mfa.serve import database_name
    from services.auth.adapters.projection import LoginProjection
    from services.auth.entrypoints import rebuild as rebuilding
    from shared.db import open_pool
    from shared.kafka import new_producer, security_options
    from shared.signing_settings import trust_from

    settings = auth_settings()
    trust = trust_from(settings)

    async def run() -> tuple[int, int]:
        url = await ensure_database(settings.database_url, database_name("auth"))
        pool = await open_pool(url)
        producer = new_producer(settings, idempotent=False)
        await producer.start()
        started = time.monotonic()
        with Progress(
            TextColumn("rebuilding login projection"),
            BarColumn(),
            TextColumn("{task.completed:,} events"),
            TextColumn("{task.fields[rate]:,.0f} events/s"),
            TextColumn("lag {task.fields[lag]:,}"),
            TimeElapsedColumn(),
        ) as bar:
            task = bar.add_task("rebuild", total=None, rate=0.0, lag=0)

            def show(p: rebuilding.Progress) -> None:
                elapsed = max(time.monotonic() - started, 1e-6)
                total = p.applied + p.lag if not p.caught_up else p.applied
                bar.update(
                    task, completed=p.applied, total=total, rate=p.applied / elapsed, lag=p.lag
                )

            try:
                applied = await rebuilding.rebuild(
                    pool,
                    settings.kafka_bootstrap,
                    producer,
                    trust=trust,
                    on_progress=show,
                    security=security_options(settings),
                )
                async with pool.acquire() as conn:
                    waiting = await LoginProjection().waiting(conn)
                return applied, waiting.aggregates
            finally:
                await producer.stop()
                await pool.close()

    applied, waiting = asyncio.run(run())
    print(f"rebuilt from {applied:,} events and swapped in")
    if waiting:
        print(f"{waiting:,} aggregates wait on a version gap; their logins fail closed")
