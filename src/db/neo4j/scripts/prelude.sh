#!/usr/bin/env bash
# cutover neo4j prelude: helpers every neo4j script may use. cutover renders this, then
# the typed neo4j-admin functions (cutover_neo4j_*), then the script.
set -euo pipefail

: "${NEO4J_ADMIN:=neo4j-admin}"
: "${CUTOVER_SYSTEMCTL:=systemctl}"
: "${CUTOVER_LOCK_FILE:=/var/lock/cutover-neo4j.lock}"

# One cutover neo4j script at a time on an instance. A script that a crashed cutover left
# running keeps the lock until it ends; a second one (a resumed run's new attempt, which
# cannot adopt the old command) exits 75 at once, before touching anything. The engine
# classifies 75 as transient and tries again after a backoff, so two loads or a stop and
# a dump never overlap on one database.
exec 9>"$CUTOVER_LOCK_FILE"
if ! flock -n 9; then
  echo "another cutover script is running on this instance (lock $CUTOVER_LOCK_FILE held); retrying once it has finished" >&2
  exit 75
fi

# cutover_s3_cp ARGS...: `aws s3 cp` with the bucket's server-side encryption.
cutover_s3_cp() {
  if [[ -n ${CUTOVER_KMS_KEY_ID:-} ]]; then
    aws s3 cp --only-show-errors --sse aws:kms --sse-kms-key-id "$CUTOVER_KMS_KEY_ID" "$@"
  else
    aws s3 cp --only-show-errors --sse AES256 "$@"
  fi
}

# cutover_as_neo4j PROGRAM ARGS...: runs as the neo4j user when started as root (the
# manual requires neo4j-admin load/backup to run as neo4j for file ownership).
cutover_as_neo4j() {
  if [[ $(id -u) -eq 0 ]] && id neo4j >/dev/null 2>&1; then
    runuser -u neo4j -- "$@"
  else
    "$@"
  fi
}

# cutover_dbms_stop / cutover_dbms_start: with CUTOVER_STOP_DBMS=true (Community, where
# neo4j-admin dump and load need the whole DBMS stopped) stop the neo4j service, and start
# it again only if this script stopped it. Scripts call cutover_dbms_start on success and
# from their EXIT trap, so the server comes back also when the admin command fails.
cutover_dbms_stopped=false
cutover_dbms_stop() {
  if [[ ${CUTOVER_STOP_DBMS:-false} == true ]]; then
    "$CUTOVER_SYSTEMCTL" stop neo4j
    cutover_dbms_stopped=true
  fi
}
cutover_dbms_start() {
  if [[ $cutover_dbms_stopped == true ]]; then
    "$CUTOVER_SYSTEMCTL" start neo4j
    cutover_dbms_stopped=false
  fi
}

# cutover_neo4j_dir DIR: creates DIR for neo4j-admin to write into (owned by neo4j when
# this script runs as root and the user exists, since neo4j-admin runs as neo4j).
cutover_neo4j_dir() {
  mkdir -p "$1"
  if [[ $(id -u) -eq 0 ]] && id neo4j >/dev/null 2>&1; then
    chown neo4j: "$1"
  fi
}

# cutover_secret_field SECRET_ID STAGE KEY: prints one key of a JSON secret (the whole
# string when KEY is empty), read from Secrets Manager on this instance.
cutover_secret_field() {
  aws secretsmanager get-secret-value --secret-id "$1" --version-stage "$2" --query SecretString --output text |
    python3 -c 'import json, sys
key = sys.argv[1]
text = sys.stdin.read().rstrip("\n")
sys.stdout.write(str(json.loads(text)[key]) if key else text)' "$3"
}
