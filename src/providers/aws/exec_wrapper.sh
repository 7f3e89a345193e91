# cutover exec wrapper (AWS). The header cutover renders above this line sets
# `set -euo pipefail` and exports CUTOVER_NONCE, CUTOVER_SCRIPT_NAME, CUTOVER_RESULT_URI,
# CUTOVER_LOG_URI, CUTOVER_KMS_KEY_ID (may be empty) and the script's own variables, and
# defines cutover_write_body, which prints the step's script (a quoted here-document, so
# nothing in it is expanded). The script runs in its own bash with -euo pipefail, its
# standard input closed.
#
# The result object at CUTOVER_RESULT_URI is the only source of truth about this run:
# exit code, declared outputs and the attempt nonce. SSM's status and its 24,000-character
# stdout are not.

cutover_workdir="$(mktemp -d)"
export CUTOVER_OUTPUTS="$cutover_workdir/outputs"
: >"$CUTOVER_OUTPUTS"
cutover_log="$cutover_workdir/log"
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

cutover_sse_args=(--sse AES256)
if [[ -n ${CUTOVER_KMS_KEY_ID:-} ]]; then
  cutover_sse_args=(--sse aws:kms --sse-kms-key-id "$CUTOVER_KMS_KEY_ID")
fi

cutover_finish() {
  local rc=$1 outputs="" sep="" key value line tail_text
  while IFS= read -r line || [[ -n $line ]]; do
    [[ -z $line ]] && continue
    key=${line%%=*}
    value=${line#*=}
    outputs+="$sep$(cutover_json_string "$key"):$(cutover_json_string "$value")"
    sep=","
  done <"$CUTOVER_OUTPUTS"
  tail_text="$(tail -c 4000 "$cutover_log" 2>/dev/null || true)"
  local result
  result="{\"exit_code\":$rc,\"outputs\":{$outputs},\"output_tail\":$(cutover_json_string "$tail_text"),\"nonce\":$(cutover_json_string "$CUTOVER_NONCE"),\"script\":$(cutover_json_string "$CUTOVER_SCRIPT_NAME"),\"host\":$(cutover_json_string "$(hostname)"),\"started_at\":\"$cutover_started_at\",\"finished_at\":\"$(date -u +%Y-%m-%dT%H:%M:%SZ)\"}"
  aws s3 cp --only-show-errors "${cutover_sse_args[@]}" "$cutover_log" "$CUTOVER_LOG_URI" || echo "cutover: could not upload the log" >&2
  printf '%s' "$result" | aws s3 cp --only-show-errors "${cutover_sse_args[@]}" --content-type application/json - "$CUTOVER_RESULT_URI"
  # Also to SSM's own output, for people looking at the console; never the source of truth.
  printf '%s\n' "$tail_text"
}

cutover_write_body >"$cutover_workdir/body.sh"
set +e
(cd "$cutover_workdir" && bash -euo pipefail ./body.sh) </dev/null >"$cutover_log" 2>&1
cutover_rc=$?
set -e
cutover_finish "$cutover_rc"
rm -rf "$cutover_workdir"
exit "$cutover_rc"
