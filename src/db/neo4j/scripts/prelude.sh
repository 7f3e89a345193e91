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

# cutover_store_cp SRC DST: copies to or from the object store. `s3://` URIs go through
# `aws s3 cp` with the bucket's server-side encryption; `file://` URIs and plain paths (the
# local provider's object store, a directory) with cp, `-` being standard input (as SRC)
# or output (as DST). A local upload is written to a temporary file and renamed, so a
# reader never sees half of it.
cutover_store_cp() {
  local src=$1 dst=$2 tmp
  if [[ $src == s3://* || $dst == s3://* ]]; then
    if [[ -n ${CUTOVER_KMS_KEY_ID:-} ]]; then
      aws s3 cp --only-show-errors --sse aws:kms --sse-kms-key-id "$CUTOVER_KMS_KEY_ID" "$src" "$dst"
    else
      aws s3 cp --only-show-errors --sse AES256 "$src" "$dst"
    fi
    return
  fi
  src=${src#file://}
  dst=${dst#file://}
  if [[ $dst == - ]]; then
    cat "$src"
    return
  fi
  mkdir -p "$(dirname "$dst")"
  tmp="$(dirname "$dst")/.cutover-tmp-$$-$(basename "$dst")"
  if [[ $src == - ]]; then
    cat >"$tmp"
  else
    cp "$src" "$tmp"
  fi
  mv -f "$tmp" "$dst"
}

# cutover_store_fetch_hashed SRC FILE: downloads SRC into FILE and prints its SHA-256,
# hashed as the bytes arrive, so the file is not read a second time (at hundreds of GiB,
# a second pass over the whole file). A failed download fails the pipeline (pipefail);
# FILE may then hold part of it.
cutover_store_fetch_hashed() {
  cutover_store_cp "$1" - | tee "$2" | sha256sum | cut -d' ' -f1
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

# cutover_upload_reports DIR PREFIX: copies every file neo4j-admin database check wrote
# into DIR to the object store under PREFIX/ and sets the `report_prefix` output.
cutover_upload_reports() {
  local report
  for report in "$1"/*; do
    [[ -f $report ]] && cutover_store_cp "$report" "$2/$(basename "$report")"
  done
  cutover_output report_prefix "$2"
}

# cutover_secret_field SECRET_ID STAGE KEY: prints one key of a JSON secret (the whole
# string when KEY is empty), read from Secrets Manager on this instance, or, when
# CUTOVER_SECRETS_DIR is set (the local provider), from the local secret store's file for
# SECRET_ID in that directory (stage AWSCURRENT / AWSPENDING / AWSPREVIOUS).
cutover_secret_field() {
  if [[ -n ${CUTOVER_SECRETS_DIR:-} ]]; then
    python3 -c 'import json, os, sys
name, stage, key, root = sys.argv[1:5]
fname = "".join(chr(b) if b < 128 and (chr(b).isalnum() or chr(b) in "_-" or (chr(b) == "." and i > 0)) else "%%%02X" % b for i, b in enumerate(name.encode()))
path = os.path.join(root, fname + ".json")
try:
    with open(path) as f:
        doc = json.load(f)
except FileNotFoundError:
    sys.exit("no secret %s in the local secret store (%s)" % (name, path))
want = doc.get({"AWSCURRENT": "current", "AWSPENDING": "pending", "AWSPREVIOUS": "previous"}.get(stage, stage.lower()))
values = [v["value"] for v in doc.get("versions", []) if v["id"] == want]
if not values:
    sys.exit("secret %s has no %s version" % (name, stage))
text = values[0]
sys.stdout.write(str(json.loads(text)[key]) if key else text)' "$1" "$2" "$3" "$CUTOVER_SECRETS_DIR"
    return
  fi
  aws secretsmanager get-secret-value --secret-id "$1" --version-stage "$2" --query SecretString --output text |
    python3 -c 'import json, sys
key = sys.argv[1]
text = sys.stdin.read().rstrip("\n")
sys.stdout.write(str(json.loads(text)[key]) if key else text)' "$3"
}
