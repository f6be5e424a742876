"""A frontend's answers: its pages, rendered from its templates, and its redirects. Each
carries the visitor's session back in its sealed cookie (a step taken, a notice shown)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from fastapi import Request, Response
from fastapi.responses import RedirectResponse
from fastapi.templating import Jinja2Templates

Session = TypeVar("Session")


@dataclass(frozen=True)
class Pages(Generic[Session]):
    templates: Jinja2Templates
    # What every page of the frontend shows of the session (it may take from the context).
    frame: Callable[[Session, dict[str, Any]], dict[str, Any]]
    # Seals the session into the answer's cookie.
    keep: Callable[[Response, Session], None]

    def page(
        self,
        request: Request,
        session: Session,
        template: str,
        *,
        status: int = 200,
        **context: Any,
    ) -> Response:
        shown = self.frame(session, context)
        response = self.templates.TemplateResponse(
            request, template, {**shown, **context}, status_code=status
        )
        self.keep(response, session)
        return response

    def go(self, session: Session, where: str) -> Response:
        response = RedirectResponse(where, status_code=303)
        self.keep(response, session)
        return response
