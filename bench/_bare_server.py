"""The bare baselines for `bench.portal_http`: a constant JSON answer, served by uvicorn
with the settings `portal_mfa.serve` uses (same host, `log_level="warning"`,
`access_log=False`, same event loop and HTTP implementation as uvicorn picks there).

    python -m bench._bare_server PORT asgi      # a raw ASGI callable, nothing else
    python -m bench._bare_server PORT fastapi   # one FastAPI route, same path shape
"""

from __future__ import annotations

import sys
from typing import Any

import uvicorn
from fastapi import FastAPI

BODY = (
    b'{"requirement":"enroll","known":true,"policy_enabled":true,"enrolled":false,'
    b'"mfa_epoch":0,"decided_by":["00000000-0000-4000-8000-000000000000"]}'
)
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]


async def bare_asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})


def bare_fastapi() -> FastAPI:
    app = FastAPI()

    @app.get("/v1/orgs/{org_id}/contacts/{contact_id}/login-requirement")
    async def constant(org_id: str, contact_id: str) -> dict[str, object]:
        return {
            "requirement": "enroll",
            "known": True,
            "policy_enabled": True,
            "enrolled": False,
            "mfa_epoch": 0,
            "decided_by": ["00000000-0000-4000-8000-000000000000"],
        }

    return app


def main(argv: list[str]) -> None:
    port, kind = int(argv[0]), argv[1]
    app: Any = bare_asgi if kind == "asgi" else bare_fastapi()
    # The same server settings as portal_mfa/serve.py, so only the application differs.
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        loop="uvloop",
        # h11, not httptools: httptools answers a malformed header with a bare-text 400
        # before the app can, and every error here is application/problem+json.
        http="h11",
    )


if __name__ == "__main__":
    main(sys.argv[1:])
