"""Run one frontend with uvicorn on its port (`python -m frontends.portal_web`, ...).

Logged like the services (shared.observability): one JSON line per event outside `dev`,
each naming the frontend and the request id; spans exported where configured.
"""

from __future__ import annotations

import uvicorn
from fastapi import FastAPI

from shared.observability.logs import configure_logging, default_format
from shared.observability.tracing import configure_tracing
from shared.settings import Settings


def run(app: FastAPI, settings: Settings, port: int) -> None:
    uvicorn.run(
        app,
        host=settings.host,
        port=port,
        log_level="warning",
        loop="uvloop",
        http="h11",
        # One access-log line per request comes from shared.observability.http.
        access_log=False,
        # No `server: uvicorn` banner, as the services.
        server_header=False,
        # uvicorn's own lines go through the process's log format (configure first).
        log_config=None,
        # The TCP peer stays the peer: the portal passes X-Forwarded-For on to auth with the
        # peer appended, and auth alone decides which proxies to believe. (The cookies are
        # Secure by profile, not by the scheme a proxy reports.)
        proxy_headers=False,
    )


def configure(settings: Settings, name: str) -> None:
    """The process's logs and traces, before the app is made (it may log)."""
    configure_logging(
        name, default_format(settings.profile, settings.log_format), settings.log_level
    )
    configure_tracing(name, settings.trace_dir)
