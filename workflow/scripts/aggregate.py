"""Rule aggregate: per-seed CSVs -> aggregate CSV (mean and spread over seeds)."""

from _adapter import setup

with setup(snakemake):  # noqa: F821
    from bilevel.experiments.pipeline import aggregate_files

    aggregate_files(list(snakemake.input), snakemake.output.csv)  # noqa: F821
