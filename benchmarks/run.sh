#!/usr/bin/env bash
# Run the benchmarks on demand (not part of CI): bash benchmarks/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# --no-deps: torchopt would otherwise be free to pull another torch build.
.venv/bin/pip install --disable-pip-version-check -q --no-deps -r benchmarks/requirements.txt 2>&1 | grep -v "^WARNING: Location" || true
.venv/bin/python benchmarks/hypergradient_libraries.py "$@"
# zeroth-order step overhead: time per function value in a step against a bare vectorized call
.venv/bin/python benchmarks/zo_overhead.py
