"""The flows' runtime, handed to each route by FastAPI."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from services.auth.flows.runtime import AuthRuntime


# async: FastAPI runs a plain `def` dependency on a worker thread, a hop per request on
# every route for what is an attribute read.
async def _runtime(request: Request) -> AuthRuntime:
    runtime: AuthRuntime = request.app.state.runtime
    return runtime


Runtime = Annotated[AuthRuntime, Depends(_runtime)]
