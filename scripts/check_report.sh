#!/usr/bin/env bash
# Build the Snakemake HTML report of a finished run and check that it renders in headless Chromium:
# the rendered DOM must list the report's categories, and a screenshot is written beside the report.
# Usage: bash scripts/check_report.sh [CONFIGFILE] [OUT.html]   (default: the default config, report.html)
# Needs chromium (scripts/system_deps.sh chromium installs it as root). Run by scripts/test.sh on the smoke run.
set -euo pipefail
cd "$(dirname "$0")/.."
config=${1:-}
out=${2:-report.html}
export PATH="$PWD/.venv/bin:$PATH"
command -v chromium >/dev/null || { echo "check_report: chromium not found (apt-get install chromium)" >&2; exit 2; }
args=()
[ -n "$config" ] && args=(--configfile "$config")
snakemake "${args[@]}" --report "$out" >/dev/null 2>&1 || { echo "check_report: snakemake --report failed" >&2; exit 1; }
url="file://$(realpath "$out")"
flags=(--headless --no-sandbox --disable-gpu --hide-scrollbars --virtual-time-budget=15000)
dom=$(chromium "${flags[@]}" --dump-dom "$url" 2>/dev/null)
for category in figures claims datasets tables runtimes provenance; do
  grep -qi "$category" <<<"$dom" || { echo "check_report: category '$category' not rendered in $out" >&2; exit 1; }
done
chromium "${flags[@]}" --window-size=1400,1000 --screenshot="${out%.html}.png" "$url" >/dev/null 2>&1
python - "${out%.html}.png" <<'PY'
import sys
from PIL import Image
img = Image.open(sys.argv[1]).convert("RGB")
colours = len(img.getcolors(maxcolors=1 << 24) or [])
assert img.size == (1400, 1000) and colours > 50, f"screenshot looks blank ({colours} colours)"
print(f"check_report: {sys.argv[1]} rendered, {colours} colours; every category present")
PY
