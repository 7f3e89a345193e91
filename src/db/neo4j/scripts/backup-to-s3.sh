#!/usr/bin/env bash
# Enterprise online backup of NEO4J_DATABASE into CUTOVER_BACKUP_DIR (kept on the
# instance: differential backups extend its chain), then uploads every artifact not yet
# uploaded to CUTOVER_ARTIFACT_PREFIX/<artifact> with its SHA-256.
# Outputs: artifact.<n>=<name> <sha256> <size>, artifacts.
set -euo pipefail
: "${CUTOVER_BACKUP_DIR:?}" "${CUTOVER_ARTIFACT_PREFIX:?}" "${NEO4J_DATABASE:?}"

mkdir -p "$CUTOVER_BACKUP_DIR"
uploaded="$CUTOVER_BACKUP_DIR/.cutover-uploaded"
touch "$uploaded"

cutover_neo4j_backup

n=0
shopt -s nullglob
for artifact in "$CUTOVER_BACKUP_DIR"/*.backup; do
  name="$(basename "$artifact")"
  if grep -qxF "$name" "$uploaded"; then
    continue
  fi
  sha="$(sha256sum "$artifact" | cut -d' ' -f1)"
  size="$(stat -c %s "$artifact")"
  cutover_s3_cp "$artifact" "$CUTOVER_ARTIFACT_PREFIX/$name"
  printf '%s  %s\n' "$sha" "$name" | cutover_s3_cp - "$CUTOVER_ARTIFACT_PREFIX/$name.sha256"
  echo "$name" >>"$uploaded"
  cutover_output "artifact.$n" "$name $sha $size"
  n=$((n + 1))
done
cutover_output artifacts "$n"
