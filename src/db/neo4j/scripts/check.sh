#!/usr/bin/env bash
# neo4j-admin database check on the stopped database. On inconsistencies the reports are
# uploaded under CUTOVER_REPORT_PREFIX and the script exits 4 (a permanent finding, not a
# transient failure).
# Outputs: consistent, report_prefix (when inconsistent).
set -euo pipefail
: "${CUTOVER_REPORT_DIR:?}" "${CUTOVER_REPORT_PREFIX:?}" "${NEO4J_DATABASE:?}"

mkdir -p "$CUTOVER_REPORT_DIR"
chmod 777 "$CUTOVER_REPORT_DIR"
if cutover_neo4j_check; then
  cutover_output consistent true
  rm -rf "$CUTOVER_REPORT_DIR"
  exit 0
fi
cutover_output consistent false
cutover_upload_reports "$CUTOVER_REPORT_DIR" "$CUTOVER_REPORT_PREFIX"
rm -rf "$CUTOVER_REPORT_DIR"
exit 4
