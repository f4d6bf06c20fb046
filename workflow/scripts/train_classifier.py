"""Rule train_classifier: the classifier an attack experiment queries -> results/models/<experiment>.json."""

from _adapter import setup

with setup(snakemake):  # noqa: F821
    from bilevel.experiments.pipeline import train_classifier

    train_classifier(snakemake.config, snakemake.wildcards.experiment, snakemake.output[0])  # noqa: F821
