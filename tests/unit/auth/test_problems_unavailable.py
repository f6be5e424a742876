"""Fail closed, said clearly: a request that meets a database outage gets 503
problem+json with Retry-After; a bug still gets 500."""

from __future__ import annotations

import asyncpg
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from services.auth.domain.errors import NotReady
from services.auth.entrypoints.http.problems import install_problem_handlers

OUTAGES = {
    "connection-lost": asyncpg.ConnectionDoesNotExistError("connection was closed"),
    "refused": ConnectionRefusedError(),
    "socket-gone": FileNotFoundError(),
    "pool-timeout": TimeoutError(),
    "shutting-down": asyncpg.exceptions.AdminShutdownError(),
    "cannot-connect-now": asyncpg.exceptions.CannotConnectNowError(),
    "statement-timeout": asyncpg.QueryCanceledError(),
    "too-many-connections": asyncpg.exceptions.TooManyConnectionsError(),
    "connection-closed": asyncpg.InterfaceError("connection is closed"),
}


def client_raising(exc: BaseException) -> TestClient:
    app = FastAPI()
    install_problem_handlers(app)

    @app.get("/boom")
    async def boom() -> None:
        raise exc

    return TestClient(app, raise_server_exceptions=False)


@pytest.mark.parametrize("name", OUTAGES)
def test_a_database_outage_answers_503_with_retry_after(name: str) -> None:
    answer = client_raising(OUTAGES[name]).get("/boom")
    assert answer.status_code == 503
    assert answer.headers["content-type"] == "application/problem+json"
    assert int(answer.headers["retry-after"]) > 0
    assert answer.json()["type"].endswith("/unavailable")


def test_not_ready_answers_503_with_retry_after() -> None:
    answer = client_raising(NotReady()).get("/boom")
    assert answer.status_code == 503
    assert int(answer.headers["retry-after"]) > 0


@pytest.mark.parametrize(
    "exc", [asyncpg.UniqueViolationError(), asyncpg.exceptions.UndefinedTableError(), KeyError("x")]
)
def test_a_fault_that_will_not_pass_by_itself_is_still_500(exc: BaseException) -> None:
    answer = client_raising(exc).get("/boom")
    assert answer.status_code == 500
    assert "retry-after" not in answer.headers
