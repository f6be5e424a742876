"""Run one HTTP process with uvicorn on its port: a service (`portal-mfa serve auth`) or a
frontend (`python -m frontends.portal_web`).

Logged alike (shared.observability): one JSON line per event outside `dev`, each naming the
process and the request id; spans exported where configured.
"""

from __future__ import annotations

import uvicorn
from fastapi import FastAPI

from shared.http.heap import collect_less_often, freeze_after_start_up
from shared.observability.logs import configure_logging, default_format
from shared.observability.tracing import configure_tracing
from shared.settings import Settings


def run(app: FastAPI, settings: Settings, port: int) -> None:
    # The cyclic collector's pauses are the event loop's: fewer young collections, and the
    # start-up heap frozen out of every later one (shared.http.heap says why).
    collect_less_often()
    freeze_after_start_up(app)
    uvicorn.run(
        app,
        host=settings.host,
        port=port,
        log_level="warning",
        loop="uvloop",
        # h11, not httptools: httptools answers a malformed header with a bare-text 400
        # before the app can, and every error of a service is application/problem+json.
        http="h11",
        # One access-log line per request comes from shared.observability.http.
        access_log=False,
        # No `server: uvicorn` banner: it tells a scanner which exploits to try.
        server_header=False,
        # uvicorn's own lines go through the process's log format (configure first).
        log_config=None,
        # Never uvicorn's own X-Forwarded-For handling (it believes loopback by default):
        # the TCP peer stays the peer. The portal passes X-Forwarded-For on to auth with the
        # peer appended, and auth reads the header itself, from PORTAL_MFA_TRUSTED_PROXIES
        # only. (The portal's cookies are Secure by profile, not by a proxy's scheme.)
        proxy_headers=False,
    )


def configure(settings: Settings, name: str) -> None:
    """The process's logs and traces, before the app is made (it may log)."""
    configure_logging(
        name,
        default_format(settings.profile, settings.log_format),
        settings.log_level,
        per_loop_turn=True,  # one write per event-loop turn, not one per access line
    )
    configure_tracing(name, settings.trace_dir)
