"""Reproduce every figure and table of the ZOBA, SOGD and FSBA papers: snakemake --cores all."""

import sys
from pathlib import Path

from snakemake.utils import min_version, validate

min_version("9.11")

# The package from the source tree, also without an installed copy: here (parse time) and, through
# PYTHONPATH, in every job (bilevel.workflow.export_package_path).
SRC = Path(workflow.basedir) / "src"
sys.path.insert(0, str(SRC))

from bilevel.experiments import ConfigError, check_config  # noqa: E402
from bilevel.experiments.config import read_yaml, resolve, validate_schema  # noqa: E402
from bilevel.experiments.tuning import check_committed  # noqa: E402
from bilevel.workflow import export_package_path, publish_rules  # noqa: E402

export_package_path(SRC)


# Every experiment is written once, in config/config.yaml; a --configfile (config/paper.yaml, the smoke
# .test/config/config.yaml, your own) is merged over it as Snakemake merges config files. Then an
# overlay's `null` removes a key and `enabled: false` methods are skipped (config/README.md).
DEFAULT_CONFIG = Path(workflow.basedir) / "config" / "config.yaml"
try:  # read here first, so that a syntax error names the file and line (Snakemake's loader does not)
    read_yaml(DEFAULT_CONFIG)
except ConfigError as err:
    raise WorkflowError(f"invalid configuration: {err}") from None


configfile: DEFAULT_CONFIG


try:
    resolve(config, read_yaml(DEFAULT_CONFIG))
    # one line naming the key (Snakemake's validate below would print the whole schema)
    validate_schema(config)
except ConfigError as err:
    raise WorkflowError(f"invalid configuration: {err}") from None
# the schema's defaults (the values were checked above)
validate(config, "workflow/schemas/config.schema.yaml", set_default=True)
try:
    check_config(config)
    check_committed(
        config
    )  # selections: committed -> each exists and was made for this configuration
except ConfigError as err:
    raise WorkflowError(f"invalid configuration: {err}") from None


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/experiments.smk"
include: "workflow/rules/tuning.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        all_targets(),


# Snakemake's rule objects as data, for the test command's env guard and for the tests.
publish_rules(workflow, config["experiments"])
