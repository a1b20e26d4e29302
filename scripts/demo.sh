#!/usr/bin/env bash
# One command: install, build the demo district, take it through the whole workflow
# (import, review, three signatures, issue, submission to the bundled portal), then open
# the dashboard on http://127.0.0.1:8501 (Ctrl+C to stop).
# Extra arguments go to `hocba demo` (e.g. --schools 3 --pupils-per-school 100).
# HOCBA_DEMO_NO_DASHBOARD=1 stops after the demo (CI, scripts).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh
.venv/bin/hocba demo "$@"
if [ -z "${HOCBA_DEMO_NO_DASHBOARD:-}" ]; then
  echo "Đăng nhập bằng tài khoản mẫu, mật khẩu hocba-demo (ví dụ dh01.ht, phong.dh, dh01.gv1a)."
  exec .venv/bin/hocba dashboard
fi
