"""Reproduce every figure and table of the ZOBA, SOGD and FSBA papers: snakemake --cores all."""

import os
import sys
from pathlib import Path

from snakemake.utils import min_version, validate

min_version("9.11")

# The package from the source tree, also without an installed copy: here (parse time) and in every job
# (PYTHONPATH is inherited by the rule scripts, locally and on a cluster node).
SRC = str(Path(workflow.basedir) / "src")
sys.path.insert(0, SRC)
os.environ["PYTHONPATH"] = os.pathsep.join(
    [SRC] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p != SRC]
)

from bilevel.experiments import ConfigError, check_config  # noqa: E402
from bilevel.experiments.config import resolve  # noqa: E402


# Every experiment is written once, in config/config.yaml; a --configfile (config/paper.yaml, the smoke
# .test/config/config.yaml, your own) is merged over it as Snakemake merges config files. Then an
# overlay's `null` removes a key and `enabled: false` methods are skipped (config/README.md).
configfile: Path(workflow.basedir) / "config" / "config.yaml"


try:
    resolve(config)
except ConfigError as err:
    raise WorkflowError(f"invalid configuration: {err}") from None
validate(config, "workflow/schemas/config.schema.yaml", set_default=True)
try:
    check_config(config)
except ConfigError as err:
    raise WorkflowError(f"invalid configuration: {err}") from None


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/experiments.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        all_targets(),


# The rules as data (describe_rules), for the test command's env guard and for the tests.
if os.environ.get("BILEVEL_CHECK_RULE_ENVS") == "1" or "BILEVEL_DESCRIBE_RULES" in os.environ:
    import json

    _rules = json.dumps(describe_rules())
    os.environ["BILEVEL_RULE_ENVS"] = _rules  # inherited by every job
    if os.environ.get("BILEVEL_DESCRIBE_RULES"):
        Path(os.environ["BILEVEL_DESCRIBE_RULES"]).write_text(_rules)
