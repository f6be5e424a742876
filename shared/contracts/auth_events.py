"""portal.auth.events: what auth publishes (aggregate portal_account, key contact_id)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import Field

from shared.contracts.envelope import Empty, EventEnvelope, Payload
from shared.contracts.topics import AUTH_EVENTS


class _AuthEvent(EventEnvelope):
    topic = AUTH_EVENTS
    aggregate_kind = "portal_account"


class PortalPasswordSet(_AuthEvent):
    event_type: Literal["PortalPasswordSet"] = "PortalPasswordSet"
    payload: Empty


class EnrollmentRef(Payload):
    enrollment_id: uuid.UUID


class MfaEnrollmentStarted(_AuthEvent):
    event_type: Literal["MfaEnrollmentStarted"] = "MfaEnrollmentStarted"
    payload: EnrollmentRef


class MfaEnrolledPayload(Payload):
    enrollment_id: uuid.UUID
    mfa_epoch: int = Field(ge=0)
    method: Literal["totp"] = "totp"


class MfaEnrolled(_AuthEvent):
    event_type: Literal["MfaEnrolled"] = "MfaEnrolled"
    payload: MfaEnrolledPayload


class MfaEnrollmentInvalidatedPayload(Payload):
    enrollment_id: uuid.UUID
    # The contact's epoch that ended it: a reset's new epoch (>= 1), or, when revoked
    # access or a deleted contact ended it, the epoch then in force (0 before any reset).
    # The event named by `causation_id` says which.
    by_epoch: int = Field(ge=0)


class MfaEnrollmentInvalidated(_AuthEvent):
    event_type: Literal["MfaEnrollmentInvalidated"] = "MfaEnrollmentInvalidated"
    payload: MfaEnrollmentInvalidatedPayload


class BackupCodesIssuedPayload(Payload):
    count: int = Field(ge=0)


class BackupCodesIssued(_AuthEvent):
    event_type: Literal["BackupCodesIssued"] = "BackupCodesIssued"
    payload: BackupCodesIssuedPayload


class BackupCodeUsedPayload(Payload):
    remaining: int = Field(ge=0)


class BackupCodeUsed(_AuthEvent):
    event_type: Literal["BackupCodeUsed"] = "BackupCodeUsed"
    payload: BackupCodeUsedPayload


class LoginSucceededPayload(Payload):
    factors: list[Literal["password", "totp", "backup_code"]]


class LoginSucceeded(_AuthEvent):
    event_type: Literal["LoginSucceeded"] = "LoginSucceeded"
    payload: LoginSucceededPayload


class LoginFailedPayload(Payload):
    reason: str


class LoginFailed(_AuthEvent):
    event_type: Literal["LoginFailed"] = "LoginFailed"
    payload: LoginFailedPayload


class OtpReplayRejected(_AuthEvent):
    event_type: Literal["OtpReplayRejected"] = "OtpReplayRejected"
    payload: Empty


class ContactLockedOutPayload(Payload):
    until: datetime


class ContactLockedOut(_AuthEvent):
    event_type: Literal["ContactLockedOut"] = "ContactLockedOut"
    payload: ContactLockedOutPayload


class MfaAuthenticatorDisabledPayload(Payload):
    failures: int = Field(ge=1)


class MfaAuthenticatorDisabled(_AuthEvent):
    """So many second-factor failures in a row that the authenticator is refused for good;
    only an admin's reset (and a new enrollment) lets the contact in again."""

    event_type: Literal["MfaAuthenticatorDisabled"] = "MfaAuthenticatorDisabled"
    payload: MfaAuthenticatorDisabledPayload
