#!/usr/bin/env bash
# The whole test suite (README command 2, and what .ci/run runs):
# unit tests, ruff, snakemake --lint, snakefmt --check, and the smoke workflow (.test/ config).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
start=$SECONDS
step() { echo; echo "== $* ($((SECONDS - start)) s)"; }

step "ruff check"
ruff check src tests workflow benchmarks
step "snakemake --lint"
snakemake --lint --configfile .test/config/config.yaml
step "snakefmt --check"
snakefmt --check Snakefile workflow/rules
step "smoke workflow: every rule on the .test/ config"
rm -rf .test/results .test/figures .test/logs .test/data
snakemake --cores 2 --configfile .test/config/config.yaml --quiet rules
# the download target too (its smoke list resolves locally: seed file or exact rebuild, never the network)
snakemake --cores 2 --configfile .test/config/config.yaml --quiet rules -- download
for f in .test/figures/quadratic_hypergradient.png .test/figures/logistic_hypergradient.png .test/figures/claims.md \
  .test/figures/fsba_fig1_minimax.png .test/figures/fsba_fig6a_period.png .test/figures/tables/fsba_complexity.md \
  .test/figures/tables/fsba_complexity.tex .test/figures/datasets.md .test/figures/notebooks/baselines.ipynb \
  .test/figures/notebooks/fsba.ipynb .test/figures/runtimes.md .test/results/downloads/breast-cancer.json \
  .test/figures/zoba_quadratic.png .test/figures/zoba_dimensions.png .test/figures/zoba_attack.png \
  .test/figures/tables/zoba_complexity.md .test/figures/tables/zoba_quadratic.summary.md \
  .test/figures/tables/zoba_attack.summary.tex .test/figures/notebooks/zoba.ipynb .test/results/models/zoba_attack.json \
  .test/figures/fsba_fig2_cleaning.png .test/figures/fsba_fig3_regularization.png \
  .test/figures/fsba_fig5_hypercleaning.png .test/figures/fsba_fig6b_period.png .test/figures/fsba_fig7_penalty.png \
  .test/figures/fsba_fig8_cubic.png .test/figures/tables/fsba_fig2_cleaning.summary.md \
  .test/figures/sogd_regret.png .test/figures/tables/sogd_comparison.md .test/figures/notebooks/sogd.ipynb \
  .test/figures/sogd_attack.png .test/figures/sogd_loss_tuning.png .test/figures/sogd_sweeps.png \
  .test/figures/tables/sogd_sweeps.summary.md .test/figures/tables/sogd_loss_tuning.summary.tex \
  .test/results/models/sogd_attack.json .test/figures/fsba_fig4_meta.png \
  .test/figures/tables/fsba_fig4_meta.summary.md; do
  [ -s "$f" ] || { echo "smoke workflow did not write $f" >&2; exit 1; }
done
grep -q ',diverged$' .test/results/quadratic_hypergradient/aid-diverging/seed1.csv \
  || { echo "smoke workflow: the diverging run was not marked diverged" >&2; exit 1; }
# GPU-rule jobs remove their checkpoints once complete
! ls -d .test/results/fsba_fig4_meta/*/seed*.checkpoints/*.pt 2>/dev/null \
  || { echo "smoke workflow: finished few-shot jobs left checkpoints behind" >&2; exit 1; }
step "pytest"
pytest -q
echo "== all checks passed in $((SECONDS - start)) s"
