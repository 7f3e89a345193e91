#!/usr/bin/env bash
# The local blue-green demo (`make demo`): blue ledger + search seeded by the ledger
# generator, a writer committing transactions the whole time, the blue-green runbook
# with live progress, then the report. Leaves no process running (KEEP_GREEN=1 keeps
# the migrated instances up). SIZE= sets the number of members (default 100: each Neo4j step
# restarts a JVM, so the size matters less than those restarts).
set -euo pipefail
cd "$(dirname "$0")/.."

SIZE="${SIZE:-100}"
BAKE="${BAKE:-5s}"
export CUTOVER_STATE_DIR="${CUTOVER_STATE_DIR:-$PWD/.cutover/demo}"
ENV_FILE="$CUTOVER_STATE_DIR/demo.toml"
WRITES="$CUTOVER_STATE_DIR/writer.json"

echo "== building"
cargo build --quiet --bin cutover --example local_env
TARGET_DIR="${CARGO_TARGET_DIR:-target}"
BIN="$TARGET_DIR/debug/cutover"
LOCAL_ENV="$TARGET_DIR/debug/examples/local_env"

rm -rf "$CUTOVER_STATE_DIR"
mkdir -p "$CUTOVER_STATE_DIR"
sed -e 's/^name = "local"/name = "demo"/' \
    -e "s#^state_dir = .*#state_dir = \"$CUTOVER_STATE_DIR\"#" \
    -e 's#credex-core/local#credex-core/demo#g' \
    environments/local.toml > "$ENV_FILE"

WRITER_PID=""
# shellcheck disable=SC2329 # invoked by the trap below
cleanup() {
  if [[ -n "$WRITER_PID" ]] && kill -0 "$WRITER_PID" 2>/dev/null; then
    kill -TERM "$WRITER_PID" 2>/dev/null || true
    wait "$WRITER_PID" 2>/dev/null || true
  fi
  if [[ "${KEEP_GREEN:-0}" != 1 ]]; then
    "$LOCAL_ENV" teardown "$ENV_FILE" || true
  fi
}
trap cleanup EXIT INT TERM

echo "== creating blue ledger and search ($SIZE members each)"
"$LOCAL_ENV" setup "$ENV_FILE" "$SIZE"

echo "== starting the writer (commits a ledger transaction every ~20 ms to wherever the app points)"
"$LOCAL_ENV" writer "$ENV_FILE" "$SIZE" "$WRITES" &
WRITER_PID=$!
sleep 3

echo "== cutover run runbooks/blue-green.toml"
set +e
"$BIN" run runbooks/blue-green.toml --env "$ENV_FILE" --set "bake=$BAKE" --yes
CODE=$?
set -e
sleep 2
kill -TERM "$WRITER_PID"; wait "$WRITER_PID" || true
WRITER_PID=""

echo
echo "== the writer's view: is every acknowledged write where the app now connects?"
VERIFIED="$CUTOVER_STATE_DIR/verify.txt"
"$LOCAL_ENV" verify "$ENV_FILE" "$WRITES" | tee "$VERIFIED" || CODE=1
# `measures: writes_acknowledged=N writes_lost=M` → --measure arguments for the report.
MEASURES=()
read -ra FIGURES <<<"$(sed -n 's/^measures: //p' "$VERIFIED")"
for m in "${FIGURES[@]}"; do MEASURES+=(--measure "$m"); done

echo
echo "== report"
# The demo state directory holds exactly this one run.
RUN_ID="$(basename "$(find "$CUTOVER_STATE_DIR/runs" -mindepth 1 -maxdepth 1 -type d | head -1)")"
"$BIN" status "$RUN_ID" --env "$ENV_FILE" || true
"$BIN" report "$RUN_ID" --env "$ENV_FILE" "${MEASURES[@]}" || true
"$BIN" status "$RUN_ID" --env "$ENV_FILE" --output json > "$CUTOVER_STATE_DIR/status.json" 2>/dev/null || true
python3 - "$CUTOVER_STATE_DIR/runs/$RUN_ID/journal.jsonl" <<'PY' || true
import json, sys, datetime
ev = [json.loads(l) for l in open(sys.argv[1])]
def t(e):
    for k in ("at", "time", "ts", "timestamp"):
        if k in e: return datetime.datetime.fromisoformat(e[k].replace("Z", "+00:00"))
start, end, out = {}, {}, {}
for e in ev:
    k = e.get("event") or e.get("type") or e.get("kind")
    s = e.get("step")
    if k in ("step_started", "StepStarted") and s not in start: start[s] = t(e)
    if k in ("step_succeeded", "StepSucceeded"): end[s] = t(e); out[s] = e.get("outputs", {})
print("per-step times:")
for s in start:
    if s in end: print(f"  {s:22s} {(end[s]-start[s]).total_seconds():8.2f} s")
fz = [start[s] for s in start if s.startswith("freeze-")]
sw = end.get("switch")
if fz and sw: print(f"freeze window (first freeze → green writable): {(sw-min(fz)).total_seconds():.2f} s")
for db in ("ledger", "search"):
    c = out.get(f"compare-{db}", {})
    if c: print(f"{db}: frozen blue {c.get('source_fingerprint','?')[:16]}… = green {c.get('target_fingerprint','?')[:16]}… ({c.get('nodes')} nodes, {c.get('relationships')} relationships)")
PY
echo "outcome: exit $CODE (state, journal and report under $CUTOVER_STATE_DIR)"
exit "$CODE"
