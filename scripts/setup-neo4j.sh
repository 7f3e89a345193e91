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

# assemble VERSION JAVA_HOME
assemble() {
  local version=$1 java_home=$2 home="$tools/neo4j/$1" stamp work
  stamp="$version $(sha256sum "$root/scripts/setup-neo4j.sh" | cut -c1-16) $java_home"
  if [[ -f $home/.complete && $(cat "$home/.complete") == "$stamp" ]]; then
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
  local entry
  for entry in neo4j:Neo4jCommand neo4j-admin:Neo4jAdminCommand; do
    cat >"$home/bin/${entry%%:*}" <<EOF
#!/usr/bin/env bash
# bin/${entry%%:*} of Neo4j Community $version, assembled by scripts/setup-neo4j.sh.
# Needs NEO4J_HOME (a server home with this lib/ or a link to it) and NEO4J_CONF.
set -euo pipefail
: "\${NEO4J_HOME:?set NEO4J_HOME to the server home}" "\${NEO4J_CONF:=\$NEO4J_HOME/conf}"
export NEO4J_HOME NEO4J_CONF JAVA_HOME="$java_home"
exec "$java_home/bin/java" -cp "$home/lib/*" org.neo4j.server.startup.${entry##*:} "\$@"
EOF
    chmod 755 "$home/bin/${entry%%:*}"
  done
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
