#!/usr/bin/env bash
# Sets the neo4j user's initial password before the first start. The password is read
# here from Secrets Manager (NEO4J_SECRET_ID, stage NEO4J_SECRET_STAGE, JSON key
# NEO4J_SECRET_KEY) and never appears in the command text cutover sends. neo4j-admin takes
# it as an argument, so it is in this host's process list while the command runs; the
# AMI mounts /proc with hidepid=2 (only root sees other users' arguments).
# Outputs: password_set.
set -euo pipefail
set +x
: "${NEO4J_SECRET_ID:?}" "${NEO4J_SECRET_STAGE:=AWSCURRENT}" "${NEO4J_SECRET_KEY:=}" "${NEO4J_DATA:=/var/lib/neo4j/data}"

if [[ -s $NEO4J_DATA/dbms/auth.ini ]]; then
  echo "Neo4j has already been started with users; rotate the password with ALTER USER instead" >&2
  exit 3
fi

# shellcheck disable=SC2034 # read by cutover_neo4j_set_initial_password
neo4j_password="$(cutover_secret_field "$NEO4J_SECRET_ID" "$NEO4J_SECRET_STAGE" "$NEO4J_SECRET_KEY")"
if [[ ${#neo4j_password} -lt 8 ]]; then
  echo "the password in $NEO4J_SECRET_ID is shorter than 8 characters" >&2
  exit 3
fi
cutover_neo4j_set_initial_password >/dev/null
unset neo4j_password
cutover_output password_set true
