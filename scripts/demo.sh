#!/usr/bin/env bash
# The master workflow on a fresh machine: install everything, then build the example, list it, push it
# to a local TLS + basic-auth registry and verify the result with independent tools.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
bash scripts/setup.sh
exec .venv/bin/python scripts/demo.py "$@"
