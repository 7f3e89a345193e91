#!/usr/bin/env bash
# cutover neo4j prelude: helpers every neo4j script may use. cutover renders this, then
# the typed neo4j-admin functions (cutover_neo4j_*), then the script.
set -euo pipefail

: "${NEO4J_ADMIN:=neo4j-admin}"
: "${CUTOVER_SYSTEMCTL:=systemctl}"

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

# cutover_secret_field SECRET_ID STAGE KEY: prints one key of a JSON secret (the whole
# string when KEY is empty), read from Secrets Manager on this instance.
cutover_secret_field() {
  aws secretsmanager get-secret-value --secret-id "$1" --version-stage "$2" --query SecretString --output text |
    python3 -c 'import json, sys
key = sys.argv[1]
text = sys.stdin.read().rstrip("\n")
sys.stdout.write(str(json.loads(text)[key]) if key else text)' "$3"
}
