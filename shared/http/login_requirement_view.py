"""The login decision as auth's lookup and audit's `explain` answer it, for their OpenAPI
documents (the fields of `LoginRequirement.as_dict`)."""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import BaseModel


class HeldVersions(BaseModel):
    policy: list[int]
    contact: list[int]


class LoginRequirementView(BaseModel):
    requirement: Literal["password", "totp", "enroll"]
    known: bool
    policy_enabled: bool
    enrolled: bool
    mfa_epoch: int
    decided_by: list[uuid.UUID]
    complete: bool
    held_versions: HeldVersions
