#!/usr/bin/env bash
# Creates the project's virtualenv (.venv in the repository root) and installs
# requirements.txt into it. Idempotent: reinstalls only when requirements.txt changed
# (its SHA-256 is stamped in .venv/.requirements.sha256); then assembles the pinned Neo4j
# Community releases from Maven Central (scripts/setup-neo4j.sh, into .tools/). Writes
# nothing outside the repository except pip's cache. No sudo.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
requirements="$root/requirements.txt"
stamp="$venv/.requirements.sha256"
python="${PYTHON:-python3}"

if ! command -v "$python" >/dev/null 2>&1; then
  echo "setup: $python not found; install Python 3.10+ with the venv module (e.g. apt-get install python3 python3-venv) and run make setup again" >&2
  exit 1
fi

if [ ! -x "$venv/bin/python" ]; then
  echo "setup: creating $venv"
  if ! "$python" -m venv "$venv"; then
    rm -rf "$venv"
    echo "setup: '$python -m venv' failed; install the venv module (e.g. apt-get install python3-venv) and run make setup again" >&2
    exit 1
  fi
fi

# Neo4j comes from Maven Central, independent of the venv: assemble it at the same time
# (network-bound either way) and wait for it before reporting.
"$root/scripts/setup-neo4j.sh" &
neo4j_setup=$!
# A failure below still waits for it, so nothing outlives setup.
trap 'wait "$neo4j_setup" 2>/dev/null || true' EXIT
finish() {
  if ! wait "$neo4j_setup"; then
    echo "setup: assembling Neo4j failed (see the setup-neo4j lines above)" >&2
    exit 1
  fi
}

want="$(sha256sum "$requirements" | cut -d' ' -f1)"
have="$(cat "$stamp" 2>/dev/null || true)"
if [ "$want" = "$have" ]; then
  echo "setup: .venv is up to date"
  "$root/scripts/setup-terraform.sh"
  finish
  exit 0
fi

echo "setup: installing requirements.txt into .venv (this takes a minute the first time)"
rm -f "$stamp"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"

for tool in moto_server aws shellcheck parliament actionlint zizmor; do
  if [ ! -x "$venv/bin/$tool" ]; then
    echo "setup: $tool is missing from .venv/bin after installing requirements.txt" >&2
    exit 1
  fi
done
if ! ls -d "$venv"/lib/python3*/site-packages/arcadedb_embedded/jre/bin/java >/dev/null 2>&1; then
  echo "setup: arcadedb_embedded has no bundled jre/bin/java; check the arcadedb-embedded pin" >&2
  exit 1
fi

echo "$want" >"$stamp"
echo "setup: .venv ready"

# Terraform (checked) and checkov (.venv/scan).
"$root/scripts/setup-terraform.sh"

# Real Neo4j Community servers, assembled from Maven Central (.tools/neo4j/<version>).
finish
