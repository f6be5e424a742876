"""The frame every page of both frontends shares: security headers, CSRF, templates.

Pages are rendered on the server; the little JavaScript there is (copy and download of
backup codes, the settings preview) is a local static file, so the Content-Security-Policy
forbids every inline script and style, and every other origin.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.datastructures import MutableHeaders
from starlette.types import Scope

from shared.http.hardening import headers_on_every_answer

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    # Invitation links carry a token in their query: no page passes its URL to another site.
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
}
NO_STORE = "no-store"
COMMON = Path(__file__).parent


def templates_for(folder: Path) -> Jinja2Templates:
    """The frontend's own templates, then the shared base page (autoescaped HTML)."""
    templates = Jinja2Templates(directory=[str(folder / "templates"), str(COMMON / "templates")])
    templates.env.filters["when"] = when
    return templates


def when(value: object) -> str:
    """An RFC 3339 time as people read it: `2026-11-28 06:16:19 UTC`."""
    text = str(value or "")
    if len(text) < 19 or text[10] != "T":
        return text
    return f"{text[:10]} {text[11:19]} UTC"


class Answered(Exception):
    """A page's precondition has decided the answer already (sign in first, a form that
    expired, a command refused): raised by the helper that found it, answered as it is."""

    def __init__(self, response: Response) -> None:
        super().__init__()
        self.response = response


async def _answer(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, Answered)
    return exc.response


def frontend_app(title: str, folder: Path, *, on_stop: Callable[[], Awaitable[None]]) -> FastAPI:
    """A frontend's app in its frame: pages only (no API docs), its own static files and the
    shared ones; `on_stop` closes its clients of the services at shutdown."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await on_stop()

    app = FastAPI(title=title, docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    install_frame(app, folder)
    return app


def install_frame(app: FastAPI, folder: Path) -> None:
    app.add_exception_handler(Answered, _answer)
    if (folder / "static").is_dir():
        app.mount("/static", StaticFiles(directory=folder / "static"), name="static")
    app.mount("/common", StaticFiles(directory=COMMON / "static"), name="common")

    # Outermost, around observe()'s middleware too, so every answer carries the headers:
    # a 500 that the request observation writes for an unexpected exception included.
    headers_on_every_answer(app, _page_headers)

    @app.get("/healthz", include_in_schema=False)
    async def _healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def _readyz() -> dict[str, str]:
        # Stateless: ready once it answers. The services behind it say their own state,
        # and a page shows it when one of them is not ready.
        return {"status": "ready"}


def _page_headers(scope: Scope, headers: MutableHeaders) -> None:
    """The pages' headers; a header a route set itself is kept."""
    for name, value in SECURITY_HEADERS.items():
        headers.setdefault(name, value)
    if not str(scope.get("path", "")).startswith(("/static/", "/common/")):
        # Pages show who is signed in, codes, keys: no page is kept by any cache.
        headers["Cache-Control"] = NO_STORE


def new_csrf() -> str:
    return secrets.token_urlsafe(24)


def csrf_ok(request: Request, expected: str | None, given: str | None) -> bool:
    """The form's token matches the session's, and the request comes from this origin.

    The cookie is SameSite too; the token and the Origin check hold even where a
    browser does not honour SameSite.
    """
    if not expected or not given or not hmac.compare_digest(expected, given):
        return False
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        return site in ("same-origin", "none")
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        # An older browser, or a client that is no browser: the token decides.
        return True
    return origin.split("://", 1)[-1] == request.headers.get("host", "")
