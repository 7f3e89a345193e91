#!/usr/bin/env bash
# Downloads the dump at CUTOVER_ARTIFACT_URI into CUTOVER_LOAD_DIR/<database>.dump,
# hashing it on the way, verifies its SHA-256 against CUTOVER_EXPECTED_SHA256, checks its consistency
# (neo4j-admin database check --from-path, extracting into CUTOVER_CHECK_TEMP while the
# DBMS keeps running), and only then loads it with --overwrite-destination.
# A checksum mismatch exits 3, an inconsistent artifact exits 4 with the check's reports
# uploaded under CUTOVER_REPORT_PREFIX; either way the store is untouched.
# Community: CUTOVER_STOP_DBMS=true stops the DBMS for the load only (after both checks
# passed) and starts it again afterwards, also on failure.
# Outputs: sha256, size_bytes, consistent, loaded (report_prefix when inconsistent).
set -euo pipefail
: "${CUTOVER_ARTIFACT_URI:?}" "${CUTOVER_EXPECTED_SHA256:?}" "${NEO4J_DATABASE:?}" "${CUTOVER_LOAD_DIR:?}"
: "${CUTOVER_CHECK_TEMP:?}" "${CUTOVER_REPORT_DIR:?}" "${CUTOVER_REPORT_PREFIX:?}"

trap 'rm -rf "$CUTOVER_LOAD_DIR"; cutover_dbms_start' EXIT
cutover_neo4j_dir "$CUTOVER_LOAD_DIR"
chmod 755 "$CUTOVER_LOAD_DIR"
file="$CUTOVER_LOAD_DIR/$NEO4J_DATABASE.dump"

actual="$(cutover_store_fetch_hashed "$CUTOVER_ARTIFACT_URI" "$file")"
chmod 644 "$file"
cutover_output sha256 "$actual"
cutover_output size_bytes "$(stat -c %s "$file")"
if [[ $actual != "$CUTOVER_EXPECTED_SHA256" ]]; then
  echo "checksum mismatch for $CUTOVER_ARTIFACT_URI: expected $CUTOVER_EXPECTED_SHA256, got $actual; nothing was loaded" >&2
  cutover_output loaded false
  exit 3
fi

cutover_neo4j_dir "$CUTOVER_CHECK_TEMP"
cutover_neo4j_dir "$CUTOVER_REPORT_DIR"
if ! cutover_neo4j_check_artifact; then
  cutover_output consistent false
  cutover_output loaded false
  cutover_upload_reports "$CUTOVER_REPORT_DIR" "$CUTOVER_REPORT_PREFIX"
  echo "neo4j-admin database check found $CUTOVER_ARTIFACT_URI inconsistent (or could not read it); reports: $CUTOVER_REPORT_PREFIX/; nothing was loaded" >&2
  exit 4
fi
cutover_output consistent true
rm -rf "$CUTOVER_CHECK_TEMP"

cutover_dbms_stop
cutover_neo4j_load
cutover_dbms_start
cutover_output loaded true
