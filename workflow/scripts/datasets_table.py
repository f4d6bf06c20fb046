"""Rule datasets_table: the fetched datasets' records -> figures/datasets.md."""

from _adapter import setup

with setup(snakemake, uses_torch=False):  # noqa: F821
    from bilevel.experiments.pipeline import write_datasets_table

    write_datasets_table(list(snakemake.input), snakemake.output[0])  # noqa: F821
