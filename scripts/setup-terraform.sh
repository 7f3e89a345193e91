#!/usr/bin/env bash
# Terraform for the terraform.* step kinds and their tests, and checkov for the static
# check of terraform/ (`make terraform-check`). Idempotent; writes only inside the repository
# (.venv/scan, a virtualenv of its own: checkov's pins clash with moto's and awscli's).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
scan="$root/.venv/scan"
requirements="$root/requirements-scan.txt"
stamp="$scan/.requirements.sha256"
python="${PYTHON:-python3}"

# 1. terraform (or OpenTofu's tofu) on PATH or in .tools/bin.
found=""
for candidate in terraform tofu "$root/.tools/bin/terraform" "$root/.tools/bin/tofu"; do
  if command -v "$candidate" >/dev/null 2>&1; then
    found="$(command -v "$candidate")"
    break
  fi
done
if [ -n "$found" ]; then
  echo "setup: Terraform: $found ($("$found" version 2>/dev/null | head -n1))"
else
  cat >&2 <<'MSG'
setup: neither terraform nor tofu is installed: the terraform_stage tests will fail until one is.
  Install Terraform 1.11.4 from HashiCorp's release (https://releases.hashicorp.com/terraform/1.11.4/,
  check its SHA256SUMS) or OpenTofu (https://opentofu.org/docs/intro/install/), and put it on PATH.
  Building from the Go module proxy does not work: `go install github.com/hashicorp/terraform@v1.11.4`
  and `go install github.com/opentofu/opentofu/cmd/tofu@v1.9.1` both refuse (their go.mod has replace
  directives), and building terraform 1.11.4 inside its module fails on Go 1.26 (`unknown godebug tlskyber`).
MSG
fi

# 2. checkov in .venv/scan.
want="$(sha256sum "$requirements" | cut -d' ' -f1)"
have="$(cat "$stamp" 2>/dev/null || true)"
if [ "$want" = "$have" ] && [ -x "$scan/bin/checkov" ]; then
  echo "setup: .venv/scan (checkov) is up to date"
  exit 0
fi
echo "setup: installing requirements-scan.txt into .venv/scan (checkov; a minute the first time)"
rm -f "$stamp"
[ -x "$scan/bin/python" ] || "$python" -m venv "$scan"
"$scan/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
if [ ! -x "$scan/bin/checkov" ]; then
  echo "setup: checkov is missing from .venv/scan/bin after installing requirements-scan.txt" >&2
  exit 1
fi
echo "$want" >"$stamp"
echo "setup: .venv/scan ready"
