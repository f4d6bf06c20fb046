"""Rule select: an experiment's tuning jobs -> results/tuning/<experiment>/selection.json."""

from _adapter import setup

with setup(snakemake, uses_torch=False):  # noqa: F821
    from bilevel.experiments.pipeline import write_selection

    write_selection(snakemake.config, snakemake.wildcards.experiment, list(snakemake.input), snakemake.output[0])  # noqa: F821
