#!/usr/bin/env bash
# Install what hocba needs on a fresh Debian/Ubuntu machine: the system tools used by the
# tests and the verification commands, then a virtual environment with the project.
# Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages: xmlsec1 (independent XML-signature verifier), poppler-utils (pdfsig,
# pdftoppm), softhsm2 (PKCS#11 token for tests), chromium (dashboard smoke tests).
PKGS=(xmlsec1 poppler-utils softhsm2 chromium)
missing=()
for p in "${PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  if command -v apt-get >/dev/null 2>&1; then
    echo "Cài gói hệ thống: ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "Thiếu gói hệ thống: ${missing[*]} (cần cài thủ công trên máy không dùng apt)" >&2
  fi
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip setuptools wheel 2>&1 | grep -v "^WARNING: Location" || true
.venv/bin/python -m pip install -q -e ".[test]" 2>&1 | grep -v "^WARNING: Location" || true
.venv/bin/python -c "import hocba.cli" # fails loudly if the install did not work
