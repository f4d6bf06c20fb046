"""Rule tune_job: one (experiment, method, grid cell, tuning seed) job -> result CSV + provenance."""

from _adapter import setup

with setup(snakemake):  # noqa: F821
    from bilevel.experiments.pipeline import execute_tuning_job

    wc = snakemake.wildcards  # noqa: F821
    execute_tuning_job(snakemake.config, wc.experiment, wc.method, wc.cell, int(wc.seed),  # noqa: F821
                       snakemake.output.csv, progress=True)  # noqa: F821
