"""Rule runtimes: the run's benchmark files -> figures/runtimes.md."""

from _adapter import setup

with setup(snakemake, uses_torch=False):  # noqa: F821
    from bilevel.experiments.runtimes import write_runtimes

    write_runtimes(snakemake.params.benchmarks, snakemake.output[0])  # noqa: F821
