#!/usr/bin/env bash
# Downloads the dump at CUTOVER_ARTIFACT_URI into CUTOVER_LOAD_DIR/<database>.dump,
# verifies its SHA-256 against CUTOVER_EXPECTED_SHA256 BEFORE loading, then loads it
# with --overwrite-destination. A mismatch exits 3 and the store is untouched.
# Community: CUTOVER_STOP_DBMS=true stops the DBMS for the load only (after the checksum
# passed) and starts it again afterwards, also on failure.
# Outputs: sha256, size_bytes, loaded.
set -euo pipefail
: "${CUTOVER_ARTIFACT_URI:?}" "${CUTOVER_EXPECTED_SHA256:?}" "${NEO4J_DATABASE:?}" "${CUTOVER_LOAD_DIR:?}"

trap 'rm -rf "$CUTOVER_LOAD_DIR"; cutover_dbms_start' EXIT
mkdir -p "$CUTOVER_LOAD_DIR"
chmod 755 "$CUTOVER_LOAD_DIR"
file="$CUTOVER_LOAD_DIR/$NEO4J_DATABASE.dump"

cutover_store_cp "$CUTOVER_ARTIFACT_URI" "$file"
chmod 644 "$file"
actual="$(sha256sum "$file" | cut -d' ' -f1)"
cutover_output sha256 "$actual"
cutover_output size_bytes "$(stat -c %s "$file")"
if [[ $actual != "$CUTOVER_EXPECTED_SHA256" ]]; then
  echo "checksum mismatch for $CUTOVER_ARTIFACT_URI: expected $CUTOVER_EXPECTED_SHA256, got $actual; nothing was loaded" >&2
  cutover_output loaded false
  exit 3
fi

cutover_dbms_stop
cutover_neo4j_load
cutover_dbms_start
cutover_output loaded true
