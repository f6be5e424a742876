"""A flow's refusal: what the HTTP layer turns into problem+json (stable `kind`)."""

from __future__ import annotations


class Refusal(Exception):
    def __init__(self, status: int, kind: str, title: str) -> None:
        super().__init__(title)
        self.status = status
        self.kind = kind
        self.title = title


def invalid_credentials() -> Refusal:
    # One answer for an unknown email and a wrong password: logins reveal no accounts.
    return Refusal(401, "invalid-credentials", "Email or password is wrong")


def not_ready() -> Refusal:
    return Refusal(503, "not-ready", "The service is catching up; try again shortly")


def history_incomplete() -> Refusal:
    # Like not-ready, but for one contact: events of its stream wait for a missing version.
    return Refusal(
        503, "history-incomplete", "This account's data is incomplete; try again shortly"
    )


def locked_out() -> Refusal:
    return Refusal(429, "locked-out", "Too many failed attempts; try again later")


def invalid_token(what: str) -> Refusal:
    return Refusal(401, f"invalid-{what}-token", f"The {what} token is unknown, used or expired")
