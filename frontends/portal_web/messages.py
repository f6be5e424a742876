"""What a refusal from auth means to the person at the portal, in their words."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from frontends.portal_web.auth_api import Refused

EXPIRED = (
    "This sign-in step has expired (it lasts 10 minutes) or was already completed. "
    "Sign in again to continue."
)
UNREACHABLE = "The portal cannot reach its sign-in service right now. Try again in a moment."
CATCHING_UP = "The portal is catching up. Try again in a few seconds."
EXPIRED_KINDS = {"invalid-enrollment-token", "invalid-challenge-token", "already-enrolled"}


def when_to_retry(retry_after_s: int | None, now: datetime | None = None) -> str:
    if retry_after_s is None:
        return "Try again later."
    at = (now or datetime.now(UTC)) + timedelta(seconds=retry_after_s)
    minutes = max(1, round(retry_after_s / 60))
    unit = "minute" if minutes == 1 else "minutes"
    return f"Try again in about {minutes} {unit} (after {at:%H:%M} UTC)."


def explain(refused: Refused, *, step: str) -> str:
    """One sentence for the page; `step` is login, verify, challenge or backup."""
    if refused.status == 429:
        what = "sign-ins" if step == "login" else "codes"
        return (
            f"Too many failed {what}: this account's sign-in is locked for now. "
            + when_to_retry(refused.retry_after_s)
        )
    if refused.status == 503:
        return CATCHING_UP
    if refused.kind in EXPIRED_KINDS:
        return EXPIRED
    if refused.kind == "invalid-credentials":
        return "Email or password is wrong."
    if refused.kind == "wrong-code" and step == "backup":
        return "That backup code is wrong or was already used."
    if refused.kind == "wrong-code" and step == "challenge":
        return "That code is wrong or was already used. Enter the current code from your app."
    if refused.kind == "wrong-code":
        return "That code is not right. Enter the current 6-digit code from your app."
    if refused.kind == "invalid-input":
        return (
            "Enter the code as your app shows it (6 digits)."
            if step != "login"
            else ("Enter your email and password.")
        )
    if refused.kind == "invalid-invitation":
        return "This invitation is unknown, already used or expired. Ask for a new one."
    return refused.title
