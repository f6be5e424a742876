"""auth's portal API (the routes of its OpenAPI document), as this frontend calls it.

Only HTTP: this package never imports the auth service. A refusal keeps auth's stable
problem `type` (its last path segment), its title, and `Retry-After` when auth gives one.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import httpx
from starlette.types import Scope

from shared.observability.http import outgoing_headers

PROBLEM_BASE = "https://portal-mfa.dev/problems/"


@dataclass
class Refused(Exception):
    status: int
    kind: str
    title: str
    retry_after_s: int | None = None


# The browser's address as auth's login limits need it: this frontend is a proxy in front
# of auth, so it passes on the X-Forwarded-For it was given with its own peer appended.
# auth believes the chain only as far as its PORTAL_MFA_TRUSTED_PROXIES (which must then
# name this frontend's addresses, and the ingress's); otherwise every person at the portal
# would share this frontend's one per-address limit.
_forwarded_for: ContextVar[str | None] = ContextVar("portal_web_forwarded_for", default=None)
# auth walks the chain from the right: more hops than this are no proxy path of ours.
MAX_HOPS = 16


@contextlib.contextmanager
def forwarding(scope: Scope) -> Iterator[None]:
    """While a page request is handled: the chain its calls to auth carry."""
    given = [
        hop.strip()
        for name, value in scope.get("headers", [])
        if name == b"x-forwarded-for"
        for hop in value.decode("latin-1").split(",")
        if hop.strip()
    ]
    peer = (scope.get("client") or ("",))[0]
    hops = [*given, peer] if peer else given
    token = _forwarded_for.set(", ".join(hops[-MAX_HOPS:]) or None)
    try:
        yield
    finally:
        _forwarded_for.reset(token)


class Unreachable(Exception):
    """auth did not answer (down, restarting): the page says so, nothing is assumed."""


class AuthApi:
    def __init__(self, base_url: str, *, timeout_s: float = 10.0) -> None:
        self._http = httpx.AsyncClient(base_url=base_url, timeout=timeout_s)

    async def close(self) -> None:
        await self._http.aclose()

    async def _call(
        self, method: str, path: str, body: dict[str, Any] | None = None, bearer: str = ""
    ) -> dict[str, Any]:
        # The page's request id and trace go with it: auth's lines name the same request.
        headers = outgoing_headers()
        chain = _forwarded_for.get()
        if chain:
            headers["X-Forwarded-For"] = chain
        if bearer:
            headers["Authorization"] = f"Bearer {bearer}"
        try:
            answer = await self._http.request(method, path, json=body, headers=headers)
        except httpx.HTTPError as exc:
            raise Unreachable(type(exc).__name__) from None
        if answer.status_code >= 400:
            raise _refusal(answer)
        if answer.status_code == 204 or not answer.content:
            return {}
        found: dict[str, Any] = answer.json()
        return found

    async def accept_invitation(self, org_id: str, token: str, password: str) -> None:
        await self._call(
            "POST",
            f"/v1/portals/{org_id}/invitations/accept",
            {"token": token, "password": password},
        )

    async def login(self, org_id: str, email: str, password: str) -> dict[str, Any]:
        return await self._call(
            "POST", f"/v1/portals/{org_id}/login", {"email": email, "password": password}
        )

    async def start_enrollment(self, enrollment_token: str) -> dict[str, Any]:
        return await self._call(
            "POST", "/v1/mfa/enrollment/start", {"enrollment_token": enrollment_token}
        )

    async def verify_enrollment(self, enrollment_token: str, otp: str) -> list[str]:
        answer = await self._call(
            "POST", "/v1/mfa/enrollment/verify", {"enrollment_token": enrollment_token, "otp": otp}
        )
        codes: list[str] = answer["backup_codes"]
        return codes

    async def enable_enrollment(self, enrollment_token: str) -> dict[str, Any]:
        return await self._call(
            "POST", "/v1/mfa/enrollment/enable", {"enrollment_token": enrollment_token}
        )

    async def challenge(self, challenge_token: str, **factor: str) -> dict[str, Any]:
        return await self._call(
            "POST", "/v1/mfa/challenge", {"challenge_token": challenge_token, **factor}
        )

    async def session(self, session_token: str) -> dict[str, Any]:
        return await self._call("GET", "/v1/session", bearer=session_token)

    async def logout(self, session_token: str) -> None:
        await self._call("POST", "/v1/logout", bearer=session_token)


def _refusal(answer: httpx.Response) -> Refused:
    try:
        problem = answer.json()
    except ValueError:
        problem = {}
    if not isinstance(problem, dict):
        problem = {}
    kind = str(problem.get("type", ""))
    kind = kind.removeprefix(PROBLEM_BASE) if kind.startswith(PROBLEM_BASE) else ""
    if answer.status_code == 422 and not kind:
        kind = "invalid-input"
    retry = answer.headers.get("retry-after", "")
    return Refused(
        answer.status_code,
        kind or str(answer.status_code),
        str(problem.get("title") or answer.reason_phrase),
        int(retry) if retry.isdigit() else None,
    )
