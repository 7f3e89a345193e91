#!/usr/bin/env bash
# Assembles the pinned Neo4j Community releases (scripts/neo4j-versions.env) from Maven
# Central into .tools/neo4j/<version>/ (git-ignored), each with the Java it needs:
#
#   .tools/neo4j/<version>/lib/        the jars of the distribution's lib/ (org.neo4j:neo4j
#                                      and org.neo4j.app:neo4j-server with their runtime
#                                      dependency tree)
#   .tools/neo4j/<version>/java-home   the JAVA_HOME that runs this version
#   .tools/neo4j/<version>/bin/neo4j, bin/neo4j-admin
#                                      the real entry points (org.neo4j.server.startup.
#                                      Neo4jCommand / Neo4jAdminCommand) on that Java; they
#                                      want NEO4J_HOME and NEO4J_CONF like the tarball's
#
# The tarball is not on Maven Central, so there is no conf/ here: every server home
# (tests, the local provider) writes its own neo4j.conf. Maven's downloads go to
# .tools/m2, so nothing outside the repository is touched and a fresh clone fetches
# everything anew. Idempotent: a version whose stamp matches is not assembled again.
#
# Environment: JAVA17_HOME / JAVA21_HOME override the Java found for each version;
# MVN overrides the Maven command.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/neo4j-versions.env
source "$root/scripts/neo4j-versions.env"
tools="$root/.tools"
mvn="${MVN:-mvn}"

fail() {
  echo "setup-neo4j: $*" >&2
  exit 1
}

# java_major JAVA_HOME: the major version that java reports (17, 21, 25, ...).
java_major() {
  "$1/bin/java" -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1
}

# find_java MIN_MAJOR MAX_MAJOR OVERRIDE: prints a JAVA_HOME whose major version lies in
# [MIN, MAX]: OVERRIDE when it is set (and must fit), else the lowest fitting major among
# JAVA_HOME and /usr/lib/jvm/*.
find_java() {
  local min=$1 max=$2 override=$3 candidate major best="" best_major=999
  if [[ -n $override ]]; then
    major="$(java_major "$override" 2>/dev/null || true)"
    [[ -n $major ]] && ((major >= min && major <= max)) && echo "$override" && return 0
    return 1
  fi
  for candidate in "${JAVA_HOME:-}" /usr/lib/jvm/*; do
    [[ -n $candidate && -x $candidate/bin/java ]] || continue
    major="$(java_major "$candidate")"
    if [[ -n $major ]] && ((major >= min && major <= max && major < best_major)); then
      best="$candidate"
      best_major=$major
    fi
  done
  [[ -n $best ]] && echo "$best"
}

# write_launchers VERSION JAVA_HOME HOME: bin/neo4j and bin/neo4j-admin, which want
# NEO4J_HOME (a server home with this lib/ or a link to it) and NEO4J_CONF like the
# tarball's. Written on every run, so a change here needs no new download.
#   bin/neo4j runs the real bootloader, org.neo4j.server.startup.Neo4jCommand, which forks
#   the server JVM (org.neo4j.server.CommunityEntryPoint) with the JVM options it derives
#   from neo4j.conf.
#   bin/neo4j-admin runs org.neo4j.cli.AdminTool (the implementation of every neo4j-admin
#   command) directly, in one JVM. The tarball's neo4j-admin runs the bootloader
#   Neo4jAdminCommand, which only computes JVM options and forks AdminTool: a second JVM
#   (measured under load: a dump took 14-15 s through the bootloader, 6 s direct, with a
#   third of the CPU). The options are the ones that bootloader passes, read off its
#   `--verbose` "Executing command line" for both pinned versions: the classpath
#   `$NEO4J_CONF/*:lib/*`, -Dfile.encoding=UTF-8, -Xmx from server.memory.heap.max_size,
#   and --sun-misc-unsafe-memory-access=allow on Java 24 and newer. Added for short runs
#   on small local stores: C1 only and the serial collector (NEO4J_ADMIN_JAVA_OPTS
#   replaces those two).
write_launchers() {
  local version=$1 java_home=$2 home=$3 unsafe=""
  if (($(java_major "$java_home") >= 24)); then
    unsafe="--sun-misc-unsafe-memory-access=allow "
  fi
  mkdir -p "$home/bin"
  cat >"$home/bin/neo4j" <<EOF
#!/usr/bin/env bash
# bin/neo4j of Neo4j Community $version, assembled by scripts/setup-neo4j.sh: the real
# bootloader (org.neo4j.server.startup.Neo4jCommand). Needs NEO4J_HOME and NEO4J_CONF.
set -euo pipefail
: "\${NEO4J_HOME:?set NEO4J_HOME to the server home}" "\${NEO4J_CONF:=\$NEO4J_HOME/conf}"
export NEO4J_HOME NEO4J_CONF JAVA_HOME="$java_home"
exec "$java_home/bin/java" -cp "$home/lib/*" org.neo4j.server.startup.Neo4jCommand "\$@"
EOF
  cat >"$home/bin/neo4j-admin" <<EOF
#!/usr/bin/env bash
# bin/neo4j-admin of Neo4j Community $version, assembled by scripts/setup-neo4j.sh:
# org.neo4j.cli.AdminTool in one JVM, with the options the bootloader would pass (see
# write_launchers in scripts/setup-neo4j.sh). Needs NEO4J_HOME and NEO4J_CONF.
set -euo pipefail
: "\${NEO4J_HOME:?set NEO4J_HOME to the server home}" "\${NEO4J_CONF:=\$NEO4J_HOME/conf}"
export NEO4J_HOME NEO4J_CONF JAVA_HOME="$java_home"
heap=()
max="\$(sed -n 's/^server\.memory\.heap\.max_size=\([0-9]*[kKmMgG]\{0,1\}\)[[:space:]]*\$/\1/p' "\$NEO4J_CONF/neo4j.conf" 2>/dev/null | tail -1)"
if [[ -n \$max ]]; then heap=("-Xmx\$max"); fi
read -ra opts <<<"\${NEO4J_ADMIN_JAVA_OPTS:--XX:TieredStopAtLevel=1 -XX:+UseSerialGC}"
exec "$java_home/bin/java" -cp "\$NEO4J_CONF/*:$home/lib/*" ${unsafe}-Dfile.encoding=UTF-8 "\${heap[@]}" "\${opts[@]}" org.neo4j.cli.AdminTool "\$@"
EOF
  chmod 755 "$home/bin/neo4j" "$home/bin/neo4j-admin"
}

# record_server_command HOME: reads the server's command line off the real bootloader
# (`bin/neo4j console --dry-run`, in a scratch home) and records its main class and JVM
# options (without the heap, which each instance sets) in HOME/server-main-class and
# HOME/server-java-options, one option a line. The local provider starts the server JVM
# with them directly. They differ by version: 5.26 runs
# org.neo4j.server.CommunityEntryPoint, 2026.08 org.neo4j.server.Neo4jCommunity with
# --sun-misc-unsafe-memory-access=allow on Java 25.
record_server_command() {
  local home=$1 scratch line main="" skip=false word i
  local -a words opts=()
  scratch="$(mktemp -d)"
  mkdir -p "$scratch/conf"
  ln -s "$home/lib" "$scratch/lib"
  : >"$scratch/conf/neo4j.conf"
  line="$(NEO4J_HOME="$scratch" NEO4J_CONF="$scratch/conf" "$home/bin/neo4j" console --dry-run 2>/dev/null | tail -1)" || true
  rm -rf "$scratch"
  read -ra words <<<"$line"
  for ((i = 1; i < ${#words[@]}; i++)); do
    word=${words[i]}
    if $skip; then
      skip=false
      continue
    fi
    case $word in
    -cp | -classpath) skip=true ;;
    -Xms* | -Xmx*) ;;
    --home-dir=*) break ;;
    -*) opts+=("$word") ;;
    *) main=$word ;;
    esac
  done
  [[ $main == org.neo4j.* ]] ||
    fail "could not read the server's main class off '$home/bin/neo4j console --dry-run' (it printed: ${line:-nothing})"
  printf '%s\n' "$main" >"$home/server-main-class"
  printf '%s\n' "${opts[@]}" >"$home/server-java-options"
}

# write_class_archive HOME: HOME/server-classes.jsa, a class-data-sharing archive of the
# classes a server loads while it starts and stops, which the local servers map instead of
# loading and verifying those classes again (neo4j-service.sh; the test harness): a start
# takes 3.8-4.9 s instead of 6.7-7.8 s and a third of the CPU. Made once per installation
# by one throw-away server (in a scratch home, Bolt on an ephemeral loopback port, with the
# options neo4j-service.sh uses), about 15 s. Without it servers start as before, so a
# failure here is a warning, not an error.
write_class_archive() {
  local home=$1 scratch java pid i main
  local -a opts=()
  [[ -f $home/server-classes.jsa ]] && return 0
  java="$(cat "$home/java-home")/bin/java"
  main="$(cat "$home/server-main-class")"
  mapfile -t opts <"$home/server-java-options"
  scratch="$(mktemp -d)"
  mkdir -p "$scratch/conf" "$scratch/logs"
  printf '%s\n' server.default_listen_address=127.0.0.1 server.bolt.listen_address=127.0.0.1:0 \
    server.http.enabled=false server.https.enabled=false server.memory.heap.max_size=256m \
    server.memory.pagecache.size=16m server.directories.logs=logs dbms.usage_report.enabled=false \
    internal.dbms.bolt.netty_server_shutdown_quiet_period=0 internal.dbms.bolt.netty_server_shutdown_timeout=2 \
    >"$scratch/conf/neo4j.conf"
  "$java" -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 "-XX:ArchiveClassesAtExit=$home/server-classes.jsa.part" \
    "${opts[@]}" -cp "$scratch/conf/*:$home/lib/*" "$main" "--home-dir=$scratch" "--config-dir=$scratch/conf" \
    </dev/null >"$scratch/logs/console.log" 2>&1 &
  pid=$!
  for ((i = 0; i < 1200; i++)); do
    grep -q 'Started\.' "$scratch/logs/neo4j.log" 2>/dev/null && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 600; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  if [[ -s $home/server-classes.jsa.part ]] && grep -q 'Started\.' "$scratch/logs/neo4j.log" 2>/dev/null; then
    mv "$home/server-classes.jsa.part" "$home/server-classes.jsa"
    echo "setup-neo4j: class archive for Neo4j servers: $home/server-classes.jsa ($(du -m "$home/server-classes.jsa" | cut -f1) MiB)"
  else
    rm -f "$home/server-classes.jsa.part"
    echo "setup-neo4j: WARNING: no class archive for $home (servers will start without it, about twice as slowly); the throw-away server said:" >&2
    tail -5 "$scratch/logs/console.log" "$scratch/logs/neo4j.log" >&2 2>/dev/null || true
  fi
  rm -rf "$scratch"
}

# assemble VERSION JAVA_HOME
assemble() {
  local version=$1 java_home=$2 home="$tools/neo4j/$1" stamp work
  # The stamp covers this function (how lib/ is assembled), not the launchers.
  stamp="$version $(declare -f assemble | sha256sum | cut -c1-16) $java_home"
  if [[ -f $home/.complete && $(cat "$home/.complete") == "$stamp" ]]; then
    write_launchers "$version" "$java_home" "$home"
    write_class_archive "$home"
    echo "setup-neo4j: Neo4j $version is assembled ($home)"
    return
  fi
  echo "setup-neo4j: assembling Neo4j Community $version from Maven Central (Java $(java_major "$java_home"))"
  rm -rf "$home"
  work="$(mktemp -d)"
  mkdir -p "$home/bin"
  cat >"$work/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>cutover.local</groupId>
  <artifactId>neo4j-community-lib</artifactId>
  <version>$version</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.neo4j</groupId><artifactId>neo4j</artifactId><version>$version</version></dependency>
    <dependency><groupId>org.neo4j.app</groupId><artifactId>neo4j-server</artifactId><version>$version</version></dependency>
  </dependencies>
</project>
EOF
  if ! (cd "$work" && JAVA_HOME="$java_home" "$mvn" -q -B -Dmaven.repo.local="$tools/m2" \
    dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$home/lib") >"$work/mvn.log" 2>&1; then
    tail -20 "$work/mvn.log" >&2
    rm -rf "$home" "$work"
    fail "Maven could not fetch org.neo4j:neo4j:$version and its dependencies (log above); check that Maven Central is reachable (mvn dependency:get -Dartifact=org.neo4j:neo4j:$version) and run make setup again"
  fi
  rm -rf "$work"
  for jar in "neo4j-$version.jar" "neo4j-server-$version.jar" "neo4j-dbms-$version.jar" \
    "neo4j-command-line-$version.jar" "neo4j-consistency-check-$version.jar" "neo4j-bolt-$version.jar"; do
    [[ -f $home/lib/$jar ]] || fail "Neo4j $version: $jar is missing from the assembled lib/ (an incomplete dependency tree)"
  done
  echo "$java_home" >"$home/java-home"
  write_launchers "$version" "$java_home" "$home"
  record_server_command "$home"
  write_class_archive "$home"
  echo "$stamp" >"$home/.complete"
  echo "setup-neo4j: Neo4j $version ready in $home ($(find "$home/lib" -name '*.jar' | wc -l) jars)"
}

command -v "$mvn" >/dev/null 2>&1 ||
  fail "Maven ($mvn) is not installed; it fetches Neo4j from Maven Central: apt-get install maven (or set MVN=/path/to/mvn), then run make setup again"

java17="$(find_java 17 21 "${JAVA17_HOME:-}")" ||
  fail "no Java 17 or 21 found (JAVA17_HOME, JAVA_HOME, /usr/lib/jvm/*) for Neo4j $NEO4J_LTS: apt-get install openjdk-17-jre-headless (or set JAVA17_HOME), then run make setup again"
java21="$(find_java 21 99 "${JAVA21_HOME:-}")" ||
  fail "no Java 21 or newer found (JAVA21_HOME, JAVA_HOME, /usr/lib/jvm/*) for Neo4j $NEO4J_NEXT: install a Temurin 21/25 JDK (or set JAVA21_HOME), then run make setup again"

assemble "$NEO4J_LTS" "$java17"
assemble "$NEO4J_NEXT" "$java21"
