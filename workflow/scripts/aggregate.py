"""Rule aggregate: per-seed CSVs -> aggregate CSV (mean and spread over seeds) and the experiment's summary
tables figures/tables/<experiment>.summary.{md,tex}."""

from _adapter import setup

with setup(snakemake):  # noqa: F821
    from bilevel.experiments.pipeline import aggregate_files, write_summary
    from bilevel.results import read_results

    out = snakemake.output  # noqa: F821
    inputs = list(snakemake.input)  # noqa: F821
    rows = read_results(inputs)  # read once for both
    aggregate_files(inputs, out.csv, rows)
    write_summary(snakemake.wildcards.experiment, inputs, out.md, out.tex, snakemake.params.section, rows)  # noqa: F821
