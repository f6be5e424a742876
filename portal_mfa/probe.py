"""`python -m portal_mfa.probe [/healthz|/readyz]`: the container health check.

One image runs every service, each on its own port (PORTAL_MFA_<SERVICE>_PORT), and a
container runs one of them: the probe asks each service's port on this host and passes
when the one that answers says 200. It needs no curl in the image and no settings but the
ports. Exit 0 healthy, 1 not.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request

from shared.settings import Settings

# The web frontends answer /healthz and /readyz too, on theirs.
SERVICES = ("auth", "preferences", "contacts", "audit", "portal_web", "console_web")


def port_of(service: str) -> int:
    given = os.environ.get(f"PORTAL_MFA_{service.upper()}_PORT")
    default: int = Settings.model_fields[f"{service}_port"].default
    return int(given) if given and given.isdigit() else default


def probe(path: str = "/healthz", timeout_s: float = 2.0) -> bool:
    for service in SERVICES:
        url = f"http://127.0.0.1:{port_of(service)}{path}"
        try:
            with urllib.request.urlopen(url, timeout=timeout_s) as answer:
                return bool(answer.status == 200)
        except urllib.error.HTTPError:
            return False  # that service answered, and not 200
        except OSError:
            continue  # nothing on this port: another service's container
    return False


if __name__ == "__main__":
    path = sys.argv[1] if len(sys.argv) > 1 else "/healthz"
    if path not in ("/healthz", "/readyz"):
        sys.exit("usage: python -m portal_mfa.probe [/healthz|/readyz]")
    sys.exit(0 if probe(path) else 1)
