#!/usr/bin/env bash
# The project's test command: set up (idempotent), lint, type-check, run the tests except those marked slow.
# Extra arguments go to pytest (e.g. `bash scripts/test.sh -k registry`).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

bash scripts/setup.sh
echo "== ruff check" >&2
.venv/bin/ruff check
echo "== mypy" >&2
.venv/bin/mypy
echo "== pytest" >&2
rc=0
.venv/bin/pytest -q -m 'not slow' "$@" || rc=$?
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests: that is a failure" >&2
  exit 1
fi
exit "$rc"
