"""Run one frontend with uvicorn on its port (`python -m frontends.portal_web`, ...)."""

from __future__ import annotations

import logging

import uvicorn
from fastapi import FastAPI

from shared.settings import Settings


def run(app: FastAPI, settings: Settings, port: int, name: str) -> None:
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s [" + name + "] %(name)s: %(message)s",
    )
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    uvicorn.run(
        app,
        host=settings.host,
        port=port,
        log_level="warning",
        loop="uvloop",
        http="h11",
        access_log=False,
        # Behind a TLS-terminating proxy the Secure cookies need the forwarded scheme.
        proxy_headers=True,
    )
