#!/usr/bin/env bash
# Make the system tools of the test command's system checks available (Debian/Ubuntu packages):
#   chromium  -> renders the HTML report headless (scripts/check_report.sh)
#   slurm     -> slurmctld, slurmd, sbatch and munged for the single-node SLURM test (tests/test_slurm.py)
# Usage: bash scripts/system_deps.sh chromium|slurm ...
# Installs what is missing with apt-get when run as root; otherwise names the packages to install.
# Exit 0 when every requested tool is present afterwards, 1 otherwise.
set -uo pipefail
want=()
for group in "$@"; do
  case "$group" in
    chromium) want+=("chromium:chromium") ;;
    slurm) want+=("slurmctld:slurm-wlm" "slurmd:slurm-wlm" "sbatch:slurm-wlm" "munged:munge") ;;
    *) echo "system_deps: unknown group '$group' (chromium, slurm)" >&2; exit 2 ;;
  esac
done
missing_packages() {
  local entry tool pkgs=()
  for entry in "${want[@]}"; do
    tool=${entry%%:*}
    command -v "$tool" >/dev/null 2>&1 || [ -x "/usr/sbin/$tool" ] || pkgs+=("${entry#*:}")
  done
  printf '%s\n' "${pkgs[@]}" | sort -u | tr '\n' ' '
}
packages=$(missing_packages)
[ -z "${packages// /}" ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "system_deps: missing $packages; install them (Debian: sudo apt-get install -y $packages)" >&2
  exit 1
fi
echo "system_deps: installing $packages with apt-get..." >&2
log=$(mktemp)
export DEBIAN_FRONTEND=noninteractive
# shellcheck disable=SC2086  # one word per package
if ! apt-get install -y -q --no-install-recommends $packages >"$log" 2>&1; then
  apt-get update -q >>"$log" 2>&1
  # shellcheck disable=SC2086
  apt-get install -y -q --no-install-recommends $packages >>"$log" 2>&1
fi
packages=$(missing_packages)
if [ -n "${packages// /}" ]; then
  tail -n 20 "$log" >&2
  echo "system_deps: could not install $packages (apt log: $log)" >&2
  exit 1
fi
rm -f "$log"
echo "system_deps: installed" >&2
