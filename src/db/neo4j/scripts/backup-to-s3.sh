#!/usr/bin/env bash
# Enterprise online backup of NEO4J_DATABASE into CUTOVER_BACKUP_DIR.
#
# Chain mode (CUTOVER_ARTIFACT_PREFIX): the directory is kept on the instance so
# differential backups extend its chain; every artifact not yet uploaded goes to
# CUTOVER_ARTIFACT_PREFIX/<artifact> with its SHA-256.
# Outputs: artifact.<n>=<name> <sha256> <size>, artifacts.
#
# Single mode (CUTOVER_ARTIFACT_URI): one full backup into a fresh directory, removed
# afterwards; its one artifact is uploaded to exactly CUTOVER_ARTIFACT_URI.
# Outputs: sha256, size_bytes, artifact_uri, artifact_name.
set -euo pipefail
: "${CUTOVER_BACKUP_DIR:?}" "${NEO4J_DATABASE:?}"

if [[ -n ${CUTOVER_ARTIFACT_URI:-} ]]; then
  trap 'rm -rf "$CUTOVER_BACKUP_DIR"' EXIT
  rm -rf "$CUTOVER_BACKUP_DIR"
  cutover_neo4j_dir "$CUTOVER_BACKUP_DIR"
  cutover_neo4j_backup
  shopt -s nullglob
  artifacts=("$CUTOVER_BACKUP_DIR"/*.backup)
  if [[ ${#artifacts[@]} -ne 1 ]]; then
    echo "expected exactly one backup artifact in $CUTOVER_BACKUP_DIR, found ${#artifacts[@]}" >&2
    exit 3
  fi
  artifact="${artifacts[0]}"
  sha="$(sha256sum "$artifact" | cut -d' ' -f1)"
  size="$(stat -c %s "$artifact")"
  cutover_store_cp "$artifact" "$CUTOVER_ARTIFACT_URI"
  printf '%s  %s\n' "$sha" "$(basename "$artifact")" | cutover_store_cp - "$CUTOVER_ARTIFACT_URI.sha256"
  cutover_output sha256 "$sha"
  cutover_output size_bytes "$size"
  cutover_output artifact_uri "$CUTOVER_ARTIFACT_URI"
  cutover_output artifact_name "$(basename "$artifact")"
  exit 0
fi

: "${CUTOVER_ARTIFACT_PREFIX:?}"
cutover_neo4j_dir "$CUTOVER_BACKUP_DIR"
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
  cutover_store_cp "$artifact" "$CUTOVER_ARTIFACT_PREFIX/$name"
  printf '%s  %s\n' "$sha" "$name" | cutover_store_cp - "$CUTOVER_ARTIFACT_PREFIX/$name.sha256"
  echo "$name" >>"$uploaded"
  cutover_output "artifact.$n" "$name $sha $size"
  n=$((n + 1))
done
cutover_output artifacts "$n"
