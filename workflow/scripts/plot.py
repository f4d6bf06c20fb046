"""Rule plot: aggregate CSV -> the experiment's figure (PDF + PNG)."""

from _adapter import setup

with setup(snakemake):  # noqa: F821
    from bilevel.experiments.pipeline import plot_files

    plot_files(snakemake.config, snakemake.wildcards.experiment, snakemake.input[0],  # noqa: F821
               [snakemake.output.pdf, snakemake.output.png])  # noqa: F821
