"""Rule run_job: one (experiment, method, seed list) job -> result CSV + provenance."""

from _adapter import setup

with setup(snakemake):  # noqa: F821
    from bilevel.experiments.pipeline import execute_job, parse_batch

    wc = snakemake.wildcards  # noqa: F821
    selection = list(snakemake.input.selection)  # noqa: F821
    execute_job(snakemake.config, wc.experiment, wc.method, parse_batch(wc.seeds), snakemake.output.csv, progress=True,  # noqa: F821
                selection=selection[0] if selection else None)
