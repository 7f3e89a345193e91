#!/usr/bin/env bash
# Community has no ALTER DATABASE: freeze (CUTOVER_FREEZE=true) or unfreeze (false)
# NEO4J_DATABASE through server.databases.read_only in NEO4J_CONF, then restart Neo4j.
# The setting lives in a marked block so unfreezing removes exactly what freezing added.
# Refuses if the operator already manages server.databases.read_only.
# Outputs: frozen, restarted.
set -euo pipefail
: "${NEO4J_DATABASE:?}" "${CUTOVER_FREEZE:?}" "${NEO4J_CONF:=/etc/neo4j/neo4j.conf}"

begin="# cutover:freeze begin"
end="# cutover:freeze end"
tmp="$(mktemp)"
trap 'rm -f "$tmp"' EXIT

awk -v b="$begin" -v e="$end" '$0 == b {skip = 1; next} $0 == e {skip = 0; next} !skip' "$NEO4J_CONF" >"$tmp"
if grep -Eq '^[[:space:]]*server\.databases\.read_only[[:space:]]*=' "$tmp"; then
  echo "$NEO4J_CONF already sets server.databases.read_only outside cutover's block; refusing to change it" >&2
  exit 3
fi
if [[ $CUTOVER_FREEZE == true ]]; then
  printf '%s\nserver.databases.read_only=%s\n%s\n' "$begin" "$NEO4J_DATABASE" "$end" >>"$tmp"
fi
if cmp -s "$tmp" "$NEO4J_CONF"; then
  echo "$NEO4J_CONF already as wanted"
  cutover_output restarted false
else
  cat "$tmp" >"$NEO4J_CONF"
  "$CUTOVER_SYSTEMCTL" restart neo4j
  cutover_output restarted true
fi
cutover_output frozen "$CUTOVER_FREEZE"
