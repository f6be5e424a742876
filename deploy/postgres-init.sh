#!/usr/bin/env bash
# One PostgreSQL login and one database per service: each service connects as
# portal_mfa_<service> to its own database, owns it, and cannot connect to the others'.
# docker-compose.yml mounts it into /docker-entrypoint-initdb.d (run once, on an empty data
# volume); on your own server, run it once as a superuser with the same variables:
#
#   PORTAL_MFA_{PREFERENCES,CONTACTS,AUTH,AUDIT}_DB_PASSWORD   (openssl rand -hex 32)
#   POSTGRES_USER (postgres), POSTGRES_DB (postgres), and PGHOST/PGPORT as psql reads them
#
# The database name is what `portal-mfa serve` expects (portal_mfa/serve.py): it finds it
# there and, owning it, creates its tables.
set -euo pipefail

SERVICES=(preferences contacts auth audit)

fail() {
  echo "postgres-init: $*" >&2
  exit 2
}

# Check every password before changing anything. URL-safe, since each goes in a service's
# PORTAL_MFA_DATABASE_URL as it is.
declare -A PASSWORDS
for service in "${SERVICES[@]}"; do
  variable="PORTAL_MFA_${service^^}_DB_PASSWORD"
  value=${!variable:-}
  [[ -n $value ]] || fail "set $variable"
  [[ $value =~ ^[A-Za-z0-9._~-]{16,}$ ]] ||
    fail "$variable: at least 16 of A-Z a-z 0-9 . _ ~ - (e.g. openssl rand -hex 32)"
  PASSWORDS[$service]=$value
done

for service in "${SERVICES[@]}"; do
  # Values go in as psql variables (:'password', :"name"), quoted by psql, never spliced.
  psql -v ON_ERROR_STOP=1 --no-psqlrc --username "${POSTGRES_USER:-postgres}" \
    --dbname "${POSTGRES_DB:-postgres}" \
    -v name="portal_mfa_$service" -v password="${PASSWORDS[$service]}" >/dev/null <<'SQL'
CREATE ROLE :"name" LOGIN PASSWORD :'password';
CREATE DATABASE :"name" OWNER :"name";
-- Every role may connect to every database by default: only its owner may here.
REVOKE ALL ON DATABASE :"name" FROM PUBLIC;
SQL
  echo "postgres-init: login and database portal_mfa_$service"
done
