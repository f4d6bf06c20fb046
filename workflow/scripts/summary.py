"""Rule summary: an experiment's per-seed results -> figures/tables/<experiment>.summary.{md,tex}."""

from _adapter import setup

with setup(snakemake):  # noqa: F821
    from bilevel.experiments.pipeline import write_summary

    write_summary(snakemake.wildcards.experiment, list(snakemake.input), snakemake.output.md,  # noqa: F821
                  snakemake.output.tex, snakemake.params.section)  # noqa: F821
