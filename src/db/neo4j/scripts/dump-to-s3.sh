#!/usr/bin/env bash
# Streams a dump of NEO4J_DATABASE to CUTOVER_ARTIFACT_URI, computing its SHA-256 and
# size on the way (nothing is staged in memory). Writes `<uri>.sha256` beside it.
# Outputs: sha256, size_bytes, artifact_uri.
# Community: the DBMS must be stopped (CUTOVER_STOP_DBMS=true stops it here and starts it
# again afterwards, also on failure); Enterprise: cutover stops the database first.
set -euo pipefail
: "${CUTOVER_ARTIFACT_URI:?}" "${NEO4J_DATABASE:?}"

work="$(mktemp -d)"
sha_pid=""
size_pid=""
cleanup() {
  [[ -n $sha_pid ]] && kill "$sha_pid" 2>/dev/null
  [[ -n $size_pid ]] && kill "$size_pid" 2>/dev/null
  rm -rf "$work"
  cutover_dbms_start
}
trap cleanup EXIT

mkfifo "$work/sha.fifo" "$work/size.fifo"
sha256sum <"$work/sha.fifo" >"$work/sha" &
sha_pid=$!
wc -c <"$work/size.fifo" >"$work/size" &
size_pid=$!

cutover_dbms_stop
cutover_neo4j_dump | tee "$work/sha.fifo" "$work/size.fifo" | cutover_store_cp - "$CUTOVER_ARTIFACT_URI"
wait "$sha_pid"
sha_pid=""
wait "$size_pid"
size_pid=""
cutover_dbms_start

sha="$(cut -d' ' -f1 <"$work/sha")"
size="$(tr -d ' \n' <"$work/size")"
if [[ $size -eq 0 ]]; then
  echo "the dump of $NEO4J_DATABASE is empty" >&2
  exit 3
fi
printf '%s  %s.dump\n' "$sha" "$NEO4J_DATABASE" | cutover_store_cp - "$CUTOVER_ARTIFACT_URI.sha256"
cutover_output sha256 "$sha"
cutover_output size_bytes "$size"
cutover_output artifact_uri "$CUTOVER_ARTIFACT_URI"
