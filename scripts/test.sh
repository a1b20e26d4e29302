#!/usr/bin/env bash
# One command: install everything (system packages included) and run the test suite
# against a real PostgreSQL (embedded, or HOCBA_DATABASE_URL when set).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh
.venv/bin/ruff check .
.venv/bin/mypy  # configuration in pyproject.toml: hocba/, with its burn-down list
set +e
if [ $# -eq 0 ]; then
  # one embedded PostgreSQL and one Prefect harness per worker; a schema per test
  set -- -q -n auto --maxprocesses 4
fi
.venv/bin/python -m pytest "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "pytest: no test collected" >&2
  exit 1
fi
exit "$rc"
