#!/usr/bin/env bash
# Portal MFA's principals on a Kafka cluster with SASL/SCRAM and ACLs (DESIGN.md §11;
# docs/security.md, "The broker"): one SCRAM-SHA-512 user per service and one for the admin
# console, the topics (event topics kept forever), and ACLs under which each principal writes
# only its own topics. docker-compose.yml runs it as its one-shot `kafka-init` service; on a
# cluster, run it as a Job with the same variables (deploy/README.md).
#
# Idempotent: run it again after a change, or with new passwords to rotate them. It adds and
# never removes: an ACL dropped from this file must be removed by hand (kafka-acls.sh --remove).
#
# Runs as a super user of the cluster, given either as
#   PORTAL_MFA_KAFKA_ADMIN_CONFIG     a client properties file (any protocol and mechanism), or
#   PORTAL_MFA_KAFKA_ADMIN_USER (admin) and PORTAL_MFA_KAFKA_ADMIN_PASSWORD (SASL PLAIN,
#                                     PORTAL_MFA_KAFKA_ADMIN_PROTOCOL, default SASL_PLAINTEXT)
# and reads
#   PORTAL_MFA_KAFKA_BOOTSTRAP        host:port of a SASL listener
#   PORTAL_MFA_{PREFERENCES,CONTACTS,AUTH,AUDIT,CONSOLE}_KAFKA_PASSWORD
#   PORTAL_MFA_KAFKA_PARTITIONS (3), PORTAL_MFA_KAFKA_REPLICATION_FACTOR (1), KAFKA_BIN
set -euo pipefail

KAFKA_BIN=${KAFKA_BIN:-/opt/kafka/bin}
BOOTSTRAP=${PORTAL_MFA_KAFKA_BOOTSTRAP:?set PORTAL_MFA_KAFKA_BOOTSTRAP=host:port}
PARTITIONS=${PORTAL_MFA_KAFKA_PARTITIONS:-3}
REPLICATION=${PORTAL_MFA_KAFKA_REPLICATION_FACTOR:-1}

# The principals: User:portal-mfa-<name>; the consumer groups are the ones the code joins
# (shared/command_service.py, services/auth/main.py, services/audit/bootstrap.py).
SERVICES=(preferences contacts auth audit console)

fail() {
  echo "kafka-acls: $*" >&2
  exit 2
}

password_of() {
  local variable="PORTAL_MFA_${1^^}_KAFKA_PASSWORD"
  local value=${!variable:-}
  [[ -n $value ]] || fail "set $variable"
  # kafka-configs parses "[iterations=...,password=...]": these characters would split it.
  [[ $value =~ ^[A-Za-z0-9._~+/-]{16,}$ ]] ||
    fail "$variable: at least 16 of A-Z a-z 0-9 . _ ~ + / - (e.g. openssl rand -hex 32)"
  printf '%s' "$value"
}

# Check every password before changing anything.
declare -A PASSWORDS
for service in "${SERVICES[@]}"; do
  PASSWORDS[$service]=$(password_of "$service")
done

umask 077
admin_config=${PORTAL_MFA_KAFKA_ADMIN_CONFIG:-}
if [[ -z $admin_config ]]; then
  admin_password=${PORTAL_MFA_KAFKA_ADMIN_PASSWORD:-}
  [[ -n $admin_password ]] || fail "set PORTAL_MFA_KAFKA_ADMIN_CONFIG or PORTAL_MFA_KAFKA_ADMIN_PASSWORD"
  admin_config=$(mktemp)
  trap 'rm -f "$admin_config"' EXIT
  cat >"$admin_config" <<EOF
security.protocol=${PORTAL_MFA_KAFKA_ADMIN_PROTOCOL:-SASL_PLAINTEXT}
sasl.mechanism=PLAIN
sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="${PORTAL_MFA_KAFKA_ADMIN_USER:-admin}" password="$admin_password";
EOF
fi

kafka() {
  local tool=$1
  shift
  "$KAFKA_BIN/$tool.sh" --bootstrap-server "$BOOTSTRAP" --command-config "$admin_config" "$@"
}

for attempt in $(seq 60); do
  kafka kafka-topics --list >/dev/null 2>&1 && break
  [[ $attempt -lt 60 ]] || fail "no answer from $BOOTSTRAP as the super user"
  sleep 2
done

# --- users ------------------------------------------------------------------------------
for service in "${SERVICES[@]}"; do
  kafka kafka-configs --alter --entity-type users --entity-name "portal-mfa-$service" \
    --add-config "SCRAM-SHA-512=[iterations=8192,password=${PASSWORDS[$service]}]" >/dev/null
  echo "user portal-mfa-$service: SCRAM-SHA-512 set"
done

# --- topics -----------------------------------------------------------------------------
topic() {
  kafka kafka-topics --create --if-not-exists --topic "$1" --partitions "$2" \
    --replication-factor "$REPLICATION"
}
# Events are the system of record for the consumers: never expire them (DESIGN.md §4).
# Set on existing topics too, since --if-not-exists leaves an existing topic as it is.
for events in portal.preferences.events portal.contacts.events portal.auth.events; do
  topic "$events" "$PARTITIONS"
  kafka kafka-configs --alter --entity-type topics --entity-name "$events" \
    --add-config retention.ms=-1,retention.bytes=-1
done
topic portal.preferences.commands "$PARTITIONS"
topic portal.contacts.commands "$PARTITIONS"
# Read in order by whoever waits on them: one partition (portal_mfa/serve.py).
topic portal.admin.replies 1
topic portal.deadletter 1

# --- ACLs -------------------------------------------------------------------------------
allow() {
  local principal=$1
  shift
  kafka kafka-acls --add --allow-principal "User:portal-mfa-$principal" "$@" >/dev/null
}
writes() { allow "$1" --operation Write --topic "$2"; }
reads() { allow "$1" --operation Read --topic "$2"; }
joins() { allow "$1" --operation Read --group "$2"; }

for service in "${SERVICES[@]}"; do
  # Each service checks at start that the system's topics exist (portal_mfa/serve.py):
  # seeing their names is all it may do with the others'. Nobody but this job creates.
  allow "$service" --operation Describe --topic portal. --resource-pattern-type prefixed
done
# ...and reads the event topics' retention, refusing to start on one that would delete
# events (portal_mfa/infra/topics.py). Describe does not include DescribeConfigs.
for service in preferences contacts auth audit; do
  for events in portal.preferences.events portal.contacts.events portal.auth.events; do
    allow "$service" --operation DescribeConfigs --topic "$events"
  done
done

writes preferences portal.preferences.events
reads preferences portal.preferences.commands
joins preferences portal-mfa-preferences
writes preferences portal.admin.replies
writes preferences portal.deadletter

writes contacts portal.contacts.events
reads contacts portal.contacts.commands
joins contacts portal-mfa-contacts
writes contacts portal.admin.replies
writes contacts portal.deadletter

writes auth portal.auth.events
writes auth portal.deadletter
reads auth portal.preferences.events
reads auth portal.contacts.events
joins auth portal-mfa-auth-projection

reads audit portal.preferences.events
reads audit portal.contacts.events
reads audit portal.auth.events
joins audit portal-mfa-audit
writes audit portal.deadletter

# The console (the CLI and the console-web pages alike) sends commands and reads their
# replies by assignment (no group).
writes console portal.preferences.commands
writes console portal.contacts.commands
reads console portal.admin.replies

echo "ACLs set for: ${SERVICES[*]/#/portal-mfa-}"
