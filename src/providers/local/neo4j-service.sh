#!/usr/bin/env bash
# cutover local Neo4j service: what `systemctl … neo4j` is on an AMI, for one local
# instance. cutover renders the header above (NEO4J_HOME, JAVA, NEO4J_LIB, HEAP,
# STOP_GRACE_S, SERVER_MAIN_CLASS, the array SERVER_JAVA_OPTIONS) into <home>/cutover-systemctl; the neo4j scripts call it as
# CUTOVER_SYSTEMCTL (`stop neo4j`, `start neo4j`, `restart neo4j`, `enable --now neo4j`)
# and the local provider starts and stops the server through it.
#
# The server is one JVM: SERVER_MAIN_CLASS with SERVER_JAVA_OPTIONS, the class and
# options bin/neo4j of that version forks (org.neo4j.server.CommunityEntryPoint on 5.26,
# org.neo4j.server.Neo4jCommunity on 2026.x; see record_server_command in
# scripts/setup-neo4j.sh), started here directly so its pid is the server's (run/neo4j.pid) and nothing
# else holds the instance. It runs in its own session, detached from the caller, and
# without the caller's descriptor 9 (the scripts' instance lock, which a server started
# by a script would otherwise hold for as long as it runs).
#
# Tuned for small servers that start and stop often on a shared machine (tests, the demo,
# the rehearsal rig), never for an AMI: the client compiler only (a third less CPU to
# start), and the class archive `scripts/setup-neo4j.sh` builds beside the version's lib/
# (server-classes.jsa; with it a start takes half the time). NEO4J_SERVER_JAVA_OPTS
# replaces the compiler option (e.g. `-XX:TieredStopAtLevel=4` for a benchmark server);
# without the archive the JVM starts as usual.
set -euo pipefail
: "${NEO4J_HOME:?}" "${JAVA:?}" "${NEO4J_LIB:?}" "${HEAP:?}" "${STOP_GRACE_S:=20}" "${SERVER_MAIN_CLASS:?}"
# SERVER_JAVA_OPTIONS is an array the header sets (possibly empty).
if ! declare -p SERVER_JAVA_OPTIONS >/dev/null 2>&1; then SERVER_JAVA_OPTIONS=(); fi

pid_file="$NEO4J_HOME/run/neo4j.pid"
read -ra tuning <<<"${NEO4J_SERVER_JAVA_OPTS:--XX:TieredStopAtLevel=1}"
class_archive="$(dirname "$NEO4J_LIB")/server-classes.jsa"
if [[ -f $class_archive ]]; then tuning+=("-XX:SharedArchiveFile=$class_archive" -Xshare:auto); fi

# The pid of this home's server, if it runs (a reused pid of another process is not it).
server_pid() {
  local pid
  [[ -s $pid_file ]] || return 1
  pid="$(tr -d ' \n' <"$pid_file")"
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | grep -qxF -- "--home-dir=$NEO4J_HOME" || return 1
  printf '%s\n' "$pid"
}

start() {
  if server_pid >/dev/null; then
    return 0
  fi
  mkdir -p "$NEO4J_HOME/run" "$NEO4J_HOME/logs"
  setsid "$JAVA" "-Xms$HEAP" "-Xmx$HEAP" -XX:+UseSerialGC "${tuning[@]}" "${SERVER_JAVA_OPTIONS[@]}" \
    -cp "$NEO4J_HOME/conf/*:$NEO4J_LIB/*" \
    "$SERVER_MAIN_CLASS" "--home-dir=$NEO4J_HOME" "--config-dir=$NEO4J_HOME/conf" \
    </dev/null >>"$NEO4J_HOME/logs/console.log" 2>&1 9>&- &
  printf '%s\n' "$!" >"$pid_file"
}

stop() {
  local pid waited=0
  if ! pid="$(server_pid)"; then
    rm -f "$pid_file"
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  while kill -0 "$pid" 2>/dev/null && ((waited < STOP_GRACE_S * 10)); do
    sleep 0.1
    waited=$((waited + 1))
  done
  if kill -0 "$pid" 2>/dev/null; then
    echo "neo4j (pid $pid) did not stop within ${STOP_GRACE_S}s; killing it" >&2
    kill -KILL "$pid" 2>/dev/null || true
    waited=0
    while kill -0 "$pid" 2>/dev/null && ((waited < 100)); do
      sleep 0.1
      waited=$((waited + 1))
    done
  fi
  rm -f "$pid_file"
}

args=()
for a in "$@"; do
  case $a in
    --now | --quiet | -q | --no-block) ;;
    *) args+=("$a") ;;
  esac
done
action="${args[0]:-}"
unit="${args[1]:-neo4j}"
if [[ $unit != neo4j && $unit != neo4j.service ]]; then
  echo "cutover-systemctl: only the neo4j unit exists here, not $unit" >&2
  exit 5
fi
case $action in
  start) start ;;
  stop) stop ;;
  restart) stop && start ;;
  enable) if [[ " $* " == *" --now "* ]]; then start; fi ;;
  is-active)
    if server_pid >/dev/null; then echo active; else
      echo inactive
      exit 3
    fi
    ;;
  *)
    echo "cutover-systemctl: unsupported action ${action:-<none>}" >&2
    exit 2
    ;;
esac
