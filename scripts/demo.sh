#!/usr/bin/env bash
# One command: install, build the demo district and take it through the workflow.
# Extra arguments go to `hocba demo` (e.g. --schools 3 --pupils-per-school 100).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh
.venv/bin/hocba demo "$@"
