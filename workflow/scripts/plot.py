"""Rule plot: an experiment's result CSVs -> aggregate CSV (mean and spread over seeds), the summary tables
figures/tables/<experiment>.summary.{md,tex}, and the figure (PDF + PNG) drawn from the aggregate."""

from _adapter import setup

with setup(snakemake, uses_torch=False):  # noqa: F821
    from bilevel.experiments.pipeline import aggregate_files, plot_files, write_summary
    from bilevel.results import read_results

    out = snakemake.output  # noqa: F821
    experiment = snakemake.wildcards.experiment  # noqa: F821
    inputs = list(snakemake.input)  # noqa: F821
    rows = read_results(inputs)  # read once for the aggregate and the summary
    aggregate_files(inputs, out.csv, rows)
    write_summary(experiment, inputs, out.md, out.tex, snakemake.params.section, rows)  # noqa: F821
    plot_files(snakemake.config, experiment, out.csv, [out.pdf, out.png])  # noqa: F821
