#!/usr/bin/env bash
# Writes cutover's Neo4j settings into a marked block of neo4j.conf. Memory settings are
# derived on first boot by neo4j-admin server memory-recommendation; here only what does
# not depend on the instance type.
set -euo pipefail
conf=/etc/neo4j/neo4j.conf
begin="# cutover:ami begin"
end="# cutover:ami end"
tmp="$(mktemp)"
trap 'rm -f "$tmp"' EXIT
awk -v b="$begin" -v e="$end" '$0 == b {skip = 1; next} $0 == e {skip = 0; next} !skip' "$conf" >"$tmp"
cat >>"$tmp" <<CONF
$begin
server.default_listen_address=0.0.0.0
server.bolt.enabled=true
server.http.enabled=true
server.https.enabled=false
# Online backup listens on localhost only; cutover runs the backup client on the instance.
server.backup.enabled=true
server.backup.listen_address=127.0.0.1:6362
dbms.security.procedures.unrestricted=apoc.*
dbms.security.auth_minimum_password_length=12
db.logs.query.enabled=INFO
$end
CONF
cat "$tmp" >"$conf"
