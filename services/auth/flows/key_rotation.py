"""Key rotation for TOTP secrets at rest: re-seal every one under the keyring's current key.

Once every secret is under the current key, older keys can leave the keyring. The work
goes in batches, one transaction each: an interrupted run keeps what it committed, and a
rerun finds those secrets current and moves on. Each batch locks only its own rows, and
only for as long as it takes to re-seal them, so logins keep working meanwhile.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import asyncpg

from services.auth.adapters import enrollments
from services.auth.domain.secret_box import SecretBox, SecretUnreadable

DEFAULT_BATCH_SIZE = 500


@dataclass
class Rotation:
    """How far a run has come; `failed` secrets could not be opened (unknown key or tampered)."""

    resealed: int = 0
    already_current: int = 0
    failed: list[uuid.UUID] = field(default_factory=list)

    @property
    def seen(self) -> int:
        return self.resealed + self.already_current + len(self.failed)

    def summary(self) -> dict[str, int]:
        return {
            "resealed": self.resealed,
            "already_current": self.already_current,
            "failed": len(self.failed),
        }


async def count_sealed(pool: asyncpg.Pool) -> int:
    async with pool.acquire() as conn:
        return await enrollments.count_sealed(conn)


async def reseal_all(
    pool: asyncpg.Pool,
    box: SecretBox,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    on_batch: Callable[[Rotation], None] = lambda _: None,
) -> Rotation:
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    rotation = Rotation()
    after: uuid.UUID | None = None
    while True:
        async with pool.acquire() as conn, conn.transaction():
            batch = await enrollments.lock_sealed_after(conn, after, batch_size)
            resealed: list[tuple[uuid.UUID, bytes]] = []
            for enrollment_id, blob in batch:
                try:
                    if box.is_current(blob):
                        rotation.already_current += 1
                        continue
                    # Bound to its enrollment as when it was first sealed.
                    resealed.append((enrollment_id, box.reseal(blob, enrollment_id.bytes)))
                except SecretUnreadable:
                    # Left as it is: the run goes on, and reports it.
                    rotation.failed.append(enrollment_id)
            await enrollments.replace_sealed_secrets(conn, resealed)
        rotation.resealed += len(resealed)
        if not batch:
            return rotation
        after = batch[-1][0]
        on_batch(rotation)
