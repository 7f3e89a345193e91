#!/usr/bin/env bash
# Installs the pinned Neo4j on Amazon Linux 2023. Runs once at bake time (through SSM on
# a temporary builder instance). Idempotent: a re-run after a reboot converges.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=../versions.env
source "$here/../versions.env"

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
systemctl enable amazon-ssm-agent
# Neo4j is neither enabled nor started: an enabled service would start at the first boot
# of every instance made from this image, with the default password. cutover's
# set-initial-password script sets the password from Secrets Manager and then runs
# `systemctl enable --now neo4j` (compute.provision does this before the instance counts
# as ready).
systemctl disable neo4j 2>/dev/null || true
