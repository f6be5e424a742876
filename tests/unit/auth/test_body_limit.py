from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.testclient import TestClient

from services.auth.entrypoints.http.body_limit import BodyLimit


def app() -> FastAPI:
    api = FastAPI()
    api.add_middleware(BodyLimit, max_bytes=100)

    @api.post("/echo")
    async def echo(request: Request) -> dict[str, int]:
        return {"size": len(await request.body())}

    return api


def test_small_bodies_pass_and_large_ones_get_413_problem_json() -> None:
    client = TestClient(app())
    assert client.post("/echo", content=b"x" * 100).json() == {"size": 100}
    refused = client.post("/echo", content=b"x" * 101)
    assert refused.status_code == 413
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["type"].endswith("/body-too-large")


def test_a_streamed_body_without_length_is_cut_off_too() -> None:
    client = TestClient(app())
    refused = client.post("/echo", content=iter([b"x" * 60, b"x" * 60]))
    assert refused.status_code == 413
