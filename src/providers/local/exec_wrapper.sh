#!/usr/bin/env bash
# cutover exec wrapper (local). The local exec channel starts this in its own session,
# in the attempt's directory <instance>/exec/<nonce>/ holding body.sh (the step's script)
# with the script's variables in the environment. It gives the script the same contract
# as the AWS wrapper: `cutover_output KEY VALUE` declares an output; the script runs in
# its own bash with -euo pipefail, standard input closed, in the instance home. The
# result file (result.json, written atomically when the script has ended) is the only
# source of truth about the run: exit code, outputs, the last 4000 bytes of output and
# the attempt nonce.
set -euo pipefail
: "${CUTOVER_NONCE:?}" "${CUTOVER_SCRIPT_NAME:?}" "${CUTOVER_EXEC_DIR:?}" "${NEO4J_HOME:?}"

export CUTOVER_OUTPUTS="$CUTOVER_EXEC_DIR/outputs"
: >"$CUTOVER_OUTPUTS"
cutover_log="$CUTOVER_EXEC_DIR/log"
cutover_started_at="$(date -u +%Y-%m-%dT%H:%M:%SZ)"

# cutover_output KEY VALUE: declares an output (checksums, sizes, versions; never secrets).
# shellcheck disable=SC2329 # exported for the body script
cutover_output() {
  local key=$1 value=$2
  if [[ ! $key =~ ^[A-Za-z0-9_.-]+$ ]]; then
    echo "cutover_output: invalid output key: $key" >&2
    return 1
  fi
  printf '%s=%s\n' "$key" "$value" >>"$CUTOVER_OUTPUTS"
}
export -f cutover_output

cutover_json_string() {
  # Printable ASCII only, then JSON-escaped.
  local s
  s="$(printf '%s' "$1" | LC_ALL=C tr -cd '\11\12\40-\176')"
  s=${s//\\/\\\\}
  s=${s//\"/\\\"}
  s=${s//$'\t'/\\t}
  s=${s//$'\n'/\\n}
  printf '"%s"' "$s"
}

set +e
(cd "$NEO4J_HOME" && bash -euo pipefail "$CUTOVER_EXEC_DIR/body.sh") </dev/null >"$cutover_log" 2>&1
cutover_rc=$?
set -e

outputs=""
sep=""
while IFS= read -r line || [[ -n $line ]]; do
  [[ -z $line ]] && continue
  key=${line%%=*}
  value=${line#*=}
  outputs+="$sep$(cutover_json_string "$key"):$(cutover_json_string "$value")"
  sep=","
done <"$CUTOVER_OUTPUTS"
tail_text="$(tail -c 4000 "$cutover_log" 2>/dev/null || true)"
printf '{"exit_code":%s,"outputs":{%s},"output_tail":%s,"nonce":%s,"script":%s,"started_at":"%s","finished_at":"%s"}' \
  "$cutover_rc" "$outputs" "$(cutover_json_string "$tail_text")" "$(cutover_json_string "$CUTOVER_NONCE")" \
  "$(cutover_json_string "$CUTOVER_SCRIPT_NAME")" "$cutover_started_at" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
  >"$CUTOVER_EXEC_DIR/result.json.tmp"
sync "$CUTOVER_EXEC_DIR/result.json.tmp" 2>/dev/null || true
mv -f "$CUTOVER_EXEC_DIR/result.json.tmp" "$CUTOVER_EXEC_DIR/result.json"
exit "$cutover_rc"
