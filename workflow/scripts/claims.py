"""Rule claims: every experiment's aggregate -> figures/claims.md."""

from pathlib import Path

from _adapter import setup

with setup(snakemake):  # noqa: F821
    from bilevel.experiments.pipeline import write_claims

    aggregates = {Path(p).parent.name: p for p in snakemake.input}  # noqa: F821
    write_claims(snakemake.config, aggregates, snakemake.output[0])  # noqa: F821
