"""What the current unit of work is (an HTTP request, a command): named in every log line.

Context variables, so concurrent requests on one event loop never see each other's ids.
The org of an HTTP request is read from its route's path parameters when a line is
logged: routing fills them in after the request id is set, on the same scope.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from typing import Any

_request_id: ContextVar[str | None] = ContextVar("portal_mfa_request_id", default=None)
_correlation_id: ContextVar[str | None] = ContextVar("portal_mfa_correlation_id", default=None)
_org_id: ContextVar[str | None] = ContextVar("portal_mfa_org_id", default=None)
_http_scope: ContextVar[Mapping[str, Any] | None] = ContextVar(
    "portal_mfa_http_scope", default=None
)


# The alphabet of an org id (shared.http.path_params): anything else is not named in a log
# line, whatever a path or an unadmitted command carried.
_ORG_ID = re.compile(r"[A-Za-z0-9._:@-]{1,100}")


def request_id() -> str | None:
    return _request_id.get()


def correlation_id() -> str | None:
    return _correlation_id.get()


def org_id() -> str | None:
    found = _org_id.get()
    if found is None:
        scope = _http_scope.get()
        found = (scope or {}).get("path_params", {}).get("org_id")
    return found if isinstance(found, str) and _ORG_ID.fullmatch(found) else None


@contextlib.contextmanager
def http_request(request: str, scope: Mapping[str, Any]) -> Iterator[None]:
    """While a request is handled: its id is the request id and the correlation id."""
    tokens = (_request_id.set(request), _correlation_id.set(request), _http_scope.set(scope))
    try:
        yield
    finally:
        _http_scope.reset(tokens[2])
        _correlation_id.reset(tokens[1])
        _request_id.reset(tokens[0])


@contextlib.contextmanager
def unit_of_work(*, correlation: str | None, org: str | None) -> Iterator[None]:
    """While a command (or any message) is handled: its correlation id and org."""
    tokens = (_correlation_id.set(correlation), _org_id.set(org))
    try:
        yield
    finally:
        _org_id.reset(tokens[1])
        _correlation_id.reset(tokens[0])
