#!/usr/bin/env bash
# The whole system on this machine: embedded broker and PostgreSQL, all services, demo data.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
exec .venv/bin/portal-mfa dev "$@"
