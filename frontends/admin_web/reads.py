"""The console's reads: the owning services' admin HTTP reads, with a bearer assertion.

preferences (the policy), contacts (the org's contacts), auth (each contact's login
requirement) and audit (`explain` and the contact's events). Every read gets a fresh
assertion for the org, made by the signed-in admin's credentials.
"""

from __future__ import annotations

import asyncio
import urllib.parse
from dataclasses import dataclass
from typing import Any

import httpx

from portal_mfa.admin_credentials import AdminCredentials
from shared.observability.http import outgoing_headers
from shared.settings import Settings, audit_url, auth_url, contacts_url, preferences_url

PARALLEL_READS = 16


@dataclass
class ReadRefused(Exception):
    status: int
    title: str


class Unreachable(Exception):
    def __init__(self, service: str) -> None:
        super().__init__(f"the {service} service cannot be reached")
        self.service = service


def _q(value: str) -> str:
    return urllib.parse.quote(value, safe="")


class AdminReads:
    def __init__(self, settings: Settings, *, timeout_s: float = 10.0) -> None:
        self._bases = {
            "preferences": preferences_url(settings),
            "contacts": contacts_url(settings),
            "auth": auth_url(settings),
            "audit": audit_url(settings),
        }
        self._http = httpx.AsyncClient(timeout=timeout_s)

    async def close(self) -> None:
        await self._http.aclose()

    async def _get(
        self,
        service: str,
        path: str,
        credentials: AdminCredentials,
        org: str,
        params: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        # admin assertions read everything the console shows, audit's included.
        bearer = credentials.bearer(org, "admin")
        try:
            answer = await self._http.get(
                self._bases[service] + path,
                params=params,
                headers={**outgoing_headers(), "Authorization": f"Bearer {bearer}"},
            )
        except httpx.HTTPError:
            raise Unreachable(service) from None
        if answer.status_code >= 400:
            try:
                problem = answer.json()
            except ValueError:
                problem = {}
            detail = (
                problem.get("detail") or problem.get("title") if isinstance(problem, dict) else None
            )
            raise ReadRefused(answer.status_code, str(detail or answer.reason_phrase))
        found: dict[str, Any] = answer.json()
        return found

    async def policy(self, credentials: AdminCredentials, org: str) -> dict[str, Any]:
        return await self._get("preferences", f"/v1/orgs/{_q(org)}/mfa-policy", credentials, org)

    async def contacts(self, credentials: AdminCredentials, org: str) -> list[dict[str, Any]]:
        found = await self._get("contacts", f"/v1/orgs/{_q(org)}/contacts", credentials, org)
        rows: list[dict[str, Any]] = found["contacts"]
        return rows

    async def contact(
        self, credentials: AdminCredentials, org: str, contact_id: str
    ) -> dict[str, Any]:
        return await self._of_contact("contacts", "", credentials, org, contact_id)

    async def requirement(
        self, credentials: AdminCredentials, org: str, contact_id: str
    ) -> dict[str, Any]:
        return await self._of_contact("auth", "/login-requirement", credentials, org, contact_id)

    async def requirements(
        self, credentials: AdminCredentials, org: str, contact_ids: list[str]
    ) -> dict[str, dict[str, Any] | None]:
        """Each contact's login requirement; None where auth did not answer for it."""
        gate = asyncio.Semaphore(PARALLEL_READS)

        async def one(contact_id: str) -> dict[str, Any] | None:
            async with gate:
                try:
                    return await self.requirement(credentials, org, contact_id)
                except (ReadRefused, Unreachable):
                    return None

        found = await asyncio.gather(*(one(c) for c in contact_ids))
        return dict(zip(contact_ids, found, strict=True))

    async def explain(
        self, credentials: AdminCredentials, org: str, contact_id: str
    ) -> dict[str, Any]:
        return await self._of_contact("audit", "/explain", credentials, org, contact_id)

    async def _of_contact(
        self, service: str, what: str, credentials: AdminCredentials, org: str, contact_id: str
    ) -> dict[str, Any]:
        """`service`'s answer about one contact (`what` after its path)."""
        path = f"/v1/orgs/{_q(org)}/contacts/{_q(contact_id)}{what}"
        return await self._get(service, path, credentials, org)

    async def events(
        self, credentials: AdminCredentials, org: str, **filters: str
    ) -> list[dict[str, Any]]:
        """The org's audit log, filtered (contact=..., type=...), oldest first."""
        found = await self._get("audit", "/v1/events", credentials, org, {"org": org, **filters})
        events: list[dict[str, Any]] = found["events"]
        return events
