"""The MFA challenge under load (`POST /v1/mfa/challenge`, DESIGN.md §9), beside a bare
ASGI endpoint answering the same requests from the same client.

Each request is a fresh challenge token with the current code of its own contact's
enrollment: the replay guard is on and never trips, because no contact's code is sent
twice (one code per contact per time step). Tokens, enrollments and projected contacts
are COPYed into the stack's auth database beforehand (`bench.auth_fixtures`): issuing
them through the password step would cost an argon2id hash each.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bench import auth_fixtures
from bench.auth_fixtures import AuthProcess
from services.auth.domain import totp

PATH = "/v1/mfa/challenge"
TARGET_RPS = 1500
TARGET_P99_MS = 50.0
TARGET_RATIO = 0.40


@dataclass
class ChallengeLoad:
    name: str
    requests: int
    seconds: float
    latencies: list[float]
    errors: int
    cpu: dict[str, float]
    exhausted: bool  # ran out of prepared challenges before the window ended
    first_error: bytes = b""

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


async def prepare(process: AuthProcess, org_id: str, count: int) -> list[bytes]:
    """`count` request bodies, each a live challenge token and its contact's current code."""
    import asyncpg  # the benchmark's process only; kept local so importing this is cheap

    conn = await asyncpg.connect(process.database_url)
    try:
        async with conn.transaction():
            await auth_fixtures.project_org(conn, org_id, mfa=True)
            ids = auth_fixtures.contact_ids(org_id, count)
            await auth_fixtures.project_contacts(conn, org_id, ids)
            enrolled = await auth_fixtures.enroll(conn, process.secret_box, org_id, ids)
            tokens = await auth_fixtures.challenge_tokens(
                conn, org_id, enrolled, timedelta(minutes=5)
            )
    finally:
        await conn.close()
    now = datetime.now(UTC)
    return [
        json.dumps({"challenge_token": t, "otp": totp.code_at(e.secret, now)}).encode()
        for t, e in zip(tokens, enrolled, strict=True)
    ]


async def challenge_load(
    name: str,
    port: int,
    bodies: Sequence[bytes],
    *,
    concurrency: int,
    warmup_s: float,
    duration_s: float,
    cpu_of: Callable[[], dict[str, list[int]]],
    cpu_seconds: Callable[[Sequence[int]], float],
    reuse: bool = False,
) -> ChallengeLoad:
    """`concurrency` keep-alive clients POSTing the bodies, each body once (or round and
    round with `reuse`, for a baseline that consumes nothing)."""
    from bench.portal_http import RawConnection

    conns = [RawConnection(port) for _ in range(concurrency)]
    queue = itertools.cycle(bodies) if reuse else iter(bodies)
    first_error = [b""]
    window = [float("inf"), float("inf")]
    latencies: list[float] = []
    counts = [0, 0]
    last_done = [0.0]

    async def worker(conn: RawConnection) -> None:
        for body in queue:
            started = time.perf_counter()
            if started >= window[1]:
                return
            status, answer = await conn.request("POST", PATH, body)
            done = time.perf_counter()
            if window[0] <= started and done <= window[1]:
                counts[0] += 1
                latencies.append(done - started)
                last_done[0] = done
                if status != 200:
                    counts[1] += 1
                    first_error[0] = first_error[0] or f"{status} ".encode() + answer[:300]

    try:
        tasks = [asyncio.create_task(worker(c)) for c in conns]
        await asyncio.sleep(warmup_s)
        groups = {**cpu_of(), "client (this process)": [os.getpid()]}
        before = {g: cpu_seconds(p) for g, p in groups.items()}
        window[0] = time.perf_counter()
        window[1] = window[0] + duration_s
        finished = asyncio.gather(*tasks)
        await asyncio.wait([finished], timeout=duration_s)
        cpu = {g: cpu_seconds(p) - before[g] for g, p in groups.items()}
        await asyncio.wait_for(finished, timeout=60)
    finally:
        for c in conns:
            await c.close()
    exhausted = last_done[0] < window[1] - 0.05 and counts[0] > 0
    seconds = (last_done[0] - window[0]) if exhausted else duration_s
    return ChallengeLoad(
        name, counts[0], seconds, latencies, counts[1], cpu, exhausted, first_error[0]
    )
