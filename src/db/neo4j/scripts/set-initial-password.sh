#!/usr/bin/env bash
# Makes a new instance serve: sets the neo4j user's initial password before Neo4j first
# starts, then enables and starts the service (the AMI installs Neo4j disabled, so it
# never serves with the default password). The password is read here from Secrets
# Manager (NEO4J_SECRET_ID, stage NEO4J_SECRET_STAGE, JSON key NEO4J_SECRET_KEY) and never
# appears in the command text cutover sends. neo4j-admin reads it from a mode 0600
# @-file, so it is in no process's arguments.
#
# Idempotent: when Neo4j already has users (a retry after this script succeeded, or an
# image that started Neo4j), it only makes sure the service runs and reports
# password_set=already; cutover then proves the password by logging in with it.
# Outputs: password_set (true | already).
set -euo pipefail
set +x
: "${NEO4J_SECRET_ID:?}" "${NEO4J_SECRET_STAGE:=AWSCURRENT}" "${NEO4J_SECRET_KEY:=}" "${NEO4J_DATA:=/var/lib/neo4j/data}"

if [[ -s $NEO4J_DATA/dbms/auth.ini ]]; then
  echo "Neo4j already has users: not setting an initial password; cutover checks the login" >&2
  "$CUTOVER_SYSTEMCTL" enable --now neo4j
  cutover_output password_set already
  exit 0
fi

password="$(cutover_secret_field "$NEO4J_SECRET_ID" "$NEO4J_SECRET_STAGE" "$NEO4J_SECRET_KEY")"
if [[ ${#password} -lt 8 ]]; then
  echo "the password in $NEO4J_SECRET_ID is shorter than 8 characters" >&2
  exit 3
fi
# neo4j-admin reads its arguments from an @-file (picocli): the password goes through a
# mode 0600 file, never through a process argument.
argfile="$(mktemp)"
trap 'rm -f "$argfile"' EXIT
chmod 600 "$argfile"
password=${password//\\/\\\\}
password=${password//\"/\\\"}
printf '"%s"\n' "$password" >"$argfile"
unset password
if [[ $(id -u) -eq 0 ]] && id neo4j >/dev/null 2>&1; then
  chown neo4j: "$argfile"
fi
# shellcheck disable=SC2034 # read by cutover_neo4j_set_initial_password
neo4j_password="@$argfile"
cutover_neo4j_set_initial_password >/dev/null
"$CUTOVER_SYSTEMCTL" enable --now neo4j
cutover_output password_set true
