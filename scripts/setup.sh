#!/usr/bin/env bash
# Create (or refresh) the virtual environment .venv with the pinned requirements and the package.
# Idempotent: does nothing when .venv is already up to date with requirements.txt and pyproject.toml.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
stamp="$VENV/.bilevel-setup"
want=$(cat requirements.txt requirements-nodeps.txt pyproject.toml | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$VENV/bin/python" ]; then
  exit 0
fi
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "setup: Python >= 3.11 is required (found $("$PYTHON" --version 2>&1)); set PYTHON=..." >&2
  exit 1
fi
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
log=$(mktemp)
echo "setup: installing pinned requirements into $VENV (a few minutes the first time)..." >&2
# torch first and alone, pinned: nothing may resolve it to a newer (CUDA) build afterwards.
if ! { "$VENV/bin/pip" install --disable-pip-version-check -q "torch==2.13.0" \
    && "$VENV/bin/pip" install --disable-pip-version-check -q -r requirements.txt \
    && "$VENV/bin/pip" install --disable-pip-version-check -q --no-deps -r requirements-nodeps.txt \
    && "$VENV/bin/pip" install --disable-pip-version-check -q --no-deps -e . ; } >"$log" 2>&1; then
  grep -v "^WARNING: Location" "$log" | tail -n 30 >&2
  echo "setup: pip install failed (full log: $log)" >&2
  exit 1
fi
rm -f "$log"
"$VENV/bin/python" -c 'import torch, sys; v = torch.__version__.split("+")[0]; sys.exit(0 if v == "2.13.0" else f"setup: torch {v} installed, 2.13.0 required")'
echo "$want" > "$stamp"
echo "setup: $VENV ready" >&2
