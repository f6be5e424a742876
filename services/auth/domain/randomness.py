"""Where auth's unguessable values come from, as one argument `bootstrap()` takes.

Tokens, TOTP secrets, backup codes and enrollment ids are drawn here; a test that must
know them in advance passes its own source instead of patching a module.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass

from services.auth.domain.backup_codes import issue_backup_codes
from services.auth.domain.totp import new_secret
from shared.tokens import new_token


@dataclass(frozen=True)
class RandomSource:
    token: Callable[[], str] = new_token
    totp_secret: Callable[[], str] = new_secret
    backup_codes: Callable[[], list[str]] = issue_backup_codes
    enrollment_id: Callable[[], uuid.UUID] = uuid.uuid4


SYSTEM_RANDOM = RandomSource()
