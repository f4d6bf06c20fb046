"""Reproduce every figure and table of the ZOBA, SOGD and FSBA papers: snakemake --cores all."""

from snakemake.utils import min_version, validate

min_version("9.11")


# A --configfile REPLACES the default configuration (Snakemake would otherwise merge the two, and a
# smoke or paper config would inherit every default experiment).
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


validate(config, "workflow/schemas/config.schema.yaml", set_default=True)


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/baselines.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        all_targets(),
