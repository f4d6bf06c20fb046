"""Rules fetch_dataset / download_dataset: make one dataset available and record which files were used."""

from _adapter import setup

with setup(snakemake):  # noqa: F821
    from bilevel.experiments.pipeline import fetch_dataset

    fetch_dataset(snakemake.config, snakemake.wildcards.dataset, snakemake.output[0],  # noqa: F821
                  download=snakemake.params.download)  # noqa: F821
