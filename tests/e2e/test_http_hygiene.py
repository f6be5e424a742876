"""What every service's HTTP answers tell a browser and a scanner: security headers on
every answer, no server banner, and an API docs page that loads nothing from elsewhere."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.dev_stack import RunningStack

pytestmark = pytest.mark.e2e

SERVICES = ("auth", "preferences", "contacts", "audit")
# What a scanner probes first: health, the API document, a miss, and a malformed request.
PROBES = (
    ("GET", "/healthz", None),
    ("GET", "/openapi.json", None),
    ("GET", "/no-such-page", None),
    ("POST", "/v1/portals/acme/login", b"{not json"),
)


@pytest.mark.parametrize("service", SERVICES)
def test_every_answer_carries_the_security_headers(stack: RunningStack, service: str) -> None:
    with httpx.Client(base_url=stack.url(service), timeout=10) as client:
        for method, path, body in PROBES:
            answer = client.request(method, path, content=body)
            where = f"{service} {method} {path} -> {answer.status_code}"
            assert answer.headers.get("x-content-type-options") == "nosniff", where
            assert answer.headers.get("referrer-policy") == "no-referrer", where
            assert "frame-ancestors 'none'" in answer.headers.get("content-security-policy", "")
            # Identity and secrets must not linger in a shared cache.
            assert "no-store" in answer.headers.get("cache-control", ""), where
            assert "server" not in answer.headers, (where, answer.headers.get("server"))


@pytest.mark.parametrize("service", SERVICES)
def test_the_docs_page_loads_only_its_own_files(stack: RunningStack, service: str) -> None:
    with httpx.Client(base_url=stack.url(service), timeout=10) as client:
        page = client.get("/docs")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        policy = page.headers["content-security-policy"]
        assert "default-src 'none'" in policy
        script_src = re.search(r"script-src ([^;]*)", policy)
        assert script_src is not None, policy
        # Scripts from this origin (and its one inline script, by hash), never from a CDN.
        sources = script_src.group(1).split()
        assert all(s == "'self'" or s.startswith("'sha256-") for s in sources), policy
        assert "unsafe-eval" not in policy and "http" not in policy

        linked = re.findall(r'(?:src|href)="([^"]+)"', page.text)
        assert linked, page.text
        for url in linked:
            assert url.startswith("/"), f"{service} docs page loads {url} from elsewhere"
            assert client.get(url).status_code == 200, url
        # The validator badge would send the API document to a third party.
        assert '"validatorUrl": null' in page.text
        # FastAPI's other CDN-backed pages are gone.
        assert client.get("/redoc").status_code == 404
