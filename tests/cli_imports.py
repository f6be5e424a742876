"""What a `portal-mfa admin …` command must not import (tests/unit/cli and tests/e2e): the
services' stack, PyJWT (the CLI only mints, which shared.admin_identity does itself), the
tracing SDK while nothing exports spans, the email validator (only `contacts add`'s model
needs it), and rich's console (`--json` prints with `print`)."""

from __future__ import annotations

from collections.abc import Iterable

NOT_FOR_A_COMMAND = (
    "faststream",
    "asyncpg",
    "fastapi",
    "starlette",
    "opentelemetry.sdk",
    "jwt",
    "email_validator",
    "rich.console",
)


def heavy_modules(loaded: Iterable[str]) -> list[str]:
    """The loaded modules that are, or sit inside, one a command must not load."""
    return sorted(
        m for m in loaded if any(m == h or m.startswith(f"{h}.") for h in NOT_FOR_A_COMMAND)
    )
