#!/usr/bin/env bash
# Installs the pinned Neo4j of one edition on Amazon Linux 2023. Runs once at bake time
# (through SSM on a temporary builder instance). Idempotent: a re-run after a reboot
# converges. Usage: install.sh community|enterprise
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
edition="${1:?usage: install.sh community|enterprise}"
case "$edition" in
  community | enterprise) ;;
  *) echo "install.sh: unknown edition '$edition' (community or enterprise)" >&2; exit 2 ;;
esac
# shellcheck source-path=SCRIPTDIR source=../versions.env
source "$here/../versions.env"
# shellcheck source-path=SCRIPTDIR source=../community.env
source "$here/../$edition.env"
if [[ $NEO4J_EDITION != "$edition" ]]; then
  echo "install.sh: $edition.env declares NEO4J_EDITION=$NEO4J_EDITION" >&2
  exit 2
fi

dnf install -y "$JAVA_PACKAGE" jq python3 awscli-2 amazon-ssm-agent

if [[ ! -f /etc/yum.repos.d/neo4j.repo ]]; then
  rpm --import https://debian.neo4j.com/neotechnology.gpg.key
  cat >/etc/yum.repos.d/neo4j.repo <<'REPO'
[neo4j]
name=Neo4j RPM Repository
baseurl=https://yum.neo4j.com/stable/5
enabled=1
gpgcheck=1
REPO
fi

if [[ $NEO4J_EDITION == enterprise ]]; then
  package="neo4j-enterprise-$NEO4J_VERSION"
  export NEO4J_ACCEPT_LICENSE_AGREEMENT=yes
else
  package="neo4j-$NEO4J_VERSION"
fi
dnf install -y "$package"
dnf versionlock add "$package" 2>/dev/null || true

# APOC core ships in labs/; enable exactly the matching version.
apoc="/var/lib/neo4j/labs/apoc-$APOC_VERSION-core.jar"
if [[ -f $apoc ]]; then
  cp "$apoc" /var/lib/neo4j/plugins/
  chown neo4j:neo4j "/var/lib/neo4j/plugins/apoc-$APOC_VERSION-core.jar"
fi

# Only root sees other users' process arguments (neo4j-admin set-initial-password takes
# the password as an argument for the seconds it runs).
if ! grep -q 'hidepid=2' /etc/fstab; then
  echo 'proc /proc proc defaults,hidepid=2 0 0' >>/etc/fstab
fi
mount -o remount,hidepid=2 /proc

"$here/configure.sh"

# The cutover release binary, checked against the SHA-256 published beside it.
bin_url="$CUTOVER_RELEASE_URL/v$CUTOVER_VERSION/cutover-x86_64-unknown-linux-gnu"
tmp_bin="$(mktemp)"
curl -fsSL --retry 3 -o "$tmp_bin" "$bin_url"
expected="$(curl -fsSL --retry 3 "$bin_url.sha256" | cut -d' ' -f1)"
actual="$(sha256sum "$tmp_bin" | cut -d' ' -f1)"
if [[ -z $expected || $expected != "$actual" ]]; then
  echo "install.sh: cutover $CUTOVER_VERSION checksum mismatch (expected '$expected', got '$actual')" >&2
  rm -f "$tmp_bin"
  exit 1
fi
install -m 0755 "$tmp_bin" /usr/local/bin/cutover
rm -f "$tmp_bin"
systemctl enable amazon-ssm-agent
# Neo4j is neither enabled nor started: an enabled service would start at the first boot
# of every instance made from this image, with the default password. cutover's
# set-initial-password script sets the password from Secrets Manager and then runs
# `systemctl enable --now neo4j` (compute.provision does this before the instance counts
# as ready).
systemctl disable neo4j 2>/dev/null || true
