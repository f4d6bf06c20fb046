"""Rule tune: every rebuilt selection -> results/tuning/check.md (equal to the committed one?)."""

from pathlib import Path

from _adapter import setup

with setup(snakemake, uses_torch=False):  # noqa: F821
    from bilevel.experiments.pipeline import compare_selections

    built = {Path(p).parent.name: p for p in snakemake.input}  # noqa: F821
    compare_selections(snakemake.config, built, snakemake.output[0])  # noqa: F821
