"""Rule table: a paper table's data file -> figures/tables/<name>.{md,tex}."""

from _adapter import setup

with setup(snakemake, uses_torch=False):  # noqa: F821
    from bilevel.experiments.pipeline import write_table

    write_table(snakemake.wildcards.table, snakemake.output.md, snakemake.output.tex)  # noqa: F821
