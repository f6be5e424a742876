"""The frontends as an operator and a locked-out person see them, against a stand-in auth
served over real HTTP on a loopback port: the page says when to try again from auth's
`Retry-After`, the request id travels from the page to auth, and the frontends' log lines,
histogram and /metrics are the services' (shared.observability), while their own headers
(the pages' CSP, Referrer-Policy same-origin) stay theirs."""

from __future__ import annotations

import io
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient

from frontends.admin_web.app import create_app as create_console
from frontends.common.web import CSP
from frontends.portal_web.app import create_app as create_portal
from portal_mfa.dev_process import free_port
from shared.observability.logs import configure_logging
from shared.settings import Settings
from tests.unit.test_web_frontends import KEY, csrf_of

PROBLEMS = "https://portal-mfa.dev/problems/"


class StandInAuth:
    """auth's answers for one login and one locked MFA step; remembers what it was sent."""

    def __init__(self, retry_after: str | None) -> None:
        self.request_ids: list[str | None] = []
        self.forwarded_for: list[str | None] = []
        app = FastAPI()

        @app.post("/v1/portals/{org_id}/login")
        async def login(request: Request, org_id: str) -> dict[str, str]:
            self.request_ids.append(request.headers.get("x-request-id"))
            self.forwarded_for.append(request.headers.get("x-forwarded-for"))
            return {"status": "mfa_required", "challenge_token": "challenge-1"}

        @app.post("/v1/mfa/challenge")
        async def challenge(request: Request) -> JSONResponse:
            self.request_ids.append(request.headers.get("x-request-id"))
            headers = {"Retry-After": retry_after} if retry_after is not None else {}
            return JSONResponse(
                {
                    "type": PROBLEMS + "locked-out",
                    "title": "Too many failed attempts",
                    "status": 429,
                },
                status_code=429,
                headers=headers,
                media_type="application/problem+json",
            )

        self.port = free_port()
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_config=None, lifespan="off")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> StandInAuth:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "the stand-in auth did not start"
            time.sleep(0.01)
        return self

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    before = (list(root.handlers), root.level)
    configure_logging("portal-web", "json")
    buffer = io.StringIO()
    handler = root.handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(buffer)
    try:
        yield buffer
    finally:
        root.handlers[:] = before[0]
        root.setLevel(before[1])


def locked_page(auth: StandInAuth, forwarded_for: str = "") -> tuple[Any, str]:
    settings = Settings(  # type: ignore[call-arg]
        profile="dev", auth_url=f"http://127.0.0.1:{auth.port}", web_cookie_key=KEY
    )
    with TestClient(create_portal(settings), base_url="http://portal.test") as client:
        csrf = csrf_of(client.get("/portals/acme/login").text)
        signed = client.post(
            "/portals/acme/login",
            data={"email": "a@example.com", "password": "pw", "csrf": csrf},
            headers={"X-Forwarded-For": forwarded_for} if forwarded_for else {},
        )
        assert signed.url.path == "/portals/acme/challenge", signed.text
        sent = str(uuid.uuid4())
        answer = client.post(
            "/portals/acme/challenge",
            data={"otp": "000000", "csrf": csrf_of(signed.text)},
            headers={"X-Request-ID": sent},
        )
    return answer, sent


def alert(html: str) -> str:
    found = re.search(r'role="alert"[^>]*>(.*?)</', html, re.DOTALL)
    assert found, html
    return " ".join(found.group(1).split())


def test_a_locked_step_says_when_to_try_again_from_auths_retry_after() -> None:
    with StandInAuth(retry_after="900") as auth:
        answer, _ = locked_page(auth)
    assert answer.status_code == 429
    assert "Try again in about 15 minutes (after" in alert(answer.text)


@pytest.mark.parametrize("retry_after", [None, "soon", "-5", "Wed, 21 Oct 2026 07:28:00 GMT"])
def test_without_a_usable_retry_after_the_page_promises_no_time(retry_after: str | None) -> None:
    with StandInAuth(retry_after=retry_after) as auth:
        answer, _ = locked_page(auth)
    assert answer.status_code == 429
    said = alert(answer.text)
    assert "Try again later." in said and "minute" not in said


def test_the_pages_request_id_reaches_auth_and_every_line_names_it(
    log_lines: io.StringIO,
) -> None:
    with StandInAuth(retry_after="60") as auth:
        answer, sent = locked_page(auth)
    assert answer.headers["x-request-id"] == sent
    # auth's own lines for that call name the same request.
    assert auth.request_ids[-1] == sent
    assert auth.request_ids[0] is not None and auth.request_ids[0] != sent
    logged = [json.loads(line) for line in log_lines.getvalue().splitlines()]
    access = [line for line in logged if line["logger"] == "portal_mfa.access"]
    (challenge,) = [line for line in access if line["request_id"] == sent]
    assert challenge["service"] == "portal-web"
    assert challenge["http_route"] == "/portals/{org_id}/challenge"
    assert challenge["http_status"] == 429 and challenge["org_id"] == "acme"
    # No form value (the code typed, the password) is in any line.
    assert "000000" not in log_lines.getvalue() and '"pw"' not in log_lines.getvalue()


@pytest.mark.parametrize("frontend", ["portal", "console"])
def test_metrics_probes_and_the_pages_own_headers(frontend: str) -> None:
    settings = Settings(profile="dev", auth_url="http://127.0.0.1:9", web_cookie_key=KEY)  # type: ignore[call-arg,arg-type]
    create = create_portal if frontend == "portal" else create_console
    page = "/portals/acme/login" if frontend == "portal" else "/signin"
    with TestClient(create(settings), base_url="http://web.test") as client:
        shown = client.get(page)
        assert client.get("/healthz").json() == {"status": "ok"}
        assert client.get("/readyz").status_code == 200
        metrics = client.get("/metrics")
        # The services' hardening is not installed here: no API docs page on a frontend.
        assert client.get("/docs").status_code == 404
    assert shown.status_code == 200
    assert shown.headers["content-security-policy"] == CSP
    assert shown.headers["referrer-policy"] == "same-origin"
    assert shown.headers["content-security-policy"].count("default-src") == 1
    assert uuid.UUID(shown.headers["x-request-id"])
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    route = page if frontend == "console" else "/portals/{org_id}/login"
    assert (
        f'portal_mfa_http_request_duration_seconds_count{{handler="{route}",method="GET",'
        'status="200"} 1.0' in metrics.text
    )


def test_auth_sees_the_browsers_address_chain_for_its_per_address_limits() -> None:
    # Behind the portal every person would otherwise be one address (the portal's) to
    # auth's login limits: one attacker could spend everyone's budget.
    with StandInAuth(retry_after="60") as auth:
        locked_page(auth)
        locked_page(auth, forwarded_for="203.0.113.9, 10.1.2.3")
        locked_page(auth, forwarded_for=", ".join(f"198.51.100.{i}" for i in range(40)))
    peer = "testclient"  # the TestClient's peer, as uvicorn would give the TCP peer
    assert auth.forwarded_for[0] == peer
    # What the ingress said, with the portal's own peer appended: auth walks it from the
    # right as far as its trusted proxies go.
    assert auth.forwarded_for[1] == f"203.0.113.9, 10.1.2.3, {peer}"
    hops = (auth.forwarded_for[2] or "").split(", ")
    assert len(hops) == 16 and hops[-1] == peer and hops[-2] == "198.51.100.39"


def test_an_unexpected_failure_is_a_500_with_the_pages_headers_and_no_message(
    log_lines: io.StringIO,
) -> None:
    settings = Settings(profile="dev", auth_url="http://127.0.0.1:9", web_cookie_key=KEY)  # type: ignore[call-arg,arg-type]
    app = create_portal(settings)

    @app.get("/portals/{org_id}/boom")
    async def boom(org_id: str, secret: str) -> None:
        # A bug that quotes what it was given.
        raise ValueError(f"password={secret}")

    with TestClient(app, base_url="http://web.test", raise_server_exceptions=False) as client:
        answer = client.get("/portals/acme/boom?secret=hunter2")
    assert answer.status_code == 500
    assert answer.headers["content-security-policy"] == CSP
    assert answer.headers["x-frame-options"] == "DENY"
    assert answer.headers["cache-control"] == "no-store"
    assert "hunter2" not in answer.text and "hunter2" not in log_lines.getvalue()
    logged = [json.loads(line) for line in log_lines.getvalue().splitlines()]
    assert [line for line in logged if line["message"] == "unhandled ValueError"]
