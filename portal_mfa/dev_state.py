"""Where a running `portal-mfa dev` left its addresses and its admin issuer, for the CLI.

The embedded PostgreSQL listens on a fresh socket at every start, so `projection rebuild`
(which works on auth's database) looks here when `PORTAL_MFA_DATABASE_URL` is not set; it
finds the stack's trust map (public keys only) here too. The dev stack's admin issuer key
is here as well, so the CLI on the same machine mints admin assertions with no flags: the
file is this user's alone (0600 in a 0700 directory), and a directory or file anyone else
could have planted or read is not trusted.
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported when an issuer is made: the JWT library is slow to import
    from shared.admin_identity import AssertionIssuer


def state_file(kafka_bootstrap: str) -> Path:
    """One file per running stack, named by its broker address (what the CLI is given)."""
    name = kafka_bootstrap.replace(":", "_").replace(",", "+")
    return Path(tempfile.gettempdir()) / f"portal-mfa-{os.getuid()}" / f"dev-{name}.json"


def _private(path: Path) -> bool:
    """Owned by this user and not open to group or others."""
    info = path.stat()
    return info.st_uid == os.getuid() and not stat.S_IMODE(info.st_mode) & 0o077


def _state_dir() -> Path:
    return state_file("_").parent


def write(
    database_url: str,
    kafka_bootstrap: str,
    issuer: AssertionIssuer,
    trusted_signers: str = "",
    ports: Mapping[str, int] | None = None,
) -> None:
    path = state_file(kafka_bootstrap)
    path.parent.mkdir(mode=0o700, exist_ok=True)
    if not _private(path.parent):
        raise PermissionError(f"{path.parent} is not private to this user; remove it")
    state = {
        "database_url": database_url,
        "kafka_bootstrap": kafka_bootstrap,
        "trusted_signers": trusted_signers,
        # The services' HTTP ports, so the CLI reads from a stack on non-default ports.
        "ports": dict(ports or {}),
        "admin_issuer": issuer.issuer,
        "admin_key_id": issuer.key_id,
        "admin_private_key": issuer.private_text,
    }
    # Created 0600 (no window where it is readable by others); fchmod covers a file left
    # by an earlier run with other bits.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as file:
        os.fchmod(fd, 0o600)
        file.write(json.dumps(state))


def read(kafka_bootstrap: str) -> dict[str, Any] | None:
    path = state_file(kafka_bootstrap)
    try:
        if not (_private(path.parent) and _private(path)):
            return None
        state: dict[str, Any] = json.loads(path.read_text())
        return state
    except (OSError, ValueError):
        return None


def every_state() -> list[dict[str, Any]]:
    """The state of every dev stack this user started and did not stop (some may be dead)."""
    directory = _state_dir()
    try:
        if not _private(directory):
            return []
        names = sorted(directory.glob("dev-*.json"))
    except OSError:
        return []
    found = []
    for path in names:
        try:
            if _private(path):
                state = json.loads(path.read_text())
                if isinstance(state, dict):
                    found.append(state)
        except (OSError, ValueError):
            continue
    return found


def issuer(kafka_bootstrap: str) -> AssertionIssuer | None:
    """The running dev stack's admin issuer, if this user runs one on that broker."""
    from shared.admin_identity import AssertionIssuer

    state = read(kafka_bootstrap)
    if not state or "admin_private_key" not in state:
        return None
    try:
        return AssertionIssuer.from_private_text(
            state["admin_private_key"], key_id=state["admin_key_id"], issuer=state["admin_issuer"]
        )
    except (KeyError, ValueError):
        return None


def remove(kafka_bootstrap: str) -> None:
    state_file(kafka_bootstrap).unlink(missing_ok=True)
