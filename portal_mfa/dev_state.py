"""Where a running `portal-mfa dev` left its addresses, for CLI commands that need them.

The embedded PostgreSQL listens on a fresh socket at every start, so `projection rebuild`
(which works on auth's database) looks here when `PORTAL_MFA_DATABASE_URL` is not set; it
finds the stack's trust map (public keys only) here too.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path


def state_file(kafka_bootstrap: str) -> Path:
    """One file per running stack, named by its broker address (what the CLI is given)."""
    name = kafka_bootstrap.replace(":", "_").replace(",", "+")
    return Path(tempfile.gettempdir()) / f"portal-mfa-{os.getuid()}" / f"dev-{name}.json"


def write(database_url: str, kafka_bootstrap: str, trusted_signers: str = "") -> None:
    path = state_file(kafka_bootstrap)
    path.parent.mkdir(mode=0o700, exist_ok=True)
    path.write_text(
        json.dumps(
            {
                "database_url": database_url,
                "kafka_bootstrap": kafka_bootstrap,
                "trusted_signers": trusted_signers,
            }
        )
    )


def read(kafka_bootstrap: str) -> dict[str, str] | None:
    try:
        state: dict[str, str] = json.loads(state_file(kafka_bootstrap).read_text())
        return state
    except (OSError, ValueError):
        return None


def remove(kafka_bootstrap: str) -> None:
    state_file(kafka_bootstrap).unlink(missing_ok=True)
