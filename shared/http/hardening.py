"""HTTP hygiene every service shares: security headers on every answer, and the API docs
page (Swagger UI) served from this process's own files under a strict CSP, never a CDN."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable
from importlib.resources import files
from typing import Final

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

DOCS_PATH: Final = "/docs"
DOCS_ASSETS: Final = "/docs/assets"

# An answer is JSON or Prometheus text: it may run nothing, load nothing, and be framed
# by nobody. Answers that carry data of a person or a credential are never cached.
_API_POLICY: Final = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'"
_ALWAYS: Final = (
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("x-frame-options", "DENY"),
)
_DEFAULTS: Final = (
    ("content-security-policy", _API_POLICY),
    ("cache-control", "no-store"),
)
_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


def harden(app: FastAPI) -> None:
    """Install the headers and the local docs page on an app built with FastAPI defaults."""
    _serve_docs_locally(app)
    headers_on_every_answer(app, _api_headers)


def _api_headers(_: Scope, headers: MutableHeaders) -> None:
    for name, value in _ALWAYS:
        headers[name] = value
    for name, value in _DEFAULTS:
        headers.setdefault(name, value)


# Given the request's scope, sets the answer's headers.
HeaderRule = Callable[[Scope, MutableHeaders], None]


def headers_on_every_answer(app: FastAPI, rule: HeaderRule) -> None:
    """Every HTTP answer of `app` gets its headers from `rule`, even a 500: the middleware
    goes outermost, around Starlette's own error middleware (and any other)."""
    build = app.build_middleware_stack

    def build_with_headers() -> ASGIApp:
        return AnswerHeaders(build(), rule)

    app.build_middleware_stack = build_with_headers  # type: ignore[method-assign]


class AnswerHeaders:
    """Sets headers on every HTTP answer as its rule says (the rule may keep a route's own)."""

    def __init__(self, app: ASGIApp, rule: HeaderRule) -> None:
        self.app = app
        self.rule = rule

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.rule(scope, MutableHeaders(scope=message))
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _serve_docs_locally(app: FastAPI) -> None:
    # FastAPI's own pages load Swagger UI and ReDoc from a CDN: whoever serves those files
    # runs script on a page of ours. They are replaced by one page on local files.
    unwanted = {app.docs_url, app.redoc_url, app.swagger_ui_oauth2_redirect_url} - {None}
    app.router.routes[:] = [
        route for route in app.router.routes if getattr(route, "path", None) not in unwanted
    ]
    assets = files("fastapi_offline").joinpath("static")
    app.mount(DOCS_ASSETS, StaticFiles(directory=str(assets)), name="docs-assets")
    page = get_swagger_ui_html(
        openapi_url=app.openapi_url or "/openapi.json",
        title=f"{app.title} - API",
        swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
        swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
        swagger_favicon_url=f"{DOCS_ASSETS}/favicon.png",
        # No validator badge: it would send the document to a third party's server.
        swagger_ui_parameters={"validatorUrl": None},
    )
    html = bytes(page.body).decode("utf-8")
    policy = docs_policy(html)

    @app.get(DOCS_PATH, include_in_schema=False)
    async def docs() -> HTMLResponse:
        return HTMLResponse(html, headers={"content-security-policy": policy})


def docs_policy(html: str) -> str:
    """The docs page's CSP: scripts and styles from here only, plus its own inline script
    by hash; it may fetch only this origin's API (the document and "try it out")."""
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(s.encode()).digest()).decode() + "'"
        for s in _INLINE_SCRIPT.findall(html)
    )
    return (
        f"default-src 'none'; script-src 'self' {hashes}; "
        # Swagger UI sets style attributes as it renders; injected style cannot run script.
        "style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    )
