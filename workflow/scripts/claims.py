"""Rule claims: every experiment's aggregate, per-seed results and selection -> figures/claims.md."""

from pathlib import Path

from _adapter import setup

with setup(snakemake, uses_torch=False):  # noqa: F821
    from bilevel.experiments.pipeline import write_claims

    aggregates = {Path(p).parent.name: p for p in snakemake.input.aggregates}  # noqa: F821
    results = {e: snakemake.params.results[e] for e in aggregates}  # noqa: F821
    write_claims(snakemake.config, aggregates, snakemake.output[0], results, snakemake.params.selections)  # noqa: F821
