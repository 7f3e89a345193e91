#!/usr/bin/env bash
# Enterprise restore of a backup chain. CUTOVER_ARTIFACTS lists "<s3-uri> <sha256>" lines,
# full backup first, then differentials in order. Every artifact is downloaded into
# CUTOVER_RESTORE_DIR and its SHA-256 verified BEFORE neo4j-admin database restore runs;
# one mismatch exits 3 and nothing is restored.
# Outputs: artifacts_verified, restored.
set -euo pipefail
: "${CUTOVER_ARTIFACTS:?}" "${CUTOVER_RESTORE_DIR:?}" "${NEO4J_DATABASE:?}"

trap 'rm -rf "$CUTOVER_RESTORE_DIR"' EXIT
mkdir -p "$CUTOVER_RESTORE_DIR"
chmod 755 "$CUTOVER_RESTORE_DIR"

n=0
while read -r uri want; do
  [[ -z $uri ]] && continue
  file="$CUTOVER_RESTORE_DIR/$(basename "$uri")"
  actual="$(cutover_store_fetch_hashed "$uri" "$file")"
  chmod 644 "$file"
  if [[ $actual != "$want" ]]; then
    echo "checksum mismatch for $uri: expected $want, got $actual; nothing was restored" >&2
    cutover_output restored false
    exit 3
  fi
  n=$((n + 1))
done <<<"$CUTOVER_ARTIFACTS"
cutover_output artifacts_verified "$n"

cutover_neo4j_restore
cutover_output restored true
